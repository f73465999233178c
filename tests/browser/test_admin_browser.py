"""A real browser walks an admin's day in the Django admin: the decision thresholds, a model
version's figures, and the lists, at a laptop's width.

Screenshots go to the test's temporary folder, or to ``ADMIN_SCREENSHOTS`` when set (to look at
the pages)."""

from __future__ import annotations

from datetime import UTC, datetime

from accounts.models import Role
from audit.models import AuditEvent
from audit.services import audit_record
from cipherguard import context
from fraud.models import ModelStatus
from fraud.rules.selectors import thresholds_row
from tests.browser.admin_pages import OVERFLOW, WIDTH, admin_signed_in, screenshots
from tests.factories import PASSWORD, ModelVersionFactory, UserFactory, trained_metrics


def _a_week_of_history(dave) -> tuple:
    """Model versions as training leaves them, and audit events with the longest values the
    columns hold: a machine client's long name, IPv6 origins, long object ids."""
    retired = ModelVersionFactory(
        trained=True,
        version="fb-20260301-031502-118305",
        status=ModelStatus.RETIRED,
        activated_at=datetime(2026, 3, 1, 3, 20, tzinfo=UTC),
        retired_at=datetime(2026, 3, 12, 3, 20, tzinfo=UTC),
    )
    active = ModelVersionFactory(
        trained=True,
        version="fb-20260312-031457-907311",
        status=ModelStatus.ACTIVE,
        activated_at=datetime(2026, 3, 12, 3, 20, tzinfo=UTC),
    )
    candidate = ModelVersionFactory(
        trained=True, version="fb-20260319-031511-482290", shadow=True, metrics=trained_metrics(champion=active.version)
    )
    processor = UserFactory(username="payments-processor-eu-west-1-production-client", role=Role.API_CLIENT)
    token = context.origin_ip.set("2001:0db8:85a3:0000:0000:8a2e:0370:7334")
    try:
        for n in range(25):
            audit_record(event_type="api_client.credentials_rotated", actor=dave, obj=processor)
            audit_record(
                event_type="transaction.labelled",
                actor=processor,
                object_type="fraud.transaction",
                object_id=f"order-2026-03-12-{n:04d}-" + "7" * 40,
                after={"label": "fraud"},
            )
    finally:
        context.origin_ip.reset(token)
    return retired, active, candidate


