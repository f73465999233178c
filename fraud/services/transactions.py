"""Transactions: scoring, labels and synthetic history."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import User
from audit.services import audit_record
from fraud import features as fx
from fraud import reasons as reason_text
from fraud.feature_store import PendingTransaction, features_online
from fraud.generator import Generated, generate
from fraud.models import (
    Label,
    LabelSource,
    Transaction,
)
from fraud.scoring import runtime

logger = logging.getLogger(__name__)


class IdempotencyConflictError(Exception):
    """The client reused a transaction id with a different body."""

    def __init__(self, existing: Transaction):
        super().__init__(f"transaction_id {existing.transaction_id!r} was already scored with a different body")
        self.existing = existing


@dataclass(frozen=True)
class ScoreOutcome:
    transaction: Transaction
    model_version: str
    created: bool


def canonical_hash(data: dict[str, Any]) -> str:
    """SHA-256 of a validated transaction body in canonical form: equal bodies (``10`` and
    ``"10.00"``, any timezone offset for the same instant) hash alike."""
    canonical = {
        "transaction_id": data["transaction_id"],
        "customer_id": data["customer_id"],
        "merchant_id": data["merchant_id"],
        "amount": format(Decimal(data["amount"]).normalize(), "f"),
        "currency": data["currency"],
        "country": data["country"],
        "channel": data.get("channel") or "",
        "timestamp": fx.to_epoch_us(data["timestamp"]),
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def transaction_score(*, client: User, data: dict[str, Any]) -> ScoreOutcome:
    """Score one validated transaction for ``client`` and store it with its result.

    Idempotent: a repeat of the same ``transaction_id`` with the same body returns the stored
    result (``created=False``); with a different body it raises ``IdempotencyConflictError``.
    The unique constraint on (owner, transaction_id) is the gate, so concurrent retries insert
    exactly one row: the losers hit the constraint and read the winner's row."""
    model, thresholds = runtime.current()
    request_hash = canonical_hash(data)
    pending = PendingTransaction(
        owner_id=client.pk,
        customer_id=data["customer_id"],
        merchant_id=data["merchant_id"],
        country=data["country"],
        channel=data.get("channel") or "",
        timestamp=data["timestamp"],
        amount=float(data["amount"]),
    )
    row = features_online(pending, label_delay_days=settings.FRAUD_LABEL_DELAY_DAYS)
    scores, deltas = model.scorer.score_with_reasons(row)
    score = round(min(1.0, max(0.0, float(scores[0]))), 6)  # stored exactly as returned
    contributions = model.scorer.top_contributions(deltas[0], settings.FRAUD_REASONS_TOP_K)
    context = {
        "amount": str(data["amount"]),
        "currency": data["currency"],
        "country": data["country"],
        "channel": pending.channel,
    }
    tx = Transaction(
        owner=client,
        transaction_id=data["transaction_id"],
        customer_id=data["customer_id"],
        merchant_id=data["merchant_id"],
        amount=data["amount"],
        currency=data["currency"],
        country=data["country"],
        channel=pending.channel,
        timestamp=data["timestamp"],
        request_hash=request_hash,
        fraud_score=score,
        decision=thresholds.decide(score),
        reasons=reason_text.describe(contributions, row[0], context),
        model_version_id=model.id,
        scored_at=timezone.now(),
    )
    try:
        with transaction.atomic():
            tx.save(force_insert=True)
            # Imported here: cases depend on this module (closing a case labels its transaction).
            from fraud.services.cases import case_open_for

            case_open_for(tx=tx)
    except IntegrityError:
        existing = (
            Transaction.objects.select_related("model_version")
            .filter(owner=client, transaction_id=tx.transaction_id)
            .first()
        )
        if existing is None:
            raise
        if existing.request_hash != request_hash:
            raise IdempotencyConflictError(existing) from None
        return ScoreOutcome(existing, existing.model_version.version if existing.model_version else "", created=False)
    return ScoreOutcome(tx, model.version, created=True)


def transaction_label(*, transaction_obj: Transaction, label: str, source: str, actor: User | None) -> Transaction:
    """Record an outcome (a chargeback, an analyst's verdict) as the transaction's label, and
    audit it. The label time is now: features only count labels known when they score."""
    if label not in Label.values:
        raise ValueError(f"unknown label {label!r}")
    if source not in LabelSource.values:
        raise ValueError(f"unknown label source {source!r}")
    with transaction.atomic():
        before = {"label": transaction_obj.label, "label_source": transaction_obj.label_source}
        transaction_obj.label = label
        transaction_obj.label_source = source
        transaction_obj.label_time = timezone.now()
        transaction_obj.save(update_fields=["label", "label_source", "label_time"])
        audit_record(
            event_type="transaction.labelled",
            actor=actor,
            obj=transaction_obj,
            before=before,
            after={"label": label, "label_source": source, "transaction_id": transaction_obj.transaction_id},
        )
    return transaction_obj


def _generated_body(data: Generated, i: int) -> dict[str, Any]:
    return {
        "transaction_id": data.transaction_id[i],
        "customer_id": data.customer_id[i],
        "merchant_id": data.merchant_id[i],
        "amount": Decimal(str(data.amount[i])),
        "currency": data.currency[i],
        "country": data.country[i],
        "channel": data.channel[i],
        "timestamp": fx.from_epoch_us(data.ts_us[i]),
    }


def history_generate(
    *, owner: User, days: int, customers: int, merchants: int, seed: int, start: datetime, until: datetime | None = None
) -> int:
    """Write a synthetic labelled history for ``owner`` (see ``fraud.generator``), optionally
    only the rows before ``until``. Returns how many rows are new; rows that already exist (same
    owner and id) are skipped, so the same command twice writes nothing the second time."""
    data = generate(start=start, days=days, customers=customers, merchants=merchants, seed=seed)
    limit = fx.to_epoch_us(until) if until else None
    existing = Transaction.objects.owned_by(owner.pk).count()
    batch: list[Transaction] = []
    for i in range(len(data)):
        if limit is not None and data.ts_us[i] >= limit:
            break  # rows are in time order
        body = _generated_body(data, i)
        fraud = bool(data.scenario[i])
        batch.append(
            Transaction(
                owner=owner,
                request_hash=canonical_hash(body),
                label=Label.FRAUD if fraud else "",
                label_source=LabelSource.GENERATOR if fraud else "",
                label_time=fx.from_epoch_us(data.label_time_us[i]) if fraud else None,
                **body,
            )
        )
        if len(batch) >= 10_000:
            Transaction.objects.bulk_create(batch, batch_size=2000, ignore_conflicts=True)
            batch.clear()
    Transaction.objects.bulk_create(batch, batch_size=2000, ignore_conflicts=True)
    if connection.vendor == "postgresql":
        # A bulk load leaves the planner with stale statistics (it then misjudges the feature
        # queries' index scans); refresh them now rather than waiting for autovacuum.
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Transaction._meta.db_table}")
    return Transaction.objects.owned_by(owner.pk).count() - existing


def history_replay(
    *, owner: User, days: int, customers: int, merchants: int, seed: int, start: datetime, since: datetime
) -> int:
    """Score the generated rows from ``since`` on through the live scoring path, in time order,
    as if they arrived now (labels withheld: they are for analysts to find). The demo uses it
    so the console starts with real cases. Returns how many were newly scored."""
    data = generate(start=start, days=days, customers=customers, merchants=merchants, seed=seed)
    first = fx.to_epoch_us(since)
    scored = 0
    for i in range(len(data)):
        if data.ts_us[i] >= first and transaction_score(client=owner, data=_generated_body(data, i)).created:
            scored += 1
    return scored
