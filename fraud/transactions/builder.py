"""A validated transaction body as it is stored: the card as the vault keeps it, and the hash that
makes a retry with the same id recognisable."""

from __future__ import annotations

import functools
import hashlib
import json
from decimal import Decimal
from typing import Any

from django.conf import settings

from fraud.features import definitions as fx
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
