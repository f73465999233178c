"""A validated transaction body as it is stored: one builder of the row, whether the body came
from the API, a batch, an import or the generator; the card as the vault keeps it; and the hash
that makes a retry with the same id recognisable."""

from __future__ import annotations

import functools
import hashlib
import json
from decimal import Decimal
from typing import Any

from django.conf import settings

from accounts.models import User
from cipherguard.bulk import new_instance
from fraud.features import definitions as fx
from fraud.models import Transaction
from fraud.transactions.cards import CardVault


@functools.cache
def card_vault() -> CardVault:
    return CardVault(
        current_key=settings.ENCRYPTION_KEY,
        old_keys=settings.ENCRYPTION_OLD_KEYS,
        fingerprint_key=settings.PAN_FINGERPRINT_KEY,
    )


def canonical_hash(data: dict[str, Any], *, card_fingerprint: str | None = None) -> str:
    """SHA-256 of a validated transaction body in canonical form: equal bodies (``10`` and
    ``"10.00"``, any timezone offset for the same instant) hash alike. Pass the card's
    fingerprint when it is already known, to save computing it again."""
    if card_fingerprint is None:
        card_fingerprint = card_vault().fingerprint(data["card_number"]) if data.get("card_number") else ""
    canonical = {
        "transaction_id": data["transaction_id"],
        "customer_id": data["customer_id"],
        "merchant_id": data["merchant_id"],
        "amount": format(Decimal(data["amount"]).normalize(), "f"),
        "currency": data["currency"],
        "country": data["country"],
        "channel": data.get("channel") or "",
        "timestamp": fx.to_epoch_us(data["timestamp"]),
        # The card by its keyed fingerprint: the PAN itself goes nowhere but the vault.
        "card": card_fingerprint,
    }
    if data.get("ip_address"):  # only when sent: bodies stored before the field hash as they did
        canonical["ip"] = data["ip_address"]
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def transaction_from_body(
    *, owner: User, data: dict[str, Any], card_fingerprint: str | None = None, **decided: Any
) -> Transaction:
    """The unsaved row of a validated body: its fields, the card as the vault keeps it (first six
    and last four digits, keyed fingerprint, ciphertext; never the number itself) and the request
    hash. ``decided`` adds what the caller worked out (a score and decision, a known label).
    Pass the card's fingerprint when it is already known, to save computing it again."""
    pan = data.get("card_number") or ""
    if card_fingerprint is None:
        card_fingerprint = card_vault().fingerprint(pan) if pan else ""
    return new_instance(
        Transaction,
        owner=owner,
        transaction_id=data["transaction_id"],
        customer_id=data["customer_id"],
        merchant_id=data["merchant_id"],
        amount=data["amount"],
        currency=data["currency"],
        country=data["country"],
        channel=data.get("channel") or "",
        timestamp=data["timestamp"],
        ip_address=data.get("ip_address") or None,
        request_hash=canonical_hash(data, card_fingerprint=card_fingerprint),
        card_first6=pan[:6],
        card_last4=pan[-4:],
        card_fingerprint=card_fingerprint,
        card_ciphertext=card_vault().encrypt(pan) if pan else "",
        **decided,
    )
