"""Webhooks in the Django admin: an admin's own endpoint with its secret shown once, rotation,
disabling a client's endpoint, the delivery log and a re-send — each through the services."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.models import LogEntry
from django.db import transaction

from audit.models import AuditEvent
from fraud.models import WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint, WebhookEventType
from fraud.webhooks.delivery import webhook_deliveries_send
from fraud.webhooks.events import webhook_events_record
from fraud.webhooks.services import webhook_endpoint_create
from tests.factories import PASSWORD

ENDPOINTS = "/admin/fraud/webhookendpoint/"
DELIVERIES = "/admin/fraud/webhookdelivery/"
ACTIVATED = WebhookEventType.MODEL_ACTIVATED
FLAGGED = WebhookEventType.TRANSACTION_FLAGGED


@pytest.fixture
def admin_client(client, dave):
    client.login(username=dave.username, password=PASSWORD)
    return client


def shown_secret(response) -> str:
    html = response.content.decode()
    start = html.index('<code class="cg-secret">') + len('<code class="cg-secret">')
    return html[start : html.index("</code>", start)]


def record(event_type: str, owner) -> list[int]:
    with transaction.atomic():
        webhook_events_record(event_type=event_type, owner=owner, payloads=[{"n": 1}])
    return list(WebhookDelivery.objects.filter(status=WebhookDeliveryStatus.PENDING).values_list("pk", flat=True))


def test_an_admin_adds_an_endpoint_and_sees_its_secret_once(admin_client, dave, receiver):
    response = admin_client.post(
        f"{ENDPOINTS}add/", {"url": receiver.url, "description": "ops pager", "event_types": [ACTIVATED]}
    )

    assert response.status_code == 200, response.content.decode()[-2000:]
    secret = shown_secret(response)
    assert secret.startswith("whsec_")
    endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.owner, endpoint.event_types, endpoint.description) == (dave, [ACTIVATED], "ops pager")
    # The secret is real: a model going live is posted to the admin's endpoint, signed with it.
    [outcome] = webhook_deliveries_send(delivery_ids=record(ACTIVATED, None))
    assert outcome.status == "delivered" and receiver.verified(secret)[0]["type"] == ACTIVATED
    # …and it is nowhere else: not on the endpoint's pages, the admin's log, or the audit trail.
    for page in (f"{ENDPOINTS}{endpoint.pk}/change/", ENDPOINTS, f"{DELIVERIES}?endpoint__id__exact={endpoint.pk}"):
        later = admin_client.get(page)
        assert later.status_code == 200 and secret not in later.content.decode()
    assert secret not in json.dumps(list(LogEntry.objects.values("change_message", "object_repr")))
    event = AuditEvent.objects.get(event_type="webhook.endpoint_created")
    assert event.actor == dave and secret not in json.dumps([event.before, event.after])


def test_the_add_form_refuses_a_private_address_and_stores_nothing(admin_client):
    response = admin_client.post(f"{ENDPOINTS}add/", {"url": "http://169.254.169.254/", "event_types": [FLAGGED]})

    assert response.status_code == 200 and "errorlist" in response.content.decode()
    assert "cg-secret" not in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_rotating_shows_the_new_secret_once_and_both_sign_meanwhile(admin_client, dave, receiver):
    created = webhook_endpoint_create(owner=dave, url=receiver.url, event_types=[ACTIVATED])

    response = admin_client.post(ENDPOINTS, {"action": "rotate_secret", "_selected_action": [created.endpoint.pk]})

    assert response.status_code == 200
    new = shown_secret(response)
    assert new.startswith("whsec_") and new != created.secret
    webhook_deliveries_send(delivery_ids=record(ACTIVATED, None))
    assert receiver.verified(created.secret) and receiver.verified(new)
    event = AuditEvent.objects.get(event_type="webhook.secret_rotated")
    assert event.actor == dave and new not in json.dumps([event.before, event.after])


def test_an_admin_cannot_rotate_or_edit_a_clients_endpoint_but_can_disable_it(admin_client, alice, receiver):
    endpoint = webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[FLAGGED]).endpoint
    secret_before = WebhookEndpoint.objects.get().secret

    refused = admin_client.post(ENDPOINTS, {"action": "rotate_secret", "_selected_action": [endpoint.pk]}, follow=True)
    assert "Only your own endpoints" in refused.content.decode() and "cg-secret" not in refused.content.decode()
    assert WebhookEndpoint.objects.get().secret == secret_before

    # The change form: only `enabled` is editable; a URL sent anyway is ignored.
    page = admin_client.get(f"{ENDPOINTS}{endpoint.pk}/change/").content.decode()
    assert 'name="enabled"' in page and 'name="url"' not in page
    saved = admin_client.post(f"{ENDPOINTS}{endpoint.pk}/change/", {"url": "http://evil.example/", "enabled": ""})
    assert saved.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.url, endpoint.disabled_reason) == (
        False,
        receiver.url,
        "Disabled by dave-admin.",
    )
    assert AuditEvent.objects.filter(event_type="webhook.endpoint_changed").count() == 1
    assert admin_client.post(f"{ENDPOINTS}{endpoint.pk}/delete/", {"post": "yes"}).status_code == 403
    assert WebhookEndpoint.objects.exists()


def test_the_endpoint_list_shows_owner_health_backlog_and_last_delivery(admin_client, alice, bob, receiver):
    failing = webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[FLAGGED]).endpoint
    webhook_endpoint_create(owner=bob, url=receiver.url + "/bob", event_types=[FLAGGED])
    receiver.answers = [500]
    webhook_deliveries_send(delivery_ids=record(FLAGGED, alice))
    record(FLAGGED, alice)

    page = admin_client.get(ENDPOINTS).content.decode()

    assert "alice-client" in page and "bob-client" in page
    assert "Failing" in page and "pending" in page
    failing.refresh_from_db()
    assert failing.failing_since is not None


def test_the_delivery_log_shows_attempts_and_an_admin_resends(admin_client, alice, dave, receiver):
    created = webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[FLAGGED])
    [delivery_id] = record(FLAGGED, alice)
    webhook_deliveries_send(delivery_ids=[delivery_id])

    listing = admin_client.get(f"{DELIVERIES}?endpoint__id__exact={created.endpoint.pk}")
    detail = admin_client.get(f"{DELIVERIES}{delivery_id}/change/")
    assert listing.status_code == detail.status_code == 200
    assert f"#{delivery_id}" in listing.content.decode() and "transaction.flagged" in listing.content.decode()
    page = detail.content.decode()
    assert "Response excerpt" in page and "field-status_code" in page and "&quot;n&quot;: 1" in page  # the body posted

    response = admin_client.post(DELIVERIES, {"action": "resend", "_selected_action": [delivery_id]}, follow=True)

    assert "1 queued to be sent again" in response.content.decode()
    assert WebhookDelivery.objects.get(pk=delivery_id).status == WebhookDeliveryStatus.PENDING
    event = AuditEvent.objects.get(event_type="webhook.resent")
    assert (event.actor, event.object_id) == (dave, str(delivery_id))
    again = admin_client.post(DELIVERIES, {"action": "resend", "_selected_action": [delivery_id]}, follow=True)
    assert f"Not re-sent: #{delivery_id}: The delivery is already waiting to be sent." in again.content.decode()
    webhook_deliveries_send(delivery_ids=[delivery_id])
    first, second = receiver.verified(created.secret)
    assert first["id"] == second["id"]


def test_deliveries_and_attempts_are_read_only(admin_client, alice, receiver):
    webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[FLAGGED])
    [delivery_id] = record(FLAGGED, alice)

    assert admin_client.get(f"{DELIVERIES}add/").status_code == 403
    assert admin_client.post(f"{DELIVERIES}{delivery_id}/delete/", {"post": "yes"}).status_code == 403
    assert 'name="status"' not in admin_client.get(f"{DELIVERIES}{delivery_id}/change/").content.decode()
