"""Scoring: one transaction, or many of one client at once, scored and stored with its decision
and reasons; a flagged one opens its case and records its ``transaction.flagged`` webhook event
in the same database transaction."""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from cipherguard import metrics
from cipherguard.bulk import copy_insert, insert_one
from fraud.cases.services import case_needed, case_open_for, cases_open_for
from fraud.features.store import PendingTransaction, customer_countries, features_for_new, read_online
from fraud.models import Transaction, WebhookEventType
from fraud.rules.policy import Outcome, Thresholds, rule_context
from fraud.scoring import reasons as reason_text
from fraud.scoring.runtime import ActiveModel, runtime
from fraud.transactions.builder import canonical_hash, card_vault, transaction_from_body
from fraud.webhooks import payloads
from fraud.webhooks.events import webhook_events_record

logger = logging.getLogger(__name__)
decisions = logging.getLogger("cipherguard.decisions")


def _log_decision(tx: Transaction, model_version: str) -> None:
    """One structured event per scored transaction (ids, score, decision, model, reason codes;
    never the card)."""
    decisions.info(
        "fraud decision",
        extra={
            "event": "fraud.decision",
            "owner_id": tx.owner_id,
            "transaction_id": tx.transaction_id,
            "fraud_score": tx.fraud_score,
            "decision": tx.decision,
            "model_version": model_version,
            "reasons": [r["code"] for r in tx.reasons],
        },
    )


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


def _pending(client: User, data: dict[str, Any]) -> PendingTransaction:
    return PendingTransaction(
        owner_id=client.pk,
        customer_id=data["customer_id"],
        merchant_id=data["merchant_id"],
        country=data["country"],
        currency=data["currency"],
        channel=data.get("channel") or "",
        timestamp=data["timestamp"],
        amount=float(data["amount"]),
        card_fingerprint=card_vault().fingerprint(data["card_number"]) if data.get("card_number") else "",
    )


def _scored(
    *,
    client: User,
    data: dict[str, Any],
    pending: PendingTransaction,
    features: np.ndarray,
    score: float,
    deltas: np.ndarray,
    model: ActiveModel,
    thresholds: Thresholds,
    scored_at: datetime,
    shadow: ActiveModel | None = None,
    shadow_score: float | None = None,
    countries: frozenset[str] | None = None,
    currencies: frozenset[str] | None = None,
) -> Transaction:
    """An unsaved Transaction carrying its score, decision and reasons (and the shadow
    challenger's score, which decides nothing). ``countries`` and ``currencies``: the customer's
    of the last 30 days when the feature read brought them (the reasons name them)."""
    score = round(min(1.0, max(0.0, float(score))), 6)  # stored exactly as returned
    # Every group that raised the score, largest first: the reasons keep the first few that read
    # as a risk, so a group without a sentence leaves its place to the next.
    contributions = model.scorer.top_contributions(deltas, len(model.scorer.groups))
    context = reason_text.Context(
        amount=data["amount"],
        currency=data["currency"],
        country=data["country"],
        channel=data.get("channel") or "",
        timestamp=data["timestamp"],
        customer_countries=countries,
        customer_currencies=currencies,
        typical_amount=model.scorer.typical_amount,
    )
    outcome = _policy_outcome(client, data, pending, features, score, thresholds.decide(score), scored_at, countries)
    return transaction_from_body(
        owner=client,
        data=data,
        card_fingerprint=pending.card_fingerprint,
        fraud_score=score,
        reasons=reason_text.describe(contributions, features, context, limit=settings.FRAUD_REASONS_TOP_K),
        model_version_id=model.id,
        scored_at=scored_at,
        shadow_score=round(float(shadow_score), 6) if shadow is not None and shadow_score is not None else None,
        shadow_model_id=shadow.id if shadow is not None else None,
        decided_by=outcome.decided_by,
        decision=outcome.decision,
        rule_matches=[m.as_json() for m in outcome.matches],
    )


