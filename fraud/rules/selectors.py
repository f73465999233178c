"""Reads of the decision setup: the stored thresholds and the live lists and rules, compiled into
the ``Policy`` that scoring and backtests apply."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from fraud.models import DecisionThresholds, ListEntry, Rule, RuleStatus
from fraud.rules.expressions import Compiled, ExpressionError
from fraud.rules.policy import LiveEntry, LiveRule, Policy, compile_rule

logger = logging.getLogger(__name__)


def thresholds_row() -> DecisionThresholds:
    """The stored thresholds, created from settings on first use (the unique ``singleton``
    column makes concurrent first uses converge on one row)."""
    row, _ = DecisionThresholds.objects.get_or_create(
        singleton=1,
        defaults={"review_threshold": settings.FRAUD_THRESHOLD, "decline_threshold": settings.FRAUD_DECLINE_THRESHOLD},
    )
    return row


def load_policy(cache: dict[tuple[int, str], Compiled]) -> Policy:
    """The live list entries and the active rules (live and shadow). A rule is compiled once
    per process and version; one that no longer compiles (a field it reads was removed) is
    skipped and logged, never run."""
    now = timezone.now()
    entries = [
        LiveEntry(*row)
        for row in ListEntry.objects.filter(removed_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .values_list("id", "owner_id", "kind", "value", "display", "action", "overriding", "expires_at")
    ]
    rules = []
    for pk, name, version, condition, action, priority, shadow in Rule.objects.filter(
        status=RuleStatus.ACTIVE
    ).values_list("id", "name", "version", "condition", "action", "priority", "shadow"):
        compiled = cache.get((pk, condition))
        if compiled is None:
            try:
                compiled = cache[(pk, condition)] = compile_rule(condition)
            except ExpressionError as exc:
                logger.error("rule %s v%s cannot run and is skipped: %s", name, version, exc)
                continue
        rules.append(LiveRule(pk, name, version, action, priority, shadow, compiled))
    return Policy(entries, rules)
