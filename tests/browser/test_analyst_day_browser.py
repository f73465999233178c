"""An analyst's day in a real browser: take the next case, see the customer's other cases, close
them together with one verdict, and find the queue and the dashboard as they should be.

Screenshots go to ``CONSOLE_SHOTS`` when set (a folder, to look at the layout), else to the
test's own temporary folder."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from audit.models import AuditEvent
from fraud.models import Case, CaseOutcome, CaseStatus
from tests.factories import PASSWORD, CaseFactory, TransactionFactory


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("CONSOLE_SHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def flagged(owner, customer_id: str, *, when: datetime, priority: float, **tx) -> Case:
    defaults = {"fraud_score": 0.9, "decision": "decline", "currency": "EUR"}
    return CaseFactory(
        transaction=TransactionFactory(owner=owner, customer_id=customer_id, timestamp=when, **{**defaults, **tx}),
        priority=priority,
    )


@pytest.fixture
def day(alice):
    """A customer whose card was stolen: four cases in an hour; one unrelated case; and a month of
    ordinary traffic, some of it labelled fraud, for the dashboard."""
    now = datetime.now(UTC)
    for d in range(1, 30):
        for i in range(6):
            TransactionFactory(
                owner=alice,
                customer_id=f"C{d:02d}{i}",
                timestamp=now - timedelta(days=d, minutes=i),
                fraud_score=0.05 + 0.1 * i,
                decision="approve" if i < 5 else "review",
                label="fraud" if i == 5 and d % 3 == 0 else "",
                label_time=now if i == 5 and d % 3 == 0 else None,
            )
    for d in range(2, 10):  # the customer's habits: small card payments at home
        TransactionFactory(
            owner=alice,
            customer_id="C000042",
            timestamp=now - timedelta(days=d),
            amount=Decimal("38.50"),
            merchant_id="M1",
        )
    card = "9" * 64
    hour = now - timedelta(hours=1)
    anchor = flagged(alice, "C000042", when=hour, priority=9.0, amount=Decimal("1850"), country="NG",
                     channel="online", merchant_id="M00007", card_fingerprint=card, card_first6="411111",
                     card_last4="1111")  # fmt: skip
    related = [
        flagged(alice, "C000042", when=hour + timedelta(minutes=5), priority=4.0, amount=Decimal("990"),
                merchant_id="M00008", decision="review", fraud_score=0.7),
        flagged(alice, "C000042", when=hour + timedelta(minutes=9), priority=3.0, amount=Decimal("640"),
                merchant_id="M00009"),
        flagged(alice, "C000777", when=hour + timedelta(minutes=12), priority=2.0, amount=Decimal("720"),
                merchant_id="M00007", card_fingerprint=card, card_first6="411111", card_last4="1111"),
    ]  # fmt: skip
    other = flagged(alice, "C000500", when=hour, priority=1.0, decision="review", fraud_score=0.6)
    return {"anchor": anchor, "related": related, "other": other}


def test_an_analyst_closes_a_customers_cases_together_and_the_dashboard_shows_every_decision(
    live_server, browser_page, carol, day, shots
):
    page = browser_page
    anchor, related = day["anchor"], day["related"]

    page.goto(f"{live_server.url}/console/login/")
    page.fill("#id_username", carol.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/console/")
    first_row = page.locator("table.cases tbody tr").first
    assert first_row.locator("a.badge.rel").inner_text() == "+3 related"
    page.screenshot(path=str(shots / "queue-morning.png"), full_page=True)
    for width in (1360, 1380, 1400):  # "from … to …" stays on one line
        page.set_viewport_size({"width": width, "height": 900})
        for legend in ("Score", "Amount"):
            rng = page.locator(f"fieldset.range:has(legend:text('{legend}'))")
            assert rng.evaluate("el => el.getBoundingClientRect().height") < 50
        page.locator("form.filters").screenshot(path=str(shots / f"queue-filters-{width}.png"))
    page.set_viewport_size({"width": 1360, "height": 900})

    page.click("text=Take next case")
    page.wait_for_url(f"{live_server.url}/console/cases/{anchor.pk}/")
    section = page.locator("section#related")
    rows = section.locator("tbody tr")
    assert rows.count() == 3
    for case in related[:2]:
        assert "same customer" in section.locator(f"tr:has(a[href='/console/cases/{case.pk}/'])").inner_text()
    assert "same card" in section.locator(f"tr:has(a[href='/console/cases/{related[2].pk}/'])").inner_text()
    facts = page.locator("section[aria-labelledby=tx-h] dl.facts")
    for marker in ("new country", "new merchant", "new channel", "× usual amount"):
        assert facts.locator("mark.unusual", has_text=marker).is_visible()
    page.screenshot(path=str(shots / "case-before.png"), full_page=True)

    page.check("#related-all")
    assert section.locator("input[name=related]:checked").count() == 3
    section.locator("input[name=outcome][value=confirmed_fraud]").check()
    section.locator("textarea[name=note]").fill("Stolen card: the cardholder confirmed none of these.")
    section.locator("button[type=submit]").click()
    page.wait_for_selector(f"text=Closed case #{anchor.pk} and 3 related cases")
    assert page.locator("p.status").inner_text().endswith("closed just now")
    page.screenshot(path=str(shots / "case.png"), full_page=True)

    ids = [anchor.pk, *(c.pk for c in related)]
    for case in Case.objects.filter(pk__in=ids).select_related("transaction"):
        assert (case.status, case.outcome, case.transaction.label) == (
            CaseStatus.CLOSED,
            CaseOutcome.CONFIRMED_FRAUD,
            "fraud",
        )
    assert AuditEvent.objects.filter(event_type="case.closed", actor=carol).count() == 4

    page.click("nav >> text=Queue")
    page.wait_for_url(f"{live_server.url}/console/")
    listed = page.locator("table.cases tbody input[name=cases]").evaluate_all("els => els.map(e => +e.value)")
    assert listed == [day["other"].pk]
    page.screenshot(path=str(shots / "queue.png"), full_page=True)

    page.click("nav >> text=Dashboard")
    page.wait_for_url(f"{live_server.url}/console/dashboard/")
    chart = page.locator("section:has(h2:text('Decision mix')) svg")
    assert chart.locator("text.tick").all_text_contents()[-3:] == ["approve", "review", "decline"]
    assert chart.locator("rect.bar").count() == 3
    assert all(
        float(h) > 0 for h in chart.locator("rect.bar").evaluate_all("els => els.map(e => e.getAttribute('height'))")
    )
    assert "0" not in chart.locator("text.tick").all_text_contents()  # the log axis starts at 1
    rate = page.locator("section:has(h2:text('Confirmed-fraud rate')) svg")
    assert rate.locator("circle.point").count() >= 9 and rate.locator("polyline").count() >= 1
    smallest = page.evaluate(
        "Math.min(...[...document.querySelectorAll('svg.chart text')].map(t => parseFloat(getComputedStyle(t).fontSize) * t.ownerSVGElement.getBoundingClientRect().width / 640))"
    )
    assert smallest >= 11  # on screen, after the chart is scaled to its card
    page.screenshot(path=str(shots / "dashboard.png"), full_page=True)
