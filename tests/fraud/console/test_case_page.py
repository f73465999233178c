"""The case page's related cases, group close and habit marks; the queue's related marks; the
wording of times and statuses."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from fraud.cases.services import case_close
from fraud.models import Case, CaseStatus
from tests.factories import PASSWORD, CaseFactory, TransactionFactory, UserFactory

CARD = "c" * 64


@pytest.fixture
def console(carol) -> Client:
    client = Client()
    client.login(username=carol.username, password=PASSWORD)
    return client


def case_of(owner, customer_id: str, card: str = "", **kwargs) -> Case:
    tx = TransactionFactory(
        owner=owner, customer_id=customer_id, card_fingerprint=card, fraud_score=0.8, decision="review"
    )
    return CaseFactory(transaction=tx, **kwargs)


def text(html: str) -> str:
    """The page's words, tags dropped and white space squeezed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def section(html: str, section_id: str) -> str:
    start = html.index(f'id="{section_id}"')
    return html[start : html.index("</section>", start)]


def test_the_case_page_lists_related_cases_with_why_and_a_link(console, alice, bob):
    anchor = case_of(alice, "C1", CARD)
    customer = case_of(alice, "C1")
    card = case_of(alice, "C7", CARD)
    other_client = case_of(bob, "C1", CARD)
    html = console.get(f"/console/cases/{anchor.pk}/").content.decode()
    related = section(html, "related")
    assert f'href="/console/cases/{customer.pk}/"' in related and f'href="/console/cases/{card.pk}/"' in related
    assert f"/console/cases/{other_client.pk}/" not in related
    words = text(related)
    assert f"#{customer.pk} same customer" in words and f"#{card.pk} same card" in words
    assert f'name="related" value="{customer.pk}"' in related


def test_a_case_without_relatives_says_so(console, alice):
    case = case_of(alice, "C1")
    assert "No other case for this customer." in text(console.get(f"/console/cases/{case.pk}/").content.decode())


def test_the_case_page_costs_the_same_queries_with_more_related_cases(console, alice):
    anchor = case_of(alice, "C1", CARD)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert console.get(f"/console/cases/{anchor.pk}/").status_code == 200
        return len(queries)

    case_of(alice, "C1")
    first = count()
    for i in range(6):
        case_of(alice, f"C{i + 10}", CARD, assignee=UserFactory(username=f"a{i}", role="analyst"))
    case_close(case=case_of(alice, "C1"), actor=anchor.transaction.owner, outcome="legitimate")
    assert count() == first


def test_an_analyst_closes_a_case_with_its_related_cases(console, alice, carol):
    anchor, first, second = case_of(alice, "C1"), case_of(alice, "C1"), case_of(alice, "C1")
    untouched = case_of(alice, "C1")
    response = console.post(
        f"/console/cases/{anchor.pk}/close-group/",
        {"outcome": "confirmed_fraud", "note": "one fraudster", "related": [str(first.pk), str(second.pk)]},
        follow=True,
    )
    html = response.content.decode()
    assert f"Closed case #{anchor.pk} and 2 related cases (#{first.pk}, #{second.pk})." in html
    closed = Case.objects.filter(pk__in=[anchor.pk, first.pk, second.pk]).select_related("transaction")
    assert {(c.status, c.transaction.label, c.assignee) for c in closed} == {(CaseStatus.CLOSED, "fraud", carol)}
    assert Case.objects.get(pk=untouched.pk).status == CaseStatus.OPEN
    queue = [c.pk for c in console.get("/console/").context["page"].object_list]
    assert queue == [untouched.pk]


def test_a_group_close_with_another_analysts_case_is_refused_and_says_why(console, alice):
    erin = UserFactory(username="erin-analyst", role="analyst")
    anchor, theirs = case_of(alice, "C1"), case_of(alice, "C1", assignee=erin, status=CaseStatus.IN_REVIEW)
    page = console.get(f"/console/cases/{anchor.pk}/").content.decode()
    assert f'name="related" value="{theirs.pk}"' not in page  # not offered, and the page says why
    assert "Cases another analyst has taken, or that are escalated, are closed on their own page." in page
    response = console.post(
        f"/console/cases/{anchor.pk}/close-group/",
        {"outcome": "legitimate", "related": [str(theirs.pk)]},
        follow=True,
    )
    assert f"Nothing was closed: case {theirs.pk} is assigned to erin-analyst." in response.content.decode()
    assert not Case.objects.filter(status=CaseStatus.CLOSED).exists()


def test_another_analysts_case_offers_no_group_close_and_says_why(console, alice):
    erin = UserFactory(username="erin-analyst", role="analyst")
    theirs = case_of(alice, "C1", assignee=erin, status=CaseStatus.IN_REVIEW)
    case_of(alice, "C1")
    html = console.get(f"/console/cases/{theirs.pk}/").content.decode()
    assert 'name="related"' not in html and "and ticked cases</button>" not in html
    assert f"here case {theirs.pk} is assigned to erin-analyst." in text(html)