def _policy_outcome(
    client: User,
    data: dict[str, Any],
    pending: PendingTransaction,
    features: np.ndarray,
    score: float,
    model_decision: str,
    now: datetime,
    countries: frozenset[str] | None,
) -> Outcome:
    """Lists and rules beside the model (fraud.rules.policy): what matched and what decides.
    ``countries``: the customer's of the last 30 days when the feature read brought them."""
    policy = runtime.policy()
    if policy.empty:
        return Outcome(model_decision, "model")
    context: dict[str, Any] = {}
    if policy.rules:
        context = rule_context(
            features=features,
            amount=float(data["amount"]),
            currency=data["currency"],
            country=data["country"],
            channel=data.get("channel") or "",
            customer_id=data["customer_id"],
            merchant_id=data["merchant_id"],
            timestamp=data["timestamp"],
            has_card=bool(pending.card_fingerprint),
            score=score,
        )
        if "customer_countries_30d" in policy.fields_needed:
            context["customer_countries_30d"] = (
                countries if countries is not None else customer_countries(pending, days=30)
            )
    return policy.decide(
        owner_id=client.pk,
        list_values={
            "card": pending.card_fingerprint,
            "customer": data["customer_id"],
            "merchant": data["merchant_id"],
            "country": data["country"],
        },  # fmt: skip
        ip=data.get("ip_address") or "",
        context=context,
        model_decision=model_decision,
        now=now,
    )


def _replay_or_conflict(client: User, data: dict[str, Any]) -> ScoreOutcome:
    existing = (
        Transaction.objects.with_model_version().filter(owner=client, transaction_id=data["transaction_id"]).first()
    )
    if existing is None:
        raise LookupError(data["transaction_id"])
    if existing.request_hash != canonical_hash(data):
        raise IdempotencyConflictError(existing)
    return ScoreOutcome(existing, existing.model_version.version if existing.model_version else "", created=False)


def transaction_score(*, client: User, data: dict[str, Any]) -> ScoreOutcome:
    """Score one validated transaction for ``client`` and store it with its result.

    Idempotent: a repeat of the same ``transaction_id`` with the same body returns the stored
    result (``created=False``); with a different body it raises ``IdempotencyConflictError``.
    The unique constraint on (owner, transaction_id) is the gate, so concurrent retries insert
    exactly one row: the losers hit the constraint and read the winner's row."""
    with metrics.scoring_timer("single"):
        outcome = _transaction_score(client=client, data=data, source=payloads.API)
    if outcome.created:
        metrics.record_scored("single", [outcome.transaction])
    return outcome


def _flagged_events(client: User, flagged: list[Transaction], model_version: str, source: payloads.FlagSource) -> None:
    """Record ``transaction.flagged`` for newly stored flagged transactions, inside the scoring
    transaction: one subscriber query for the lot."""
    webhook_events_record(
        event_type=WebhookEventType.TRANSACTION_FLAGGED,
        owner=client,
        payloads=[payloads.transaction_flagged(tx, model_version=model_version, source=source) for tx in flagged],
    )


def _transaction_score(*, client: User, data: dict[str, Any], source: payloads.FlagSource | None) -> ScoreOutcome:
    model, thresholds = runtime.current()
    shadow = runtime.shadow()
    pending = _pending(client, data)
    read = read_online(pending, label_delay_days=settings.FRAUD_LABEL_DELAY_DAYS)
    row = read.row
    scores, deltas = model.scorer.score_with_reasons(row)
    tx = _scored(
        pending=pending,
        shadow=shadow,
        shadow_score=shadow.scorer.predict(row)[0] if shadow else None,
        client=client,
        data=data,
        features=row[0],
        score=scores[0],
        deltas=deltas[0],
        model=model,
        thresholds=thresholds,
        scored_at=timezone.now(),
        countries=read.customer_countries_30d,
        currencies=read.customer_currencies_30d,
    )
    # The transaction, its case and its webhook event commit together. An approved transaction
    # has neither: alone, its INSERT commits on its own, without BEGIN and COMMIT round trips
    # (most traffic), and no webhook query is made for it. A flagged one takes the transaction
    # even when FRAUD_CASE_DECISIONS opens no case for it, for its event. Inside a caller's
    # transaction it still gets its savepoint, so a duplicate id fails only itself.
    flagged = payloads.flagged(tx.decision)
    together = flagged or case_needed(tx.decision) or transaction.get_connection().in_atomic_block
    try:
        with transaction.atomic() if together else nullcontext():
            insert_one(tx)
            if flagged and source is not None:
                _flagged_events(client, [tx], model.version, source)
            case_open_for(tx=tx)
    except IntegrityError:
        try:
            return _replay_or_conflict(client, data)
        except LookupError:
            raise IntegrityError(f"transaction {tx.transaction_id!r} could not be stored") from None
    _log_decision(tx, model.version)
    return ScoreOutcome(tx, model.version, created=True)


