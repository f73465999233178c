"""State changes of the fraud domain: scoring, labelling, thresholds, model training and
activation. Views, commands and tasks call these and nothing else writes."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import User
from fraud import features as fx
from fraud import reasons as reason_text
from fraud.feature_store import PendingTransaction, features_online, load_history
from fraud.models import (
    DecisionThresholds,
    Label,
    LabelSource,
    ModelStatus,
    ModelVersion,
    Transaction,
)
from fraud.scoring import runtime, thresholds_row

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


def transaction_label(*, transaction_obj: Transaction, label: str, source: str) -> Transaction:
    """Record an outcome (a chargeback, an analyst's verdict) as the transaction's label. The
    label time is now: features only count labels known at the time they score."""
    if label not in Label.values:
        raise ValueError(f"unknown label {label!r}")
    if source not in LabelSource.values:
        raise ValueError(f"unknown label source {source!r}")
    transaction_obj.label = label
    transaction_obj.label_source = source
    transaction_obj.label_time = timezone.now()
    transaction_obj.save(update_fields=["label", "label_source", "label_time"])
    return transaction_obj


def thresholds_update(*, review: float, decline: float, actor: User | None = None) -> DecisionThresholds:
    """Change the decision thresholds; every web process applies them within its refresh
    interval, this one at once."""
    if not (0.0 <= review < decline <= 1.0):
        raise ValueError("thresholds must satisfy 0 <= review < decline <= 1")
    with transaction.atomic():
        row = thresholds_row()
        row.review_threshold = review
        row.decline_threshold = decline
        row.updated_by = actor
        row.save(update_fields=["review_threshold", "decline_threshold", "updated_by", "updated_at"])
        transaction.on_commit(runtime.invalidate)
    return row


def model_version_activate(*, version: ModelVersion) -> ModelVersion:
    """Make ``version`` the one active model; the previous one is retired. The partial unique
    index on active status makes a second concurrent activation fail instead of leaving two."""
    with transaction.atomic():
        now = timezone.now()
        current = list(
            ModelVersion.objects.select_for_update().filter(status=ModelStatus.ACTIVE).exclude(pk=version.pk)
        )
        for old in current:
            old.status = ModelStatus.RETIRED
            old.retired_at = now
            old.save(update_fields=["status", "retired_at"])
        version.status = ModelStatus.ACTIVE
        version.activated_at = now
        version.retired_at = None
        version.save(update_fields=["status", "activated_at", "retired_at"])
        transaction.on_commit(runtime.invalidate)
    logger.info("model %s activated", version.version)
    return version


@dataclass(frozen=True)
class TrainingWindows:
    train_start: datetime
    train_end: datetime
    validation_start: datetime
    validation_end: datetime


def training_windows(
    *, first: datetime, as_of: datetime, validation_days: int, label_delay_days: int
) -> TrainingWindows:
    """Temporal split, never future into past. Validation ends ``label_delay`` before ``as_of``
    (younger labels are not settled); training ends ``label_delay`` before validation starts, so
    the labels it learns from were known when the validation period began. The first 7 days are
    skipped: their history windows are still filling."""
    delay = timedelta(days=label_delay_days)
    validation_end = as_of - delay
    validation_start = validation_end - timedelta(days=validation_days)
    train_end = validation_start - delay
    train_start = first + timedelta(days=7)
    if train_end - train_start < timedelta(days=7):
        raise ValueError(
            f"not enough history to train: need at least {14 + 2 * label_delay_days + validation_days} days, "
            f"have {(as_of - first).days}"
        )
    return TrainingWindows(train_start, train_end, validation_start, validation_end)


def model_train(
    *, validation_days: int = 14, seed: int = 0, activate: bool = False, as_of: datetime | None = None
) -> ModelVersion:
    """Train a model on all stored history, export it to ONNX, verify ONNX against
    scikit-learn, and store it as a candidate (or the active) ``ModelVersion``."""
    from fraud import training  # scikit-learn stays out of web processes

    history = Transaction.objects.all()
    if as_of is not None:
        history = history.filter(timestamp__lt=as_of)
    frame, _ids = load_history(history)
    if len(frame) == 0:
        raise ValueError("no transactions to train on: run `manage.py generate_transactions` or import history")
    first = fx.from_epoch_us(int(frame.ts.min()))
    as_of = as_of or fx.from_epoch_us(int(frame.ts.max()) + 1)
    delay_days = settings.FRAUD_LABEL_DELAY_DAYS
    w = training_windows(first=first, as_of=as_of, validation_days=validation_days, label_delay_days=delay_days)
    x = fx.features_offline(frame, frame, label_delay_days=delay_days)

    def window(start: datetime, end: datetime) -> np.ndarray:
        return (frame.ts >= fx.to_epoch_us(start)) & (frame.ts < fx.to_epoch_us(end))

    train_rows, val_rows = window(w.train_start, w.train_end), window(w.validation_start, w.validation_end)
    # Labels as known at ``as_of``. The training window ends two label delays before it, so its
    # labels have had time to arrive; features still only see labels known at each row's time.
    known = frame.fraud_known_at <= fx.to_epoch_us(as_of)
    y_train, y_val = known[train_rows].astype(np.int64), known[val_rows].astype(np.int64)
    if y_train.sum() < 10 or y_val.sum() < 1:
        raise ValueError(
            f"too few fraud labels to train ({int(y_train.sum())} in training, {int(y_val.sum())} in validation)"
        )

    model = training.fit(x[train_rows], y_train, seed=seed)
    neutral = training.neutral_values(x[train_rows])
    exported = training.export(model, x[val_rows], list(fx.FEATURE_NAMES), neutral)
    val_scores = model.predict_proba(x[val_rows])[:, 1]
    metrics = {
        "validation": training.binary_metrics(y_val, val_scores),
        "train": training.binary_metrics(y_train, model.predict_proba(x[train_rows])[:, 1]),
        "onnx_max_abs_diff": exported.onnx_max_abs_diff,
        "label_delay_days": delay_days,
        "seed": seed,
    }
    now = timezone.now()
    version = ModelVersion.objects.create(
        version=f"{training.VERSION_PREFIX}-{now:%Y%m%d-%H%M%S-%f}",
        algorithm=training.ALGORITHM,
        artifact=exported.artifact,
        artifact_sha256=exported.sha256,
        feature_set_version=fx.FEATURE_SET_VERSION,
        feature_names=list(fx.FEATURE_NAMES),
        neutral_values=exported.neutral_values,
        train_start=w.train_start,
        train_end=w.train_end,
        validation_start=w.validation_start,
        validation_end=w.validation_end,
        metrics=metrics,
    )
    logger.info("trained model %s: %s", version.version, metrics["validation"])
    if activate:
        model_version_activate(version=version)
    return version


def history_generate(*, owner: User, days: int, customers: int, merchants: int, seed: int, start: datetime) -> int:
    """Write a synthetic labelled history for ``owner`` (see ``fraud.generator``). Returns the
    number of transactions written; rows that already exist (same owner and id) are skipped, so
    running the same command twice writes nothing new."""
    from fraud.generator import generate

    data = generate(start=start, days=days, customers=customers, merchants=merchants, seed=seed)
    written = 0
    batch: list[Transaction] = []

    def flush() -> int:
        created = Transaction.objects.bulk_create(batch, batch_size=2000, ignore_conflicts=True)
        batch.clear()
        return len(created)

    for i in range(len(data)):
        body = {
            "transaction_id": data.transaction_id[i],
            "customer_id": data.customer_id[i],
            "merchant_id": data.merchant_id[i],
            "amount": Decimal(str(data.amount[i])),
            "currency": data.currency[i],
            "country": data.country[i],
            "channel": data.channel[i],
            "timestamp": fx.from_epoch_us(data.ts_us[i]),
        }
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
            written += flush()
    written += flush()
    if connection.vendor == "postgresql":
        # A bulk load leaves the planner with stale statistics (it then misjudges the feature
        # queries' index scans); refresh them now rather than waiting for autovacuum.
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Transaction._meta.db_table}")
    return written
