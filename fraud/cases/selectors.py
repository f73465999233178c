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
from fraud.cases.habits import Unusual, unusual_payments
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


@dataclass(frozen=True)
class CustomerHistory:
    """The customer's recent payments up to the case's (newest first), each with what was unusual
    about it for this customer (``fraud.cases.habits``), and the case's own payment's."""

    timeline: list[tuple[Transaction, Unusual]]
    current: Unusual


def customer_history(*, tx: Transaction, limit: int = 20, context: int = 500) -> CustomerHistory:
    """``limit`` payments for the timeline, judged against up to ``context`` payments before
    them (same API client and customer): one index range read of ``tx_customer_cover_cur``. A
    customer with more history than that is judged on their last ``context`` payments: "new"
    then means "not in their last 500 payments", which is what an analyst would check anyway."""
    rows = list(
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
        )[: context + limit]
    )
    rows.reverse()
    signals = dict(zip((r.pk for r in rows), unusual_payments(rows), strict=True))
    newest = rows[::-1][:limit]
    return CustomerHistory(timeline=[(r, signals[r.pk]) for r in newest], current=signals.get(tx.pk, Unusual()))


def cases_related_filter(*, tx: Transaction) -> Q:
    """Cases whose transaction shares ``tx``'s API client and either its customer or its card
    (fingerprint). Another client's customer "C1" is another person: the owner always applies."""
    same = Q(transaction__customer_id=tx.customer_id)
    if tx.card_fingerprint:
        same |= Q(transaction__card_fingerprint=tx.card_fingerprint)
    return Q(transaction__owner_id=tx.owner_id) & same


def case_group_close_refusal(*, case: Case, user: User) -> str:
    """Why ``user`` may not close ``case`` as part of a group close ("" when they may).

    A group close takes the cases nobody has taken (as the single close does) and the user's own,
    and no other: a fraud team splits work by assignment, and one analyst's verdict on a customer
    must not silently overwrite a colleague's investigation in progress, nor skip the second look
    an escalation asked for. Such cases are closed on their own page, one at a time, on purpose."""
    if case.status == CaseStatus.CLOSED:
        return f"case {case.pk} is already closed"
    if case.status == CaseStatus.ESCALATED:
        return f"case {case.pk} is escalated: close it on its own page"
    if case.assignee_id not in (None, user.pk):
        return f"case {case.pk} is assigned to {case.assignee.get_username()}"  # type: ignore[union-attr]
    return ""


@dataclass(frozen=True)
class RelatedCase:
    case: Case
    same_customer: bool
    same_card: bool
    refusal: str = ""  # why the viewer may not close it with this case (``case_group_close_refusal``)

    @property
    def why(self) -> str:
        return " and ".join(w for w, on in (("same customer", self.same_customer), ("same card", self.same_card)) if on)


@dataclass(frozen=True)
class RelatedCases:
    active: list[RelatedCase]
    closed: list[RelatedCase]
    more_active: bool  # more active related cases than listed


def cases_related(*, case: Case, user: User, active_limit: int = 50, closed_limit: int = 10) -> RelatedCases:
    """The other cases of the same customer or card (``cases_related_filter``): the active ones
    by priority, as the queue orders them, then the most recently closed; each active one says
    whether ``user`` may close it with this case."""
    tx = case.transaction
    related = (
        Case.objects.filter(cases_related_filter(tx=tx))
        .exclude(pk=case.pk)
        .select_related("transaction", "assignee")
        .defer("transaction__reasons", "transaction__rule_matches", "transaction__card_ciphertext")
    )
    active = list(related.active().order_by("-priority", "opened_at", "pk")[: active_limit + 1])
    closed = list(related.filter(status=CaseStatus.CLOSED).order_by("-closed_at", "-pk")[:closed_limit])

    def wrap(c: Case) -> RelatedCase:
        other = c.transaction
        return RelatedCase(
            case=c,
            same_customer=other.customer_id == tx.customer_id,
            same_card=bool(tx.card_fingerprint) and other.card_fingerprint == tx.card_fingerprint,
            refusal=case_group_close_refusal(case=c, user=user) if c.status != CaseStatus.CLOSED else "",
        )

    return RelatedCases(
        active=[wrap(c) for c in active[:active_limit]],
        closed=[wrap(c) for c in closed],
        more_active=len(active) > active_limit,
    )


def cases_related_active_counts(*, cases: list[Case]) -> dict[int, int]:
    """For each case (with its transaction loaded), how many other active cases share its API
    client and its customer or card: the queue's "+N related" marks, in one query per page."""
    if not cases:
        return {}
    wanted = Q()
    by_owner: dict[int, tuple[set[str], set[str]]] = {}
    for c in cases:
        customers, cards = by_owner.setdefault(c.transaction.owner_id, (set(), set()))
        customers.add(c.transaction.customer_id)
        if c.transaction.card_fingerprint:
            cards.add(c.transaction.card_fingerprint)
    for owner_id, (customers, cards) in by_owner.items():
        same = Q(transaction__customer_id__in=customers)
        if cards:
            same |= Q(transaction__card_fingerprint__in=cards)
        wanted |= Q(transaction__owner_id=owner_id) & same
    by_customer: dict[tuple[int, str], set[int]] = {}
    by_card: dict[tuple[int, str], set[int]] = {}
    for pk, owner_id, customer_id, card in (
        Case.objects.active()
        .filter(wanted)
        .values_list("pk", "transaction__owner_id", "transaction__customer_id", "transaction__card_fingerprint")
    ):
        by_customer.setdefault((owner_id, customer_id), set()).add(pk)
        if card:
            by_card.setdefault((owner_id, card), set()).add(pk)
    counts = {}
    for c in cases:
        t = c.transaction
        ids = by_customer.get((t.owner_id, t.customer_id), set())
        if t.card_fingerprint:
            ids = ids | by_card.get((t.owner_id, t.card_fingerprint), set())
        counts[c.pk] = len(ids - {c.pk})
    return counts


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


# The audit fields that repeat a case note's text (a close's note, an escalation's reason).
NOTE_KEYS = ("note", "reason")


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
        extra = {k: v for k, v in after.items() if k not in before and v not in ("", None, [])}
        # A note's text is on the page once, in the case's notes (whole, where the audit event
        # keeps its first 500 characters): the event only says it came with one.
        with_note = [k for k in NOTE_KEYS if extra.pop(k, None)]
        extra.pop("note_id", None)
        if "closed_with" in extra:
            extra["closed together with"] = ", ".join(f"#{pk}" for pk in extra.pop("closed_with"))
        history.append(
            {
                "when": event.occurred_at,
                "who": event.actor_label,
                "what": event.event_type,
                "changes": [(k, before[k], after[k]) for k in after if k in before and before[k] != after[k]],
                "extra": extra,
                "with_note": with_note[0] if with_note else "",
            }
        )
    return history


def console_analysts() -> QuerySet[User]:
    return User.objects.filter(is_active=True, role__in=[Role.ANALYST, Role.ADMIN]).order_by("username")
