"""Cases: opened by scoring, worked through services, labelling transactions when closed."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from audit.models import AuditEvent
from fraud.cases.services import (
    CaseActionError,
    case_add_note,
    case_assign,
    case_close,
    case_escalate,
    case_priority,
    case_take_next,
    cases_bulk_assign,
    cases_bulk_close,
)
from fraud.models import Case, CaseOutcome, CaseStatus, Label, LabelSource
from fraud.rules.services import thresholds_update
from tests.factories import CaseFactory, UserFactory
from tests.fraud.scoring.test_scoring_api import URL, body


def test_a_review_or_decline_decision_opens_a_case_and_an_approval_does_not(
    alice_api, active_model, django_capture_on_commit_callbacks, settings
):
    with django_capture_on_commit_callbacks(execute=True):
        thresholds_update(review=0.0, decline=1.0)
    alice_api.post(URL, body(transaction_id="flagged"), format="json")
    with django_capture_on_commit_callbacks(execute=True):
        thresholds_update(review=0.999999, decline=1.0)
    alice_api.post(URL, body(transaction_id="approved"), format="json")

    case = Case.objects.get()
    assert case.transaction.transaction_id == "flagged"
    assert case.status == CaseStatus.OPEN and case.assignee is None
    assert case.score == case.transaction.fraud_score
    assert (case.due_at - case.opened_at).total_seconds() == settings.FRAUD_CASE_SLA_HOURS * 3600


def test_which_decisions_open_cases_is_a_setting(alice_api, active_model, django_capture_on_commit_callbacks, settings):
    settings.FRAUD_CASE_DECISIONS = ["decline"]
    with django_capture_on_commit_callbacks(execute=True):
        thresholds_update(review=0.0, decline=1.0)
    alice_api.post(URL, body(transaction_id="reviewed"), format="json")
    assert not Case.objects.exists()


def test_priority_weighs_score_by_money_at_stake():
    assert case_priority(score=0.9, amount=5000) > case_priority(score=0.9, amount=5)
    assert case_priority(score=0.95, amount=50) > case_priority(score=0.3, amount=5000)


def test_take_next_assigns_the_highest_priority_unassigned_case(carol):
    low, high = CaseFactory(priority=1.0), CaseFactory(priority=3.0)
    CaseFactory(priority=9.0, assignee=UserFactory(username="zed", role="analyst"), status=CaseStatus.IN_REVIEW)
    taken = case_take_next(analyst=carol)
    assert taken == high
    assert (taken.assignee, taken.status) == (carol, CaseStatus.IN_REVIEW)
    assert case_take_next(analyst=carol) == low
    assert case_take_next(analyst=carol) is None
    assert AuditEvent.objects.filter(event_type="case.taken").count() == 2


@pytest.mark.parametrize(
    ("outcome", "label"),
    [
        (CaseOutcome.CONFIRMED_FRAUD, Label.FRAUD),
        (CaseOutcome.LEGITIMATE, Label.LEGITIMATE),
        (CaseOutcome.INCONCLUSIVE, ""),
    ],
)
def test_closing_a_case_labels_its_transaction(carol, outcome, label):
    case = CaseFactory()
    case_close(case=case, actor=carol, outcome=outcome, note="checked with the cardholder")
    case.refresh_from_db()
    tx = case.transaction
    tx.refresh_from_db()
    assert (case.status, case.outcome, case.closed_at is not None) == (CaseStatus.CLOSED, outcome, True)
    assert tx.label == label
    if label:
        assert tx.label_source == LabelSource.ANALYST and tx.label_time is not None
        assert AuditEvent.objects.filter(event_type="transaction.labelled", actor=carol, object_id=str(tx.pk)).exists()
    assert case.notes.get().body == "checked with the cardholder"


def test_a_closed_case_cannot_be_closed_or_escalated_again(carol):
    case = CaseFactory()
    case_close(case=case, actor=carol, outcome=CaseOutcome.LEGITIMATE)
    with pytest.raises(CaseActionError):
        case_close(case=case, actor=carol, outcome=CaseOutcome.CONFIRMED_FRAUD)
    with pytest.raises(CaseActionError):
        case_escalate(case=case, actor=carol)
    assert AuditEvent.objects.filter(event_type="case.closed").count() == 1


def test_assign_note_and_escalate_are_audited_with_before_and_after(carol, dave):
    case = CaseFactory()
    case_assign(case=case, assignee=dave, actor=carol)
    case_add_note(case=case, author=carol, body="called the merchant")
    case_escalate(case=case, actor=carol, reason="needs a senior")
    trail = list(AuditEvent.objects.filter(object_type="fraud.case", object_id=str(case.pk)).order_by("seq"))
    assert [e.event_type for e in trail] == ["case.assigned", "case.note_added", "case.escalated"]
    assert trail[0].before["assignee"] is None and trail[0].after["assignee"] == dave.username
    assert trail[2].after["status"] == CaseStatus.ESCALATED


def test_cases_can_only_go_to_active_analysts(carol, alice):
    with pytest.raises(CaseActionError):
        case_assign(case=CaseFactory(), assignee=alice, actor=carol)


def test_bulk_assign_and_bulk_close_skip_closed_cases(carol, dave):
    cases = [CaseFactory() for _ in range(3)]
    case_close(case=cases[0], actor=carol, outcome=CaseOutcome.LEGITIMATE)
    assert cases_bulk_assign(case_ids=[c.pk for c in cases], assignee=dave, actor=carol) == 2
    assert cases_bulk_close(case_ids=[c.pk for c in cases], outcome=CaseOutcome.CONFIRMED_FRAUD, actor=carol) == 2
    assert Case.objects.filter(status=CaseStatus.CLOSED).count() == 3
    assert sorted(Case.objects.values_list("transaction__label", flat=True)) == ["fraud", "fraud", "legitimate"]


def test_two_analysts_never_take_the_same_case(postgres_tx):
    analysts = [UserFactory(username=f"analyst-{i}", role="analyst") for i in range(6)]
    cases = [CaseFactory(priority=float(i)) for i in range(4)]
    barrier = threading.Barrier(len(analysts))
    taken: dict[str, int | None] = {}

    def take(analyst) -> None:
        try:
            barrier.wait(timeout=10)
            case = case_take_next(analyst=analyst)
            taken[analyst.username] = case.pk if case else None
        finally:
            connection.close()

    threads = [threading.Thread(target=take, args=(a,)) for a in analysts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    got = [pk for pk in taken.values() if pk is not None]
    assert len(taken) == 6
    assert sorted(got) == sorted(c.pk for c in cases)  # every case taken exactly once
    assert list(taken.values()).count(None) == 2  # two analysts found nothing left
    for case in Case.objects.all():
        assert case.assignee.username in taken and taken[case.assignee.username] == case.pk
