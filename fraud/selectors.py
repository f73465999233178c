"""Permission-checked reads: an API client only ever reaches its own transactions; only
analysts and admins reach cases."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, Q, QuerySet, Sum
from django.http import Http404

from accounts.models import Role, User
from fraud.models import Case, CaseStatus, Label, Transaction, TransactionQuerySet


def transaction_list_for_client(
    *,
    client: User,
    decision: str | None = None,
    customer_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> TransactionQuerySet:
    qs = Transaction.objects.owned_by(client.pk).select_related("model_version")
    if decision:
        qs = qs.filter(decision=decision)
    if customer_id:
        qs = qs.for_customer(customer_id)
    if since:
        qs = qs.filter(timestamp__gte=since)
    if until:
        qs = qs.filter(timestamp__lt=until)
    return qs


def transaction_get_for_client(*, client: User, transaction_id: str) -> Transaction:
    """The client's transaction, or 404 — also when it exists but belongs to someone else, so a
    client cannot even learn that another client's id exists."""
    tx = (
        Transaction.objects.owned_by(client.pk)
        .select_related("model_version")
        .filter(transaction_id=transaction_id)
        .first()
    )
    if tx is None:
        raise Http404("No such transaction.")
    return tx


# --- Console (analysts and admins) ----------------------------------------------------------------


def user_can_use_console(user: User) -> bool:
    return bool(user.is_authenticated and user.is_active and user.role in {Role.ANALYST, Role.ADMIN})


def case_get_for_user(*, user: User, case_id: int) -> Case:
    """A case for the console, or 404. Every analyst and admin may see every case; nobody else
    (API clients never reach the console) sees any."""
    if not user_can_use_console(user):
        raise Http404("No such case.")
    case = (
        Case.objects.select_related("transaction", "transaction__owner", "transaction__model_version", "assignee")
        .filter(pk=case_id)
        .first()
    )
    if case is None:
        raise Http404("No such case.")
    return case


@dataclass(frozen=True)
class QueueFilters:
    statuses: list[str] = field(default_factory=lambda: [CaseStatus.OPEN, CaseStatus.IN_REVIEW, CaseStatus.ESCALATED])
    assignee: str = ""  # "", "me", "unassigned" or a user id
    score_min: float | None = None
    score_max: float | None = None
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    older_than_hours: int | None = None
    overdue: bool = False
    sort: str = "-priority"


QUEUE_SORTS = {
    "-priority": ("-priority", "opened_at"),
    "-score": ("-score", "opened_at"),
    "score": ("score", "opened_at"),
    "-amount": ("-amount", "opened_at"),
    "amount": ("amount", "opened_at"),
    "opened": ("opened_at",),  # oldest first
    "-opened": ("-opened_at",),
    "due": ("due_at",),
}


def case_queue(*, user: User, filters: QueueFilters, now: datetime) -> QuerySet[Case]:
    if not user_can_use_console(user):
        return Case.objects.none()
    qs = Case.objects.select_related("transaction", "assignee")
    if filters.statuses:
        qs = qs.filter(status__in=filters.statuses)
    if filters.assignee == "me":
        qs = qs.filter(assignee=user)
    elif filters.assignee == "unassigned":
        qs = qs.filter(assignee__isnull=True)
    elif filters.assignee:
        qs = qs.filter(assignee_id=int(filters.assignee))
    if filters.score_min is not None:
        qs = qs.filter(score__gte=filters.score_min)
    if filters.score_max is not None:
        qs = qs.filter(score__lte=filters.score_max)
    if filters.amount_min is not None:
        qs = qs.filter(amount__gte=filters.amount_min)
    if filters.amount_max is not None:
        qs = qs.filter(amount__lte=filters.amount_max)
    if filters.older_than_hours is not None:
        qs = qs.filter(opened_at__lte=now - timedelta(hours=filters.older_than_hours))
    if filters.overdue:
        qs = qs.overdue(now)
    return qs.order_by(*QUEUE_SORTS.get(filters.sort, QUEUE_SORTS["-priority"]), "pk")


def customer_timeline(*, tx: Transaction, limit: int = 20) -> list[Transaction]:
    """The customer's most recent transactions up to this one (same API client)."""
    return list(
        Transaction.objects.filter(owner_id=tx.owner_id, customer_id=tx.customer_id, timestamp__lte=tx.timestamp)
        .order_by("-timestamp", "-id")
        .only(
            "id",
            "transaction_id",
            "merchant_id",
            "amount",
            "currency",
            "country",
            "channel",
            "timestamp",
            "fraud_score",
            "decision",
            "label",
        )[:limit]
    )


def merchant_activity(*, tx: Transaction) -> list[dict[str, Any]]:
    """Volume and known fraud rate at the transaction's merchant over 1, 7 and 30 days before it."""
    t = tx.timestamp
    windows = {"24 hours": timedelta(days=1), "7 days": timedelta(days=7), "30 days": timedelta(days=30)}
    aggregates: dict[str, Any] = {}
    for i, width in enumerate(windows.values()):
        recent = Q(timestamp__gte=t - width)
        aggregates[f"n{i}"] = Count("id", filter=recent)
        aggregates[f"f{i}"] = Count("id", filter=recent & Q(label=Label.FRAUD))
        aggregates[f"v{i}"] = Sum("amount", filter=recent)
    row = Transaction.objects.filter(
        owner_id=tx.owner_id, merchant_id=tx.merchant_id, timestamp__lt=t, timestamp__gte=t - timedelta(days=30)
    ).aggregate(**aggregates)
    out = []
    for i, label in enumerate(windows):
        n, f = row[f"n{i}"] or 0, row[f"f{i}"] or 0
        out.append(
            {"window": label, "count": n, "volume": row[f"v{i}"] or 0, "fraud": f, "fraud_rate": (f / n) if n else 0.0}
        )
    return out


