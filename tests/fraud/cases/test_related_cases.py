"""Related cases: the same API client's other cases of one customer or one card, and closing a
case together with them."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from audit.models import AuditEvent
from fraud.cases.selectors import cases_related, cases_related_active_counts
from fraud.cases.services import CaseActionError, case_close, case_close_group, case_escalate
from fraud.models import Case, CaseOutcome, CaseStatus, Label, LabelSource
from tests.factories import CaseFactory, TransactionFactory, UserFactory

CARD = "f" * 64


def case_of(owner, customer_id: str, card: str = "", **kwargs) -> Case:
    tx = TransactionFactory(
        owner=owner, customer_id=customer_id, card_fingerprint=card, fraud_score=0.8, decision="review"
    )
    return CaseFactory(transaction=tx, **kwargs)


@pytest.fixture
def erin(db):
    return UserFactory(username="erin-analyst", role="analyst")


@pytest.fixture
def family(alice, bob):
    """Alice's case of customer C1 paying with CARD, and around it: related and unrelated cases."""
    return {
        "anchor": case_of(alice, "C1", CARD, priority=3.0),
        "same_customer": case_of(alice, "C1", priority=2.0),
        "same_card": case_of(alice, "C2", CARD, priority=1.0),
        "both": case_of(alice, "C1", CARD, priority=0.5),
        "stranger": case_of(alice, "C3"),
        # Bob's customer "C1" is another person, and a card seen by Bob is Bob's business.
        "bob_same_customer_id": case_of(bob, "C1"),
        "bob_same_card": case_of(bob, "C9", CARD),
    }


def test_related_cases_share_the_client_and_the_customer_or_the_card(family, carol):
    related = cases_related(case=family["anchor"], user=carol)
    assert [(r.case.pk, r.why) for r in related.active] == [
        (family["same_customer"].pk, "same customer"),
        (family["same_card"].pk, "same card"),
        (family["both"].pk, "same customer and same card"),
    ]
    assert related.closed == [] and not related.more_active


def test_related_cases_never_include_another_clients_cases(family, carol):
    for key in ("bob_same_customer_id", "bob_same_card"):
        seen = {r.case.pk for r in cases_related(case=family[key], user=carol).active}
        assert seen.isdisjoint(c.pk for k, c in family.items() if not k.startswith("bob"))
    assert cases_related(case=family["bob_same_customer_id"], user=carol).active == []


def test_open_related_cases_come_first_then_the_recently_closed(family, carol):
    case_close(case=family["same_card"], actor=carol, outcome=CaseOutcome.LEGITIMATE)
    related = cases_related(case=family["anchor"], user=carol)
    assert [r.case.pk for r in related.active] == [family["same_customer"].pk, family["both"].pk]
    assert [r.case.pk for r in related.closed] == [family["same_card"].pk]


def test_a_related_case_says_whether_the_viewer_may_close_it_with_this_one(family, carol, erin):
    Case.objects.filter(pk=family["same_customer"].pk).update(assignee=erin, status=CaseStatus.IN_REVIEW)
    case_escalate(case=family["both"], actor=carol)
    refusals = {r.case.pk: r.refusal for r in cases_related(case=family["anchor"], user=carol).active}
    assert refusals == {
        family["same_customer"].pk: f"case {family['same_customer'].pk} is assigned to erin-analyst",
        family["same_card"].pk: "",
        family["both"].pk: f"case {family['both'].pk} is escalated: close it on its own page",
    }


def test_the_queue_counts_each_cases_open_related_cases(family, carol):
    cases = list(Case.objects.select_related("transaction").order_by("pk"))
    case_close(case=family["stranger"], actor=carol, outcome=CaseOutcome.LEGITIMATE)
    counts = cases_related_active_counts(cases=cases)
    assert counts[family["anchor"].pk] == 3
    assert counts[family["same_customer"].pk] == 2  # the anchor and "both" (customer C1)
    assert counts[family["same_card"].pk] == 2  # the anchor and "both" (the card)
    assert counts[family["stranger"].pk] == 0
    assert counts[family["bob_same_customer_id"].pk] == 0 and counts[family["bob_same_card"].pk] == 0
    assert cases_related_active_counts(cases=[]) == {}


def test_a_group_close_labels_each_transaction_and_audits_each_case(family, carol):
    group = [family["same_customer"], family["same_card"]]
    closed = case_close_group(
        case=family["anchor"],
        related_ids=[c.pk for c in group],
        actor=carol,
        outcome=CaseOutcome.CONFIRMED_FRAUD,
        note="same fraudster, card tested at three merchants",
    )
    ids = sorted(c.pk for c in [family["anchor"], *group])
    assert sorted(c.pk for c in closed) == ids
    for case in Case.objects.filter(pk__in=ids).select_related("transaction"):
        assert (case.status, case.outcome, case.assignee) == (CaseStatus.CLOSED, CaseOutcome.CONFIRMED_FRAUD, carol)
        assert (case.transaction.label, case.transaction.label_source) == (Label.FRAUD, LabelSource.ANALYST)
        assert case.notes.get().body == "same fraudster, card tested at three merchants"
        event = AuditEvent.objects.get(event_type="case.closed", object_id=str(case.pk))
        assert event.actor == carol and event.before["assignee"] is None and event.after["assignee"] == carol.username
        assert sorted(event.after["closed_with"]) == [pk for pk in ids if pk != case.pk]
    assert AuditEvent.objects.filter(event_type="transaction.labelled").count() == 3
    # The rest of the family is untouched.
    assert Case.objects.filter(status=CaseStatus.CLOSED).count() == 3