@dataclass(frozen=True)
class ItemOutcome:
    """One item of a many-at-once scoring: 201 scored, 200 replayed, 409 conflicting id."""

    status: int
    transaction: Transaction
    model_version: str
    detail: str = ""


def transactions_score_many(
    *,
    client: User,
    items: list[dict[str, Any]],
    path: str = "batch",
    source: payloads.FlagSource | None = payloads.BATCH,
) -> list[ItemOutcome]:
    """Score many validated transactions of one client in one pass, with the same results and
    idempotency as ``transaction_score``: one read of the history (``features_for_new``), one
    vectorised feature computation, one ONNX call, one bulk insert (and the cases and webhook
    events, in the same transaction). ``path`` labels the metrics (``batch`` for the synchronous
    endpoint, ``job`` for batch jobs); ``source`` is what the ``transaction.flagged`` events of
    the newly stored flagged ones say they came from (None: no events, for history replayed).

    Items whose id is already stored (or repeated earlier in ``items``) are replays or conflicts
    and are not scored again. If a concurrent request stores one of the ids first, the bulk
    insert fails as a whole and the items fall back to the one-by-one path, which sorts it out."""
    with metrics.scoring_timer(path):
        outcomes = _score_many(client=client, items=items, source=source)
    metrics.record_scored(path, [o.transaction for o in outcomes if o.status == 201])
    return outcomes


def _score_many(*, client: User, items: list[dict[str, Any]], source: payloads.FlagSource | None) -> list[ItemOutcome]:
    model, thresholds = runtime.current()
    ids = [d["transaction_id"] for d in items]
    stored = {
        t.transaction_id: t
        for t in Transaction.objects.with_model_version().filter(owner=client, transaction_id__in=set(ids))
    }
    first: dict[str, int] = {}
    fresh = []
    for i, tid in enumerate(ids):
        if tid not in stored and tid not in first:
            first[tid] = i
            fresh.append(i)
    pendings = [_pending(client, items[i]) for i in fresh]
    features = features_for_new(client.pk, pendings, label_delay_days=settings.FRAUD_LABEL_DELAY_DAYS)
    scores, deltas = model.scorer.score_with_reasons(features) if fresh else (np.zeros(0), np.zeros((0, 0)))
    shadow = runtime.shadow()
    shadow_scores = shadow.scorer.predict(features) if shadow is not None and fresh else None
    now = timezone.now()
    new = {
        ids[i]: _scored(
            pending=pendings[k],
            client=client,
            data=items[i],
            features=features[k],
            score=scores[k],
            deltas=deltas[k],
            model=model,
            thresholds=thresholds,
            scored_at=now,
            shadow=shadow,
            shadow_score=shadow_scores[k] if shadow_scores is not None else None,
        )
        for k, i in enumerate(fresh)
    }
    try:
        with transaction.atomic():
            copy_insert(Transaction, list(new.values()))
            flagged = [tx for tx in new.values() if payloads.flagged(tx.decision)]
            if flagged and source is not None:
                _flagged_events(client, flagged, model.version, source)
            cases_open_for(transactions=new.values())
    except IntegrityError:
        return [_one_by_one(client, d, source) for d in items]

    outcomes = []
    for i, data in enumerate(items):
        tid = data["transaction_id"]
        if first.get(tid) == i:
            _log_decision(new[tid], model.version)
            outcomes.append(ItemOutcome(201, new[tid], model.version))
            continue
        original = stored.get(tid) or new[tid]
        version = original.model_version.version if tid in stored and original.model_version else model.version
        if original.request_hash == canonical_hash(data):
            outcomes.append(ItemOutcome(200, original, version))
        else:
            message = f"transaction_id {tid!r} was already scored with a different body"
            outcomes.append(ItemOutcome(409, original, version, message))
    return outcomes


def _one_by_one(client: User, data: dict[str, Any], source: payloads.FlagSource | None) -> ItemOutcome:
    try:
        outcome = _transaction_score(client=client, data=data, source=source)  # counted by the caller
    except IdempotencyConflictError as exc:
        return ItemOutcome(409, exc.existing, "", str(exc))
    return ItemOutcome(201 if outcome.created else 200, outcome.transaction, outcome.model_version)