def case_history(*, case: Case) -> list[dict[str, Any]]:
    """Who did what, when: the case's opening, then its audit events oldest first, each with the
    fields it changed (``from`` → ``to``) and anything else it recorded (a note, a reason)."""
    from audit.selectors import audit_events_for_object

    history: list[dict[str, Any]] = [
        {
            "when": case.opened_at,
            "who": "system",
            "what": "case.opened",
            "changes": [],
            "extra": {"decision": case.transaction.decision, "score": case.score},
        }
    ]
    for event in audit_events_for_object(object_type=Case._meta.label_lower, object_id=str(case.pk)):
        before, after = event.before or {}, event.after or {}
        history.append(
            {
                "when": event.occurred_at,
                "who": event.actor_label,
                "what": event.event_type,
                "changes": [(k, before[k], after[k]) for k in after if k in before and before[k] != after[k]],
                "extra": {k: v for k, v in after.items() if k not in before and v not in ("", None)},
            }
        )
    return history


def console_analysts() -> QuerySet[User]:
    return User.objects.filter(is_active=True, role__in=[Role.ANALYST, Role.ADMIN]).order_by("username")


def dashboard_stats(*, now: datetime, days: int = 30) -> dict[str, Any]:
    """Platform-wide figures for the dashboard. Cached for a minute: a room of analysts
    refreshing it must not turn into a stream of aggregate scans on the primary."""
    from django.core.cache import cache
    from django.db.models.functions import Floor, TruncDate

    def compute() -> dict[str, Any]:
        since = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
        recent = Transaction.objects.filter(timestamp__gte=since, timestamp__lte=now)
        per_day = {
            row["day"]: row["n"]
            for row in recent.annotate(day=TruncDate("timestamp")).values("day").annotate(n=Count("id")).order_by()
        }
        day_list = [(since + timedelta(days=i)).date() for i in range(days)]
        decisions = {
            row["decision"] or "unscored": row["n"]
            for row in recent.values("decision").annotate(n=Count("id")).order_by()
        }
        bins = [0] * 10
        for row in (
            recent.filter(fraud_score__isnull=False)
            .annotate(b=Floor(F("fraud_score") * 10))
            .values("b")
            .annotate(n=Count("id"))
            .order_by()
        ):
            bins[min(int(row["b"]), 9)] += row["n"]
        closed = (
            Case.objects.filter(closed_at__gte=since)
            .annotate(day=TruncDate("closed_at"))
            .values("day")
            .annotate(n=Count("id"), fraud=Count("id", filter=Q(outcome="confirmed_fraud")))
            .order_by()
        )
        closed_by_day = {row["day"]: row for row in closed}
        active = Case.objects.active()
        return {
            "days": [d.isoformat() for d in day_list],
            "volume": [per_day.get(d, 0) for d in day_list],
            "decisions": decisions,
            "score_bins": bins,
            "confirmed_rate": [
                (closed_by_day[d]["fraud"] / closed_by_day[d]["n"])
                if d in closed_by_day and closed_by_day[d]["n"]
                else None
                for d in day_list
            ],
            "open_cases": active.count(),
            "overdue_cases": active.filter(due_at__lt=now).count(),
            "unassigned_cases": active.filter(assignee__isnull=True).count(),
        }

    return cache.get_or_set(f"console:dashboard:{days}:{now:%Y%m%d%H%M}", compute, timeout=60)


def shadow_comparison(*, version_id: int, limit: int = 20) -> dict[str, Any]:
    """The shadow challenger beside the live model on the same transactions: how often their
    decisions would differ under today's thresholds, and the most recent pairs."""
    from django.db.models import Avg

    from fraud.scoring import thresholds_row

    thresholds = thresholds_row()
    pairs = Transaction.objects.filter(shadow_model_id=version_id, fraud_score__isnull=False)

    def band(field: str) -> Q:
        return Q(**{f"{field}__gte": thresholds.review_threshold})

    stats = pairs.aggregate(
        n=Count("id"),
        live_mean=Avg("fraud_score"),
        shadow_mean=Avg("shadow_score"),
        live_flags=Count("id", filter=band("fraud_score")),
        shadow_flags=Count("id", filter=band("shadow_score")),
        disagree=Count("id", filter=band("fraud_score") ^ band("shadow_score")),
        fraud=Count("id", filter=Q(label=Label.FRAUD)),
        live_caught=Count("id", filter=Q(label=Label.FRAUD) & band("fraud_score")),
        shadow_caught=Count("id", filter=Q(label=Label.FRAUD) & band("shadow_score")),
    )
    recent = list(
        pairs.select_related("model_version")
        .order_by("-scored_at")[:limit]
        .values("transaction_id", "fraud_score", "shadow_score", "decision", "label", "scored_at")
    )
    return {"stats": stats, "recent": recent, "review_threshold": thresholds.review_threshold}