def test_an_admin_fixes_the_thresholds_reads_a_models_figures_and_the_lists_fit(
    live_server, browser_page, dave, tmp_path
):
    _retired, active, candidate = _a_week_of_history(dave)
    row = thresholds_row()
    decline = row.decline_threshold
    shots = screenshots(tmp_path)
    page = browser_page
    page.set_viewport_size({"width": WIDTH, "height": 900})

    page.goto(f"{live_server.url}/admin/")
    assert "/admin/login/" in page.url
    page.fill("#id_username", dave.username)
    page.fill("#id_password", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/admin/")
    assert page.locator("#site-name").inner_text() == "CipherGuard administration"

    # The thresholds open on their form (one row: no list to pick it from).
    page.locator("#content-main").get_by_role("link", name="Decision thresholds").click()
    page.wait_for_url(f"{live_server.url}/admin/fraud/decisionthresholds/{row.pk}/change/")
    page.fill("#id_review_threshold", "0.95")  # above the decline threshold
    page.click("input[name=_save]")
    error = page.locator("#id_review_threshold_error")
    error.wait_for()
    assert error.inner_text() == f"The review threshold must be lower than the decline threshold (0.95 ≥ {decline:g})."
    content = page.locator("#content").inner_text()
    assert "thresholds_ordered_in_unit_interval" not in content and "Constraint" not in content
    page.screenshot(path=str(shots / "thresholds-error.png"), full_page=True)
    row.refresh_from_db()
    assert row.review_threshold != 0.95

    page.fill("#id_review_threshold", "0.55")
    page.click("input[name=_save]")
    page.wait_for_selector("ul.messagelist li.success")
    assert page.input_value("#id_review_threshold") == "0.55"
    row.refresh_from_db()
    assert (row.review_threshold, row.updated_by) == (0.55, dave)
    event = AuditEvent.objects.filter(event_type="thresholds.changed").get()
    assert (event.actor, event.object_id, event.after) == (dave, str(row.pk), {"review": 0.55, "decline": decline})

    # The model versions: the list fits, and a version's page shows its figures as tables.
    page.goto(f"{live_server.url}/admin/fraud/modelversion/")
    width = page.evaluate(OVERFLOW)
    assert width == {"page": WIDTH, "table": 0, "rows": 3}, width
    page.screenshot(path=str(shots / "model-versions.png"))
    page.get_by_role("link", name=candidate.version).click()
    page.wait_for_url(f"{live_server.url}/admin/fraud/modelversion/{candidate.pk}/change/")
    figures = page.locator("div.field-figures_table table")
    assert figures.locator("thead th").first.text_content() == "Figure"
    ap = figures.locator("tbody tr", has_text="Average precision").inner_text().split("\t")
    assert ap == ["Average precision", "0.6843", "0.8126", "0.6412"]
    assert active.version in figures.locator("thead").text_content()
    text = page.locator("#content-main").inner_text()
    assert "AMOUNT_HIGH_FOR_CUSTOMER" in text and "amount_ratio_30d" in text
    assert "{" not in text and "}" not in text  # no JSON anywhere on the page
    assert page.locator("input[name=_save]").count() == 0  # nothing to edit: no Save button
    assert page.evaluate("document.documentElement.scrollWidth") == WIDTH
    page.screenshot(path=str(shots / "model-version.png"), full_page=True)

    # Rolling out the challenger from the list still works, and is audited.
    page.goto(f"{live_server.url}/admin/fraud/modelversion/")
    page.check(f"input[name=_selected_action][value='{candidate.pk}']")
    page.select_option("select[name=action]", "activate")
    page.click("button[name=index]")
    page.wait_for_selector(f"text={candidate.version} is now the active model.")
    assert AuditEvent.objects.filter(event_type="model.activated", actor=dave, object_id=str(candidate.pk)).exists()

    # The audit trail: a page of long events fits too, the cut values whole on hover.
    page.goto(f"{live_server.url}/admin/audit/auditevent/")
    width = page.evaluate(OVERFLOW)
    assert width == {"page": WIDTH, "table": 0, "rows": 50}, width
    cut = page.locator("#result_list span[title^='payments-processor-eu-west-1-production-client']").first
    assert cut.inner_text().endswith("…")
    assert page.locator("#result_list", has_text="thresholds.changed").count() == 1
    page.screenshot(path=str(shots / "audit-events.png"))


def test_the_transaction_rule_and_list_pages_fit_a_laptop_too(live_server, browser_page, dave, tmp_path):
    from fraud.rules.services import list_entry_add, rule_save
    from tests.factories import TransactionFactory

    processor = UserFactory(username="payments-processor-eu-west-1-production-client", role=Role.API_CLIENT)
    for n in range(20):
        TransactionFactory(
            owner=processor,
            transaction_id=f"3f1c9a52-7d4e-4b8a-9e61-{n:012d}",
            customer_id=f"customer-{n:04d}-" + "8" * 40,
            merchant_id="merchant-" + "5" * 40,
            amount="1234567.89",
            fraud_score=0.912345,
            decision="decline",
        )
    rule_save(actor=dave, name="Large first payment abroad at an online merchant the customer never used", action="review",
              condition="amount > 5000 and country == 'NG' and channel == 'online' and merchant_id == 'M00042'")  # fmt: skip
    list_entry_add(actor=dave, kind="customer", value="customer-0001-" + "8" * 40, action="block", owner=processor,
                   reason="Chargeback ring reported by the issuer on 2026-03-10; see the case for the evidence")  # fmt: skip
    page = admin_signed_in(browser_page, live_server.url, dave)
    shots = screenshots(tmp_path)
    for name, rows in (("transaction", 20), ("rule", 1), ("listentry", 1)):
        page.goto(f"{live_server.url}/admin/fraud/{name}/")
        width = page.evaluate(OVERFLOW)
        page.screenshot(path=str(shots / f"{name}-list.png"))
        assert width == {"page": WIDTH, "table": 0, "rows": rows}, (name, width)