@pytest.mark.parametrize(
    ("related", "message"),
    [
        ([], "Tick at least one related case to close with this one."),
        (["x1"], "Related cases are chosen by their number."),
        (["9" * 30], "Related cases are chosen by their number."),
        ([str(n) for n in range(1000, 1051)], "At most 50 related cases can be closed at once."),
    ],
)
def test_bad_group_close_input_says_what_is_wrong(console, alice, related, message):
    anchor = case_of(alice, "C1")
    response = console.post(
        f"/console/cases/{anchor.pk}/close-group/", {"outcome": "legitimate", "related": related}, follow=True
    )
    assert response.status_code == 200 and message in response.content.decode()
    assert Case.objects.get(pk=anchor.pk).status == CaseStatus.OPEN


def test_a_group_close_of_another_clients_case_is_refused(console, alice, bob):
    anchor, bobs = case_of(alice, "C1"), case_of(bob, "C1")
    response = console.post(
        f"/console/cases/{anchor.pk}/close-group/", {"outcome": "legitimate", "related": [str(bobs.pk)]}, follow=True
    )
    assert f"case {bobs.pk} is not related to case {anchor.pk}" in response.content.decode()
    assert not Case.objects.filter(status=CaseStatus.CLOSED).exists()


def test_the_case_page_marks_what_differs_from_the_customers_habits(console, alice):
    tx = TransactionFactory(
        owner=alice,
        customer_id="C5",
        merchant_id="M9",
        country="DE",
        channel="online",
        amount=Decimal("900"),
        fraud_score=0.9,
        decision="decline",
    )
    for days in range(1, 6):
        TransactionFactory(owner=alice, customer_id="C5", timestamp=tx.timestamp - timedelta(days=days))
    case = CaseFactory(transaction=tx)
    html = console.get(f"/console/cases/{case.pk}/").content.decode()
    facts = text(html[html.index('id="tx-h"') : html.index('id="act-h"')])
    assert "21.4× usual amount" in facts  # 900 against a median of 42.00
    assert "new merchant" in facts and "new country" in facts and "new channel" in facts
    assert "new currency" not in facts
    assert 'class="unusual" title="This customer\'s first payment from DE"' in html  # not colour alone
    timeline = text(section(html, "cust-h"))
    assert "M9 new · DE new · online new" in timeline and "900.00 21.4×" in timeline


def test_a_first_payment_is_said_to_be_one(console, alice):
    case = case_of(alice, "C77")
    assert "first payment seen" in text(console.get(f"/console/cases/{case.pk}/").content.decode())


def test_a_closed_cases_status_and_note_read_right(console, carol):
    case = CaseFactory()
    console.post(f"/console/cases/{case.pk}/close/", {"outcome": "legitimate", "note": "cardholder confirmed"})
    html = console.get(f"/console/cases/{case.pk}/").content.decode()
    status = text(re.search(r'<p class="status">(.*?)</p>', html, re.S).group(1)).strip()
    assert status == f"Closed · Legitimate · assigned to {carol.username} · closed just now"
    assert "Closed just now as <strong>Legitimate</strong>." in html
    assert "0 minutes" not in html
    assert html.count("cardholder confirmed") == 1  # in the notes; the history links to it
    assert "with a note (see notes)" in text(section(html, "hist-h"))


def test_the_queue_marks_cases_with_related_open_cases(console, alice, bob):
    lone = case_of(alice, "C2", priority=9.0)
    family = [case_of(alice, "C1", CARD, priority=3.0), case_of(alice, "C1", priority=2.0)]
    by_card = case_of(alice, "C3", CARD, priority=1.0)
    case_of(bob, "C1", CARD)
    html = console.get("/console/").content.decode()
    rows = {
        int(m.group(1)): m.group(0)
        for m in re.finditer(r'<tr[^>]*>\s*<td><input[^>]*value="(\d+)".*?</tr>', html, re.S)
    }
    assert "related" not in rows[lone.pk]
    assert f'href="/console/cases/{family[0].pk}/#related"' in rows[family[0].pk]
    assert "+2 related" in rows[family[0].pk]  # the other C1 case and the same card's
    assert "+1 related" in rows[family[1].pk] and "+1 related" in rows[by_card.pk]


def test_the_queues_ranges_keep_from_and_to_together(console):
    html = console.get("/console/").content.decode()
    for legend, low, high in (("Score", "score_min", "score_max"), ("Amount", "amount_min", "amount_max")):
        fieldset = re.search(rf'<fieldset class="range"><legend>{legend}</legend>(.*?)</fieldset>', html, re.S)
        assert fieldset and f'name="{low}"' in fieldset.group(1) and f'name="{high}"' in fieldset.group(1)