def test_a_group_close_refuses_another_analysts_case_and_closes_nothing(family, carol, erin):
    Case.objects.filter(pk=family["same_card"].pk).update(assignee=erin, status=CaseStatus.IN_REVIEW)
    with pytest.raises(CaseActionError, match=f"case {family['same_card'].pk} is assigned to erin-analyst"):
        case_close_group(
            case=family["anchor"],
            related_ids=[family["same_customer"].pk, family["same_card"].pk],
            actor=carol,
            outcome=CaseOutcome.LEGITIMATE,
        )
    assert not Case.objects.filter(status=CaseStatus.CLOSED).exists()
    assert not AuditEvent.objects.filter(event_type="case.closed").exists()


def test_a_group_close_from_another_analysts_case_is_refused(family, carol, erin):
    Case.objects.filter(pk=family["anchor"].pk).update(assignee=erin, status=CaseStatus.IN_REVIEW)
    with pytest.raises(CaseActionError, match="is assigned to erin-analyst"):
        case_close_group(
            case=family["anchor"], related_ids=[family["same_customer"].pk], actor=carol, outcome="legitimate"
        )
    assert not Case.objects.filter(status=CaseStatus.CLOSED).exists()


def test_a_group_close_takes_the_analysts_own_cases_too(family, carol):
    Case.objects.filter(pk=family["same_customer"].pk).update(assignee=carol, status=CaseStatus.IN_REVIEW)
    closed = case_close_group(
        case=family["anchor"], related_ids=[family["same_customer"].pk], actor=carol, outcome="inconclusive"
    )
    assert {c.status for c in closed} == {CaseStatus.CLOSED}
    assert Case.objects.get(pk=family["same_customer"].pk).transaction.label == ""  # inconclusive: no label


@pytest.mark.parametrize("key", ["stranger", "bob_same_customer_id", "bob_same_card"])
def test_a_group_close_refuses_cases_that_are_not_related(family, carol, key):
    with pytest.raises(CaseActionError, match=f"case {family[key].pk} is not related to case {family['anchor'].pk}"):
        case_close_group(
            case=family["anchor"],
            related_ids=[family["same_customer"].pk, family[key].pk],
            actor=carol,
            outcome=CaseOutcome.CONFIRMED_FRAUD,
        )
    assert not Case.objects.filter(status=CaseStatus.CLOSED).exists()
    assert Case.objects.get(pk=family[key].pk).transaction.label == ""


def test_a_group_close_refuses_escalated_and_already_closed_cases(family, carol):
    case_escalate(case=family["same_card"], actor=carol)
    case_close(case=family["both"], actor=carol, outcome=CaseOutcome.LEGITIMATE)
    with pytest.raises(CaseActionError) as refused:
        case_close_group(
            case=family["anchor"],
            related_ids=[family["same_card"].pk, family["both"].pk],
            actor=carol,
            outcome=CaseOutcome.CONFIRMED_FRAUD,
        )
    message = str(refused.value)
    assert message.startswith("Nothing was closed: ")
    assert f"case {family['same_card'].pk} is escalated" in message
    assert f"case {family['both'].pk} is already closed" in message
    assert Case.objects.get(pk=family["anchor"].pk).status == CaseStatus.OPEN


def test_a_group_close_needs_an_analyst_and_a_known_outcome(family, carol, alice):
    with pytest.raises(CaseActionError, match="not an active analyst"):
        case_close_group(case=family["anchor"], related_ids=[], actor=alice, outcome="legitimate")
    with pytest.raises(CaseActionError, match="unknown outcome"):
        case_close_group(case=family["anchor"], related_ids=[], actor=carol, outcome="maybe")
    assert not Case.objects.filter(status=CaseStatus.CLOSED).exists()


def test_two_analysts_closing_overlapping_groups_never_close_a_case_twice(postgres_tx):
    client = UserFactory(username="client", role="api_client")
    analysts = [UserFactory(username=f"analyst-{i}", role="analyst") for i in range(2)]
    cases = [case_of(client, "C1") for _ in range(5)]
    # Each analyst closes from their own case, both groups holding cases 2 to 4.
    groups = [(cases[0], [c.pk for c in cases[1:4]]), (cases[4], [c.pk for c in cases[1:4]])]
    outcomes = [CaseOutcome.CONFIRMED_FRAUD, CaseOutcome.LEGITIMATE]
    barrier = threading.Barrier(2)
    results: dict[int, str] = {}

    def close(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            anchor, related = groups[i]
            case_close_group(case=anchor, related_ids=related, actor=analysts[i], outcome=outcomes[i])
            results[i] = "closed"
        except CaseActionError as exc:
            results[i] = str(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=close, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert len(results) == 2 and list(results.values()).count("closed") == 1
    loser = next(i for i, r in results.items() if r != "closed")
    winner = 1 - loser
    assert results[loser].startswith("Nothing was closed: ") and "is already closed" in results[loser]
    for pk in groups[winner][1]:
        events = AuditEvent.objects.filter(event_type="case.closed", object_id=str(pk))
        assert events.count() == 1 and events.get().actor == analysts[winner]
        assert Case.objects.get(pk=pk).outcome == outcomes[winner]
    # The loser's own case stays open: nothing of its group was closed.
    assert Case.objects.get(pk=groups[loser][0].pk).status == CaseStatus.OPEN
    assert Case.objects.filter(status=CaseStatus.CLOSED).count() == 4
    assert AuditEvent.objects.filter(event_type="transaction.labelled").count() == 4  # one label each
