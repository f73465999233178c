"""A real browser (Debian's chromium driven by Playwright) works a case end to end."""

from __future__ import annotations

from audit.models import AuditEvent
from fraud.models import CaseOutcome, CaseStatus
from tests.factories import PASSWORD, CaseFactory, TransactionFactory


def test_an_analyst_takes_a_case_closes_it_as_fraud_and_finds_it_in_the_trail(
    live_server, browser_page, carol, tmp_path
):
    tx = TransactionFactory(
        customer_id="C000042",
        merchant_id="M00007",
        fraud_score=0.93,
        decision="decline",
        reasons=[
            {
                "code": "AMOUNT_HIGH_FOR_CUSTOMER",
                "value": 9.1,
                "contribution": 0.61,
                "message": "amount is 9.1× this customer's 30-day average",
            }
        ],
    )
    case = CaseFactory(transaction=tx, priority=5.0)
    CaseFactory(priority=1.0)  # a lower-priority case that "take next" must not pick
    page = browser_page

    page.goto(f"{live_server.url}/console/")
    assert "/console/login/" in page.url
    page.fill("#id_username", carol.username)
    page.fill("#id_password", PASSWORD)
    page.keyboard.press("Enter")  # the form works from the keyboard
    page.wait_for_url(f"{live_server.url}/console/")
    assert page.locator("table.cases tbody tr").count() == 2
    page.screenshot(path=str(tmp_path / "queue.png"), full_page=True)

    page.click("text=Take next case")
    page.wait_for_url(f"{live_server.url}/console/cases/{case.pk}/")
    assert page.locator(f"text=Case {case.pk} is yours.").is_visible()
    assert page.locator("text=amount is 9.1× this customer's 30-day average").is_visible()

    page.check("input[name=outcome][value=confirmed_fraud]")
    page.fill("textarea[name=note]", "Cardholder denies the payment.")
    page.click("button:has-text('Close case')")
    page.wait_for_selector("text=Closed. The outcome labels the transaction for retraining.")
    history = page.locator("section[aria-labelledby=hist-h]")
    assert history.locator("text=case.closed").is_visible()
    assert history.locator(f"text={carol.username}").first.is_visible()
    page.screenshot(path=str(tmp_path / "case.png"), full_page=True)

    case.refresh_from_db()
    tx.refresh_from_db()
    assert (case.status, case.outcome, tx.label) == (CaseStatus.CLOSED, CaseOutcome.CONFIRMED_FRAUD, "fraud")
    assert AuditEvent.objects.filter(event_type="case.closed", actor=carol, object_id=str(case.pk)).exists()
    assert (tmp_path / "queue.png").stat().st_size > 10_000
