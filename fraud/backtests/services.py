"""Backtests: a rule version and/or new thresholds over a window of stored history, beside the
current setup (the active thresholds, live rules and list entries), per day and in total.

Features are recomputed offline exactly as scoring computes them online (fraud.features.definitions), so a
rule over ``m_risk_7d`` sees what it would have seen. The score is the one stored at scoring
time; rows never scored (imported history) are scored with the active model. "Confirmed fraud" is
a fraud label; a flagged transaction without one counts as a false positive."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict, deque
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from audit.services import audit_record
from cipherguard import celery
from fraud.cases.services import case_needed
from fraud.features import definitions as fx
from fraud.features.store import load_history
from fraud.models import Backtest, BacktestStatus, Label, Rule, Transaction
from fraud.rules.policy import LiveRule, Policy, Thresholds, compile_rule, rule_context
from fraud.rules.selectors import load_policy, thresholds_row
from fraud.rules.services import PolicyError, thresholds_check
from fraud.scoring.runtime import runtime

logger = logging.getLogger(__name__)

MAX_WINDOW_DAYS = 92
# The task (fraud.backtests.tasks) calls this module, so it is sent by its registered name.
RUN_TASK = "fraud.tasks.backtest_run_task"
FLAGGED = ("review", "decline")


def backtest_create(
    *,
    actor: User,
    window_start: datetime,
    window_end: datetime,
    rule: Rule | None = None,
    review: float | None = None,
    decline: float | None = None,
) -> Backtest:
    if window_end <= window_start:
        raise PolicyError("window_end", "Must be after the start.")
    if window_end - window_start > timedelta(days=MAX_WINDOW_DAYS):
        raise PolicyError("window_end", f"A backtest covers at most {MAX_WINDOW_DAYS} days.")
    if (review is None) != (decline is None):
        raise PolicyError("decline_threshold", "Give both thresholds, or neither.")
    if review is not None and decline is not None:
        thresholds_check(review=review, decline=decline)
    if rule is None and review is None:
        raise PolicyError("rule", "Choose a rule version, new thresholds, or both.")
    with transaction.atomic():
        backtest = Backtest.objects.create(
            created_by=actor,
            window_start=window_start,
            window_end=window_end,
            rule=rule,
            review_threshold=review,
            decline_threshold=decline,
        )
        audit_record(
            event_type="backtest.created",
            actor=actor,
            obj=backtest,
            after={
                "window": [window_start.isoformat(), window_end.isoformat()],
                "rule": str(rule) if rule else None,
                "thresholds": [review, decline] if review is not None else None,
            },  # fmt: skip
        )
        transaction.on_commit(lambda: celery.task(RUN_TASK).delay(backtest.pk))
    return backtest


def _countries_before(frame: fx.Frame, rows: np.ndarray, days: int) -> dict[int, frozenset[str]]:
    """For each index in ``rows``, the countries of the same customer's payments in
    ``[t - days, t)`` (``customer_countries_30d``, as scoring's SQL reads it: payments at the
    same instant are not before it), by one pass per customer."""
    wanted = set(rows.tolist())
    out: dict[int, frozenset[str]] = {}
    width = days * fx.DAY
    order = np.lexsort((frame.ts, frame.customer)).tolist()
    window: deque[tuple[int, str]] = deque()
    counts: Counter[str] = Counter()
    current = None
    k = 0
    while k < len(order):
        i = order[k]
        if frame.customer[i] != current:
            current, window, counts = frame.customer[i], deque(), Counter()
        t = int(frame.ts[i])
        # Every row of this customer at this instant sees the same past, then joins it.
        end = k + 1
        while end < len(order) and frame.customer[order[end]] == current and int(frame.ts[order[end]]) == t:
            end += 1
        same, k = order[k:end], end
        while window and window[0][0] < t - width:
            _, old = window.popleft()
            counts[old] -= 1
            if not counts[old]:
                del counts[old]
        for j in same:
            if j in wanted:
                out[j] = frozenset(counts)
        for j in same:
            if frame.country[j]:
                window.append((t, frame.country[j]))
                counts[frame.country[j]] += 1
    return out


def _empty() -> dict[str, float]:
    return {"n": 0, "amount": 0.0, "flagged": 0, "flagged_amount": 0.0, "fraud": 0, "fraud_amount": 0.0,
            "caught": 0, "caught_amount": 0.0, "false_positives": 0, "cases": 0}  # fmt: skip


def backtest_run(*, backtest_id: int) -> Backtest:
    """Compute a backtest (the Celery task calls this). Progress is saved as it goes."""
    backtest = Backtest.objects.select_related("rule").get(pk=backtest_id)
    if backtest.status not in (BacktestStatus.QUEUED, BacktestStatus.RUNNING):
        return backtest
    Backtest.objects.filter(pk=backtest.pk).update(status=BacktestStatus.RUNNING, started_at=timezone.now())
    try:
        result = _compute(backtest)
    except Exception as exc:  # a failed job says why on its page; the worker carries on
        logger.exception("backtest %s failed", backtest.pk)
        Backtest.objects.filter(pk=backtest.pk).update(
            status=BacktestStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000], finished_at=timezone.now()
        )
    else:
        Backtest.objects.filter(pk=backtest.pk).update(
            status=BacktestStatus.SUCCEEDED, result=result, progress=1.0, finished_at=timezone.now()
        )
    backtest.refresh_from_db()
    return backtest


def _compute(backtest: Backtest) -> dict[str, Any]:
    delay = settings.FRAUD_LABEL_DELAY_DAYS
    history_from = backtest.window_start - timedelta(days=30 + delay + 30)
    frame, ids = load_history(
        Transaction.objects.filter(timestamp__gte=history_from, timestamp__lt=backtest.window_end)
    )
    start, end = fx.to_epoch_us(backtest.window_start), fx.to_epoch_us(backtest.window_end)
    rows = np.flatnonzero((frame.ts >= start) & (frame.ts < end))
    x = fx.features_offline(frame, frame, label_delay_days=delay) if len(rows) else np.zeros((0, len(fx.FEATURE_NAMES)))
    # By the window, not by id: a list of every id would overflow the database's parameter limit.
    stored = {
        pk: rest
        for pk, *rest in Transaction.objects.filter(
            timestamp__gte=backtest.window_start, timestamp__lt=backtest.window_end
        ).values_list(
            "id", "owner_id", "customer_id", "merchant_id", "amount", "currency", "country",
            "channel", "timestamp", "card_fingerprint", "ip_address", "fraud_score", "label"
        ).iterator(chunk_size=20_000)
    }  # fmt: skip
    # Rows never scored (imported history) are scored now with the active model.
    unscored = [k for k, i in enumerate(rows.tolist()) if stored[int(ids[i])][10] is None]
    fresh_scores: dict[int, float] = {}
    if unscored:
        model, _ = runtime.current()
        predicted = model.scorer.predict(x[rows[unscored]])
        fresh_scores = {int(rows[k]): float(s) for k, s in zip(unscored, predicted, strict=True)}

    row = thresholds_row()
    current_thresholds = Thresholds(row.review_threshold, row.decline_threshold)
    candidate_thresholds = current_thresholds
    if backtest.review_threshold is not None:
        candidate_thresholds = Thresholds(backtest.review_threshold, backtest.decline_threshold)  # type: ignore[arg-type]
    current = load_policy({})
    candidate = current
    if backtest.rule is not None:
        rule = backtest.rule
        tried = LiveRule(
            rule.pk, rule.name, rule.version, rule.action, rule.priority, False, compile_rule(rule.condition)
        )
        others = [r for r in current.rules if r.name != rule.name]  # it replaces its name's live version
        candidate = Policy(current.entries, [*others, tried])
    needs_countries = "customer_countries_30d" in (current.fields_needed | candidate.fields_needed)
    countries = _countries_before(frame, rows, 30) if needs_countries else {}

    days: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: {"current": _empty(), "candidate": _empty(),
                                                                          "rule": _empty()})  # fmt: skip
    step = max(1, len(rows) // 20)
    now = timezone.now()  # list entries as they stand today (the current setup), over past rows
    for k, i in enumerate(rows.tolist()):
        owner_id, customer, merchant, amount, currency, country, channel, ts, card, ip, score, label = stored[
            int(ids[i])
        ]
        score = fresh_scores.get(i, score)
        amount = float(amount)
        context = rule_context(features=x[i], amount=amount, currency=currency, country=country, channel=channel,
                               customer_id=customer, merchant_id=merchant, timestamp=ts, has_card=bool(card),
                               score=score)  # fmt: skip
        if needs_countries:
            context["customer_countries_30d"] = countries[i]
        lists = {"card": card, "customer": customer, "merchant": merchant, "country": country}
        day = days[ts.date().isoformat()]
        fraud = label == Label.FRAUD
        for side, policy, thresholds in (("current", current, current_thresholds),
                                         ("candidate", candidate, candidate_thresholds)):  # fmt: skip
            outcome = policy.decide(owner_id=owner_id, list_values=lists, ip=ip or "", context=context,
                                    model_decision=thresholds.decide(score), now=now)  # fmt: skip
            _count(day[side], outcome.decision in FLAGGED, fraud, amount, case_needed(outcome.decision))
            if side == "candidate" and backtest.rule is not None:
                matched = any(m.kind == "rule" and m.id == backtest.rule.pk for m in outcome.matches)
                _count(day["rule"], matched, fraud, amount, False)
        if k % step == 0:
            Backtest.objects.filter(pk=backtest.pk).update(progress=round(0.05 + 0.95 * k / len(rows), 3))

    totals = {side: _empty() for side in ("current", "candidate", "rule")}
    for values in days.values():
        for side, counts in values.items():
            for key, value in counts.items():
                totals[side][key] += value
    return {
        "rows": len(rows),
        "scored_now": len(unscored),
        "days": [{"day": d, **days[d]} for d in sorted(days)],
        "totals": totals,
        "extra_cases": totals["candidate"]["cases"] - totals["current"]["cases"],
    }


def _count(counts: dict[str, float], flagged: bool, fraud: bool, amount: float, case: bool) -> None:
    counts["n"] += 1
    counts["amount"] += amount
    counts["fraud"] += fraud
    counts["fraud_amount"] += amount if fraud else 0.0
    if flagged:
        counts["flagged"] += 1
        counts["flagged_amount"] += amount
        counts["caught"] += fraud
        counts["caught_amount"] += amount if fraud else 0.0
        counts["false_positives"] += not fraud
    counts["cases"] += case
