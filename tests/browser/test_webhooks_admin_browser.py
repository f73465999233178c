"""A real browser at a laptop's width: an admin adds a webhook endpoint and copies its secret
from the one page that shows it, and the endpoint and delivery lists, a delivery's page and the
console's webhooks page fit with the longest values their columns hold.

Screenshots go to the test's temporary folder, or to ``ADMIN_SCREENSHOTS`` when set."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from accounts.models import Role
from fraud.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookEvent,
    WebhookEventType,
)
from fraud.webhooks.services import webhook_endpoint_create
from tests.browser.admin_pages import OVERFLOW, WIDTH, admin_signed_in, screenshots
from tests.factories import UserFactory

LONG_URL = "http://127.0.0.1:8443/payments/notifications/cipherguard/production/eu-west-1/receiver-v2?tenant=acme"
LONG_ERROR = "connection refused by 127.0.0.1:8443 after 3.0 s (the receiver was restarting for a deploy); retrying"


def _endpoints_with_history() -> list[WebhookEndpoint]:
    """Three endpoints of a client with a long name, every event type, a long description, and
    each health state; 25 deliveries with long errors and a few attempts each."""
    processor = UserFactory(username="payments-processor-eu-west-1-production-client", role=Role.API_CLIENT)
    types = [t for t in WebhookEventType.values if t != WebhookEventType.MODEL_ACTIVATED]
    endpoints = [
        webhook_endpoint_create(
            owner=processor, url=f"{LONG_URL}&n={n}", event_types=types,
            description="Chargeback and case updates for the settlement team's reconciliation job",
        ).endpoint
        for n in range(3)
    ]  # fmt: skip
    start = datetime(2026, 3, 11, 3, 20, tzinfo=UTC)
    WebhookEndpoint.objects.filter(pk=endpoints[1].pk).update(failing_since=start)
    WebhookEndpoint.objects.filter(pk=endpoints[2].pk).update(
        enabled=False,
        disabled_at=start + timedelta(days=1),
        disabled_reason="Every delivery failed from 2026-03-11 03:20 UTC to 2026-03-12 03:20 UTC; the last error: "
        + LONG_ERROR,
    )
    for n in range(25):
        event = WebhookEvent.objects.create(
            event_id=uuid.uuid4(), type=WebhookEventType.TRANSACTION_LABELLED, owner=processor, api_version="2026-12-01",
            data={"transaction_id": f"order-2026-03-12-{n:04d}-" + "7" * 40, "label": "fraud"},
            created_at=start + timedelta(minutes=n),
        )  # fmt: skip
        delivery = WebhookDelivery.objects.create(
            event=event, endpoint=endpoints[1], status=WebhookDeliveryStatus.PENDING, attempts=3,
            next_attempt_at=start + timedelta(hours=2), last_error=LONG_ERROR, created_at=event.created_at,
        )  # fmt: skip
        for number in (1, 2, 3):
            WebhookAttempt.objects.create(
                delivery=delivery, number=number, attempted_at=event.created_at + timedelta(seconds=5 * number),
                status_code=None, error=LONG_ERROR, duration_ms=3001.27, response_excerpt="",
            )  # fmt: skip
    return endpoints


def test_an_admin_adds_an_endpoint_copies_the_secret_and_the_webhook_pages_fit(
    live_server, browser_page, dave, tmp_path, settings
):
    settings.WEBHOOKS_ALLOWED_NETWORKS = ["127.0.0.1/32"]  # the SSRF guard refuses loopback otherwise
    settings.WEBHOOKS_HTTPS_ONLY = False
    endpoints = _endpoints_with_history()
    shots = screenshots(tmp_path)
    page = admin_signed_in(browser_page, live_server.url, dave)

    # The list: problems first (disabled, then failing), every column short, the list fits.
    page.goto(f"{live_server.url}/admin/fraud/webhookendpoint/")
    page.screenshot(path=str(shots / "webhook-endpoints.png"))
    assert page.evaluate(OVERFLOW) == {"page": WIDTH, "table": 0, "rows": 3}
    health = page.locator("#result_list td.field-state").all_inner_texts()
    assert [h.split("\n")[0] for h in health] == ["Disabled", "Failing", "Enabled"]

    # An endpoint of the admin's own, for model.activated: its secret on the page after the save.
    page.click(".object-tools a.addlink")
    page.fill("#id_url", "http://127.0.0.1:9000/hooks/model-activated")
    page.check(f"input[name=event_types][value='{WebhookEventType.MODEL_ACTIVATED}']")
    page.click("input[name=_save]")
    page.wait_for_selector("code.cg-secret")
    secret = page.locator("code.cg-secret").inner_text()
    assert secret.startswith("whsec_")
    page.screenshot(path=str(shots / "webhook-secret.png"))
    assert page.evaluate("document.documentElement.scrollWidth") == WIDTH
    mine = WebhookEndpoint.objects.get(owner=dave)
    page.goto(f"{live_server.url}/admin/fraud/webhookendpoint/{mine.pk}/change/")
    assert secret not in page.content()

    # The delivery log and one delivery with its attempts and the body posted.
    page.goto(f"{live_server.url}/admin/fraud/webhookdelivery/?endpoint__id__exact={endpoints[1].pk}")
    page.screenshot(path=str(shots / "webhook-deliveries.png"))
    assert page.evaluate(OVERFLOW) == {"page": WIDTH, "table": 0, "rows": 25}
    page.locator("#result_list tbody tr a").first.click()
    page.wait_for_selector("#attempt_log-group")
    assert page.locator("#attempt_log-group tbody tr.has_original").count() == 3
    page.screenshot(path=str(shots / "webhook-delivery.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") == WIDTH

    # The console's page for admins.
    page.goto(f"{live_server.url}/console/webhooks/")
    assert page.locator("table.webhooks tbody tr").count() == 4
    page.screenshot(path=str(shots / "console-webhooks.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") == WIDTH
