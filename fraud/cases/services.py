"""Cases: opened by scoring, worked by analysts. Every analyst action is audited in the same
transaction as the change; a close records its ``case.closed`` webhook event there too."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from audit.services import audit_record
from cipherguard.bulk import copy_insert
from fraud.cases.selectors import case_group_close_refusal, cases_related_filter, user_can_use_console
from fraud.models import Case, CaseNote, CaseOutcome, CaseStatus, Label, LabelSource, Transaction, WebhookEventType
from fraud.transactions.services import transaction_label
from fraud.webhooks import payloads
from fraud.webhooks.events import webhook_events_record


class CaseActionError(Exception):
    """The action does not apply to the case in its current state."""


OUTCOME_LABEL = {CaseOutcome.CONFIRMED_FRAUD: Label.FRAUD, CaseOutcome.LEGITIMATE: Label.LEGITIMATE}


def case_priority(*, score: float, amount: float) -> float:
    """Score weighted by the money at stake: a 0.9 on 5,000 outranks a 0.9 on 5, and a 0.95 on
    50 still outranks a 0.3 on 5,000. log10 keeps one huge amount from burying everything."""
    return round(score * math.log10(10.0 + max(amount, 0.0)), 6)


def case_needed(decision: str) -> bool:
    """Whether a decision opens a case for analysts (``FRAUD_CASE_DECISIONS``)."""
    return decision in settings.FRAUD_CASE_DECISIONS


def _new_case(tx: Transaction, now: datetime) -> Case:
    score = float(tx.fraud_score or 0.0)
    return Case(
        transaction=tx,
        priority=case_priority(score=score, amount=float(tx.amount)),
        score=score,
        amount=tx.amount,
        opened_at=now,
        due_at=now + timedelta(hours=settings.FRAUD_CASE_SLA_HOURS),
    )


def case_open_for(*, tx: Transaction) -> Case | None:
    """Open a case when the decision calls for one (``case_needed``). Called by scoring inside
    its transaction, so a stored flagged transaction always has its case."""
    if not case_needed(tx.decision):
        return None
    case = _new_case(tx, timezone.now())
    case.save(force_insert=True)
    return case


def cases_open_for(*, transactions: Iterable[Transaction]) -> list[Case]:
    """``case_open_for`` for many stored transactions, in one bulk insert (a batch chunk flags
    hundreds: one INSERT each was a tenth of the chunk's time). Called inside the scoring
    transaction, like ``case_open_for``."""
    now = timezone.now()
    cases = [_new_case(tx, now) for tx in transactions if case_needed(tx.decision)]
    copy_insert(Case, cases)
    return cases


def _state(case: Case) -> dict[str, object]:
    return {
        "status": case.status,
        "assignee": case.assignee.get_username() if case.assignee_id else None,
        "outcome": case.outcome,
    }


def _require_active(case: Case) -> None:
    if case.status == CaseStatus.CLOSED:
        raise CaseActionError(f"case {case.pk} is closed")


def _require_analyst(user: User) -> None:
    if not user_can_use_console(user):
        raise CaseActionError(f"{user.get_username()} is not an active analyst")


# The transaction's owner comes along for the webhook events of a close (whose data it is).
LOCKED_RELATED = ("assignee", "transaction", "transaction__owner")


def _locked(case: Case) -> Case:
    # of=("self",): lock the case row only (the assignee join is nullable, which FOR UPDATE refuses).
    return Case.objects.select_for_update(of=("self",)).select_related(*LOCKED_RELATED).get(pk=case.pk)


def case_assign(*, case: Case, assignee: User, actor: User) -> Case:
    _require_analyst(assignee)
    with transaction.atomic():
        case = _locked(case)
        _require_active(case)
        before = _state(case)
        case.assignee = assignee
        if case.status == CaseStatus.OPEN:
            case.status = CaseStatus.IN_REVIEW
        case.save(update_fields=["assignee", "status"])
        audit_record(event_type="case.assigned", actor=actor, obj=case, before=before, after=_state(case))
    return case


def case_take_next(*, analyst: User) -> Case | None:
    """Assign the highest-priority unassigned open case to ``analyst``.

    Two analysts pressing "take next" together must not get the same case: the candidate row is
    locked with ``FOR UPDATE SKIP LOCKED``, so the second analyst's query skips it and takes the
    next one instead of waiting and then double-assigning."""
    _require_analyst(analyst)
    with transaction.atomic():
        case = (
            Case.objects.select_for_update(skip_locked=True)
            .filter(status=CaseStatus.OPEN, assignee__isnull=True)
            .order_by("-priority", "opened_at", "pk")
            .first()
        )
        if case is None:
            return None
        before = _state(case)
        case.assignee = analyst
        case.status = CaseStatus.IN_REVIEW
        case.save(update_fields=["assignee", "status"])
        audit_record(event_type="case.taken", actor=analyst, obj=case, before=before, after=_state(case))
    return case


def case_add_note(*, case: Case, author: User, body: str) -> CaseNote:
    body = body.strip()
    if not body:
        raise CaseActionError("a note cannot be empty")
    with transaction.atomic():
        note = CaseNote.objects.create(case=case, author=author, body=body[:5000])
        audit_record(
            event_type="case.note_added", actor=author, obj=case, after={"note_id": note.pk, "note": body[:500]}
        )
    return note


def case_escalate(*, case: Case, actor: User, reason: str = "") -> Case:
    with transaction.atomic():
        case = _locked(case)
        _require_active(case)
        if case.status == CaseStatus.ESCALATED:
            raise CaseActionError(f"case {case.pk} is already escalated")
        before = _state(case)
        case.status = CaseStatus.ESCALATED
        case.save(update_fields=["status"])
        if reason.strip():
            CaseNote.objects.create(case=case, author=actor, body=reason.strip()[:5000])
        audit_record(
            event_type="case.escalated",
            actor=actor,
            obj=case,
            before=before,
            after={**_state(case), "reason": reason.strip()[:500]},
        )
    return case


def _close_locked(
    case: Case, *, actor: User, outcome: str, note: str, closed_with: Sequence[int] | None = None
) -> None:
    """The close itself, on a case already locked and checked active by the caller: status,
    outcome, the closer as assignee of an unassigned case, the note, the audit event, the webhook
    event, the label. ``closed_with``: the other cases of a group close."""
    before = _state(case)
    case.status = CaseStatus.CLOSED
    case.outcome = outcome
    case.closed_at = timezone.now()
    if case.assignee_id is None:
        case.assignee = actor
    case.save(update_fields=["status", "outcome", "closed_at", "assignee"])
    if note.strip():
        CaseNote.objects.create(case=case, author=actor, body=note.strip()[:5000])
    audit_record(
        event_type="case.closed",
        actor=actor,
        obj=case,
        before=before,
        after={
            **_state(case),
            "note": note.strip()[:500],
            **({"closed_with": list(closed_with)} if closed_with is not None else {}),
        },
    )
    label = OUTCOME_LABEL.get(CaseOutcome(outcome))
    webhook_events_record(
        event_type=WebhookEventType.CASE_CLOSED,
        owner=case.transaction.owner,
        payloads=[payloads.case_closed(case, label=label, closed_with=closed_with or ())],
    )
    if label:
        transaction_label(transaction_obj=case.transaction, label=label, source=LabelSource.ANALYST, actor=actor)


def case_close(*, case: Case, actor: User, outcome: str, note: str = "") -> Case:
    """Close with an outcome. A confirmed fraud or a legitimate verdict labels the transaction,
    which is how analysts' decisions become training data."""
    if outcome not in CaseOutcome.values:
        raise CaseActionError(f"unknown outcome {outcome!r}")
    with transaction.atomic():
        case = _locked(case)
        _require_active(case)
        _close_locked(case, actor=actor, outcome=outcome, note=note)
    return case


CASE_GROUP_MAX = 50


def case_close_group(
    *, case: Case, related_ids: Iterable[int], actor: User, outcome: str, note: str = ""
) -> list[Case]:
    """Close ``case`` and the chosen cases related to it (same API client, and the same customer
    or card: ``cases_related_filter``) with one outcome and note, all or nothing. Each case is
    closed as ``case_close`` closes one: its own label, note and ``case.closed`` audit event
    (which also names the cases closed with it).

    Who may close what: ``case_group_close_refusal``. A case the analyst may not close refuses
    the whole group rather than closing the rest, which keeps "one verdict for these cases" true:
    the analyst sees the page again as it now is and chooses again.

    Two analysts closing overlapping groups: every case of the group is locked (``FOR UPDATE``,
    in primary-key order, so two groups never wait on each other crosswise) before any check,
    so the second one waits for the first to commit, then finds those cases closed and refuses
    instead of closing them twice."""
    if outcome not in CaseOutcome.values:
        raise CaseActionError(f"unknown outcome {outcome!r}")
    _require_analyst(actor)
    others = sorted({int(pk) for pk in related_ids} - {case.pk})
    if len(others) > CASE_GROUP_MAX:
        raise CaseActionError(f"at most {CASE_GROUP_MAX} related cases can be closed at once")
    tx = case.transaction
    with transaction.atomic():
        # of=("self",): as in _locked, the nullable assignee join cannot be locked.
        locked = list(
            Case.objects.select_for_update(of=("self",))
            .select_related(*LOCKED_RELATED)
            .filter(Q(pk=case.pk) | (Q(pk__in=others) & cases_related_filter(tx=tx)))
            .order_by("pk")
        )
        found = {c.pk for c in locked}
        problems = [f"case {pk} is not related to case {case.pk}" for pk in others if pk not in found]
        problems += [refusal for c in locked if (refusal := case_group_close_refusal(case=c, user=actor))]
        if problems:
            raise CaseActionError("Nothing was closed: " + "; ".join(problems) + ".")
        for c in locked:
            _close_locked(
                c,
                actor=actor,
                outcome=outcome,
                note=note,
                closed_with=[o.pk for o in locked if o.pk != c.pk],
            )
    return locked


def cases_bulk_assign(*, case_ids: Iterable[int], assignee: User, actor: User) -> int:
    """Assign each active case; returns how many changed. One transaction: all or nothing."""
    done = 0
    with transaction.atomic():
        for case in Case.objects.filter(pk__in=list(case_ids)).active().order_by("pk"):
            case_assign(case=case, assignee=assignee, actor=actor)
            done += 1
    return done


def cases_bulk_close(*, case_ids: Iterable[int], outcome: str, actor: User, note: str = "") -> int:
    done = 0
    with transaction.atomic():
        for case in Case.objects.filter(pk__in=list(case_ids)).active().order_by("pk"):
            case_close(case=case, actor=actor, outcome=outcome, note=note)
            done += 1
    return done
