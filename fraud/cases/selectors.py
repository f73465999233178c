"""Permission-checked reads of cases: only analysts and admins reach them (API clients never reach
the console), and with a case, the customer's and the merchant's recent history."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.http import Http404

from accounts.models import Role, User
from audit.selectors import audit_events_for_object
from fraud.models import Case, CaseStatus, Label, Transaction


def user_can_use_console(user: User) -> bool:
    return bool(user.is_authenticated and user.is_active and user.role in {Role.ANALYST, Role.ADMIN})


def case_get_for_user(*, user: User, case_id: int) -> Case:
    """A case for the console, or 404. Every analyst and admin may see every case; nobody else
    (API clients never reach the console) sees any."""
    if not user_can_use_console(user):
        raise Http404("No such case.")
    case = (
        Case.objects.select_related("transaction", "transaction__owner", "transaction__model_version", "assignee")
        .defer("transaction__model_version__artifact")
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
