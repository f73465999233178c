"""The admins' webhooks page: every client's endpoints, their health, backlog and last delivery."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import transaction
from django.test import Client

from fraud.models import WebhookEndpoint, WebhookEventType
from fraud.webhooks.delivery import webhook_deliveries_send
from fraud.webhooks.events import webhook_events_record
from fraud.webhooks.services import webhook_endpoint_create, webhook_endpoint_update
from tests.factories import PASSWORD
from tests.fraud.webhooks.receiver import Receiver, running_receiver

FLAGGED = WebhookEventType.TRANSACTION_FLAGGED


@pytest.fixture
def receiver(settings) -> Iterator[Receiver]:
    settings.WEBHOOKS_ALLOWED_NETWORKS = ["127.0.0.1/32"]  # the SSRF guard refuses loopback otherwise
    settings.WEBHOOKS_HTTPS_ONLY = False
    yield from running_receiver()


@pytest.fixture
def admin_console(dave) -> Client:
    client = Client()
    client.login(username=dave.username, password=PASSWORD)
    return client


def test_admins_see_each_endpoints_health_backlog_and_last_delivery(
    admin_console,
    alice,
    bob,
    dave,
    receiver,
    django_assert_num_queries,
):
    paused = webhook_endpoint_create(owner=alice, url=receiver.url + "/paused", event_types=[FLAGGED]).endpoint
    webhook_endpoint_update(endpoint=paused, actor=alice, enabled=False)
    failing = webhook_endpoint_create(owner=bob, url=receiver.url + "/<b>bob</b>", event_types=[FLAGGED]).endpoint
    receiver.answers = [500]
    with transaction.atomic():
        webhook_events_record(event_type=FLAGGED, owner=bob, payloads=[{"n": 1}, {"n": 2}])
    webhook_deliveries_send(delivery_ids=list(failing.deliveries.order_by("pk").values_list("pk", flat=True))[:1])

    # session, user, the endpoints with their owners, backlog and last delivery (one query, however
    # many endpoints), and the session saved again (savepoint, update, release)
    with django_assert_num_queries(6):
        response = admin_console.get("/console/webhooks/")
        html = response.content.decode()

    assert response.status_code == 200
    rows = html.split("<tbody>")[1].split("</tr>")
    assert "Disabled" in rows[0] and "Disabled by alice-client." in rows[0] and "alice-client" in rows[0]
    assert "Failing" in rows[1] and "bob-client" in rows[1]
    assert '<td class="num">2</td>' in rows[1]  # one retry scheduled, one never tried
    assert "pending" in rows[1]
    assert "<b>bob</b>" not in html and "&lt;b&gt;bob&lt;/b&gt;" in html
    assert f'href="/admin/fraud/webhookendpoint/{failing.pk}/change/"' in html
    assert 'href="/console/webhooks/" aria-current="page"' in html
    assert WebhookEndpoint.objects.count() == 2


def test_the_nav_links_the_page_for_admins_only(admin_console, carol):
    assert 'href="/console/webhooks/"' in admin_console.get("/console/drift/").content.decode()
    analyst = Client()
    analyst.login(username=carol.username, password=PASSWORD)
    assert 'href="/console/webhooks/"' not in analyst.get("/console/drift/").content.decode()
