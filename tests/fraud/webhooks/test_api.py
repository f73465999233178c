"""Webhook endpoints over the API: the secret shown once, each client sees only its own, the SSRF
guard and the event types at the door, rotation with both secrets signing, the delivery log and
re-sends against a real receiver, and every change audited without the secret."""

from __future__ import annotations

import base64
import json

import pytest
from django.db import transaction

from audit.models import AuditEvent
from fraud.models import WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint, WebhookEventType
from fraud.webhooks.delivery import webhook_deliveries_send
from fraud.webhooks.events import webhook_events_record

URL = "/api/v1/webhooks/"
FLAGGED = WebhookEventType.TRANSACTION_FLAGGED
CLOSED = WebhookEventType.CASE_CLOSED


def create(api, url: str, event_types: list[str] | None = None, **extra) -> dict:
    response = api.post(URL, {"url": url, "event_types": event_types or [FLAGGED], **extra}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def record(owner, n: int = 1) -> list[int]:
    with transaction.atomic():
        webhook_events_record(event_type=FLAGGED, owner=owner, payloads=[{"transaction_id": f"T{i}"} for i in range(n)])
    return list(WebhookDelivery.objects.filter(status=WebhookDeliveryStatus.PENDING).values_list("pk", flat=True))


def audit_text() -> str:
    return json.dumps(list(AuditEvent.objects.values("event_type", "before", "after")), default=str)


def test_creating_returns_the_secret_once_and_later_reads_never_show_it(alice_api, receiver):
    created = create(alice_api, receiver.url, [FLAGGED, CLOSED], description="orders")

    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert created["url"] == receiver.url and created["event_types"] == sorted([FLAGGED, CLOSED])
    assert (created["enabled"], created["disabled_reason"], created["description"]) == (True, None, "orders")
    stored = WebhookEndpoint.objects.get(pk=created["id"])
    assert secret not in stored.secret  # sealed at rest

    detail = alice_api.get(f"{URL}{created['id']}/")
    listing = alice_api.get(URL)
    assert detail.status_code == listing.status_code == 200
    assert "secret" not in detail.json()
    assert [e["id"] for e in listing.json()["results"]] == [created["id"]]
    assert "secret" not in listing.json()["results"][0]
    for response in (detail, listing):
        assert secret not in response.content.decode()
    assert set(detail.json()) == {
        "id", "url", "description", "event_types", "enabled", "disabled_reason", "disabled_at", "failing_since",
        "created_at", "updated_at", "previous_secret_expires_at",
    }  # fmt: skip


def test_the_list_shows_only_the_clients_own_endpoints(alice_api, bob_api, receiver):
    mine = create(alice_api, receiver.url)
    create(bob_api, receiver.url + "/bob")

    listing = alice_api.get(URL)

    assert [e["id"] for e in listing.json()["results"]] == [mine["id"]]
    assert listing.json()["next"] is None


def test_bob_gets_404_for_every_route_on_alices_endpoint(alice, alice_api, bob_api, receiver):
    endpoint = create(alice_api, receiver.url)
    [delivery_id] = record(alice)
    webhook_deliveries_send(delivery_ids=[delivery_id])
    base = f"{URL}{endpoint['id']}/"
    before = WebhookEndpoint.objects.values().get(pk=endpoint["id"])
    audited = AuditEvent.objects.count()

    for method, path, body in [
        ("GET", base, None),
        ("PATCH", base, {"enabled": False}),
        ("DELETE", base, None),
        ("POST", base + "rotate-secret/", {}),
        ("GET", base + "deliveries/", None),
        ("POST", f"{base}deliveries/{delivery_id}/resend/", None),
    ]:
        response = bob_api.generic(method, path, json.dumps(body) if body is not None else "",
                                   content_type="application/json")  # fmt: skip
        assert response.status_code == 404, (method, path, response.status_code)
        assert response["Content-Type"] == "application/problem+json"

    assert WebhookEndpoint.objects.values().get(pk=endpoint["id"]) == before
    assert WebhookDelivery.objects.get(pk=delivery_id).status == WebhookDeliveryStatus.DELIVERED
    assert AuditEvent.objects.count() == audited


def test_a_delivery_of_another_endpoint_is_404_under_ones_own(alice, alice_api, bob, bob_api, receiver):
    create(alice_api, receiver.url)
    bobs = create(bob_api, receiver.url + "/bob")
    [alices_delivery] = record(alice)

    response = bob_api.post(f"{URL}{bobs['id']}/deliveries/{alices_delivery}/resend/")

    assert response.status_code == 404


def test_a_url_to_a_private_address_is_refused_naming_the_url(alice_api):
    for url in ("http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:8000/hooks", "http://10.0.0.7/x"):
        response = alice_api.post(URL, {"url": url, "event_types": [FLAGGED]}, format="json")
        assert response.status_code == 400, url
        assert response["Content-Type"] == "application/problem+json"
        assert list(response.json()["errors"]) == ["url"]
    assert not WebhookEndpoint.objects.exists()


def test_changing_the_url_to_a_private_address_is_refused_too(alice_api, receiver):
    endpoint = create(alice_api, receiver.url)

    response = alice_api.patch(f"{URL}{endpoint['id']}/", {"url": "http://192.168.1.1/hooks"}, format="json")

    assert response.status_code == 400 and list(response.json()["errors"]) == ["url"]
    assert WebhookEndpoint.objects.get().url == receiver.url


def test_unknown_event_types_and_model_activated_are_refused_for_a_client(alice_api, receiver):
    for event_types in (["transaction.exploded"], [WebhookEventType.MODEL_ACTIVATED], []):
        response = alice_api.post(URL, {"url": receiver.url, "event_types": event_types}, format="json")
        assert response.status_code == 400, event_types
        assert list(response.json()["errors"]) == ["event_types"]
    assert not WebhookEndpoint.objects.exists()
    types = alice_api.get(f"{URL}event-types/").json()
    assert [t["type"] for t in types] == [t for t in WebhookEventType.values if t != WebhookEventType.MODEL_ACTIVATED]


def test_unknown_fields_and_wrong_types_are_refused(alice_api, receiver):
    response = alice_api.post(
        URL, {"url": receiver.url, "event_types": [FLAGGED], "secret": "whsec_mine", "owner": 1}, format="json"
    )
    assert response.status_code == 400 and set(response.json()["errors"]) == {"secret", "owner"}
    endpoint = create(alice_api, receiver.url)
    response = alice_api.patch(f"{URL}{endpoint['id']}/", {"enabled": "no"}, format="json")
    assert response.status_code == 400 and list(response.json()["errors"]) == ["enabled"]


def test_a_client_has_at_most_the_configured_number_of_endpoints(alice_api, receiver, settings):
    settings.WEBHOOK_MAX_ENDPOINTS = 1
    create(alice_api, receiver.url)

    response = alice_api.post(URL, {"url": receiver.url, "event_types": [FLAGGED]}, format="json")

    assert response.status_code == 400 and "At most 1" in response.json()["errors"]["url"][0]


def test_disabling_shows_why_and_enabling_clears_it(alice_api, receiver):
    endpoint = create(alice_api, receiver.url)
    path = f"{URL}{endpoint['id']}/"

    off = alice_api.patch(path, {"enabled": False, "description": "paused"}, format="json").json()
    assert (off["enabled"], off["disabled_reason"], off["description"]) == (
        False,
        "Disabled by alice-client.",
        "paused",
    )
    assert off["disabled_at"] is not None
    assert alice_api.get(path).json()["disabled_reason"] == "Disabled by alice-client."

    on = alice_api.patch(path, {"enabled": True, "event_types": [CLOSED]}, format="json").json()
    assert (on["enabled"], on["disabled_reason"], on["disabled_at"], on["event_types"]) == (True, None, None, [CLOSED])


def test_an_empty_change_changes_and_audits_nothing(alice_api, receiver):
    endpoint = create(alice_api, receiver.url)
    audited = AuditEvent.objects.count()

    response = alice_api.patch(f"{URL}{endpoint['id']}/", {}, format="json")

    assert response.status_code == 200 and response.json()["url"] == receiver.url
    assert AuditEvent.objects.count() == audited


def test_rotation_returns_a_new_secret_and_both_verify_during_the_overlap(alice, alice_api, receiver):
    endpoint = create(alice_api, receiver.url)
    old = endpoint["secret"]

    rotated = alice_api.post(f"{URL}{endpoint['id']}/rotate-secret/", {"overlap_hours": 2}, format="json")

    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new.startswith("whsec_") and new != old
    assert rotated.json()["previous_secret_expires_at"] is not None
    assert "secret" not in alice_api.get(f"{URL}{endpoint['id']}/").json()
    [outcome] = webhook_deliveries_send(delivery_ids=record(alice))
    assert outcome.status == "delivered"
    assert receiver.verified(old)[0]["data"] == receiver.verified(new)[0]["data"] == {"transaction_id": "T0"}


def test_rotation_refuses_an_overlap_beyond_a_week(alice_api, receiver):
    endpoint = create(alice_api, receiver.url)

    response = alice_api.post(f"{URL}{endpoint['id']}/rotate-secret/", {"overlap_hours": 169}, format="json")

    assert response.status_code == 400 and list(response.json()["errors"]) == ["overlap_hours"]


def test_the_delivery_log_lists_each_attempt_after_a_real_delivery(
    alice, alice_api, receiver, django_assert_num_queries
):
    receiver.answers = [500]
    endpoint = create(alice_api, receiver.url)
    [delivery_id] = record(alice)
    webhook_deliveries_send(delivery_ids=[delivery_id])  # 500: a retry is scheduled
    WebhookDelivery.objects.filter(pk=delivery_id).update(next_attempt_at=WebhookDelivery.objects.get().created_at)
    webhook_deliveries_send(delivery_ids=[delivery_id])  # 200
    record(alice)  # a second event, not sent yet
    path = f"{URL}{endpoint['id']}/deliveries/"

    # the user, the endpoint, one page of deliveries with their events, and all of their attempts
    with django_assert_num_queries(4):
        page = alice_api.get(path).json()

    newest, delivered = page["results"]
    assert newest["status"] == "pending" and newest["attempt_log"] == []
    assert delivered["id"] == delivery_id
    assert delivered["event_id"] == receiver.requests[0].headers["webhook-id"]
    assert (delivered["event_type"], delivered["status"], delivered["attempts"]) == (FLAGGED, "delivered", 2)
    assert delivered["delivered_at"] is not None and delivered["last_error"] is None
    assert [(a["number"], a["status_code"], a["error"]) for a in delivered["attempt_log"]] == [
        (1, 500, "HTTP 500"),
        (2, 200, ""),
    ]
    assert delivered["attempt_log"][1]["response_excerpt"] == "ok"
    assert delivered["attempt_log"][1]["duration_ms"] >= 0
    only_delivered = alice_api.get(path, {"status": "delivered"}).json()["results"]
    assert [d["id"] for d in only_delivered] == [delivery_id]
    assert alice_api.get(path, {"status": "lost"}).status_code == 400


def test_a_resend_through_the_api_posts_the_same_event_again(alice, alice_api, receiver):
    endpoint = create(alice_api, receiver.url)
    [delivery_id] = record(alice)
    webhook_deliveries_send(delivery_ids=[delivery_id])
    path = f"{URL}{endpoint['id']}/deliveries/{delivery_id}/resend/"

    response = alice_api.post(path)

    assert response.status_code == 202
    assert response.json()["status"] == "pending" and response.json()["attempts"] == 1
    again = alice_api.post(path)  # already waiting to be sent
    assert again.status_code == 409 and again["Content-Type"] == "application/problem+json"
    assert "already waiting" in again.json()["detail"]
    [outcome] = webhook_deliveries_send(delivery_ids=[delivery_id])
    assert outcome.status == "delivered"
    first, second = receiver.verified(endpoint["secret"])
    assert first["id"] == second["id"] == response.json()["event_id"]
    event = AuditEvent.objects.get(event_type="webhook.resent")
    assert (event.actor, event.object_id) == (alice, str(delivery_id))


def test_a_resend_to_a_disabled_endpoint_is_a_conflict(alice, alice_api, receiver):
    endpoint = create(alice_api, receiver.url)
    [delivery_id] = record(alice)
    webhook_deliveries_send(delivery_ids=[delivery_id])
    alice_api.patch(f"{URL}{endpoint['id']}/", {"enabled": False}, format="json")

    response = alice_api.post(f"{URL}{endpoint['id']}/deliveries/{delivery_id}/resend/")

    assert response.status_code == 409 and "disabled" in response.json()["detail"]


def test_deleting_removes_the_endpoint_and_its_log(alice, alice_api, receiver):
    endpoint = create(alice_api, receiver.url)
    record(alice)

    assert alice_api.delete(f"{URL}{endpoint['id']}/").status_code == 204

    assert alice_api.get(f"{URL}{endpoint['id']}/").status_code == 404
    assert not WebhookDelivery.objects.exists()
    assert AuditEvent.objects.filter(event_type="webhook.endpoint_deleted", actor=alice).count() == 1


def test_every_change_is_audited_and_the_secret_never_is(alice, alice_api, receiver):
    endpoint = create(alice_api, receiver.url)
    path = f"{URL}{endpoint['id']}/"
    alice_api.patch(path, {"description": "orders"}, format="json")
    rotated = alice_api.post(f"{path}rotate-secret/", {}, format="json").json()
    [delivery_id] = record(alice)
    webhook_deliveries_send(delivery_ids=[delivery_id])
    alice_api.post(f"{path}deliveries/{delivery_id}/resend/")

    events = list(AuditEvent.objects.filter(event_type__startswith="webhook.").order_by("seq"))

    assert [e.event_type for e in events] == [
        "webhook.endpoint_created",
        "webhook.endpoint_changed",
        "webhook.secret_rotated",
        "webhook.resent",
    ]
    assert all(e.actor == alice for e in events)
    assert events[1].before["description"] == "" and events[1].after["description"] == "orders"
    trail = audit_text()
    for secret in (endpoint["secret"], rotated["secret"]):
        assert secret not in trail
        assert secret.removeprefix("whsec_") not in trail


@pytest.mark.parametrize("role", ["carol", "dave"])
def test_analysts_and_admins_use_the_admin_not_this_api(role, request):
    from tests.conftest import jwt_client

    user = request.getfixturevalue(role)
    assert jwt_client(user.username).get(URL).status_code == 403


def test_the_delivery_log_pages_by_cursor_and_refuses_a_forged_one(alice, alice_api, receiver):
    endpoint = create(alice_api, receiver.url)
    record(alice, n=3)
    path = f"{URL}{endpoint['id']}/deliveries/"

    first = alice_api.get(path, {"page_size": 2}).json()
    second = alice_api.get(first["next"]).json()

    assert len(first["results"]) == 2 and len(second["results"]) == 1
    ids = [d["id"] for d in first["results"] + second["results"]]
    assert ids == sorted(ids, reverse=True)
    forged = base64.b64encode(b"p=x").decode()
    response = alice_api.get(path, {"cursor": forged})
    assert response.status_code == 400 and list(response.json()["errors"]) == ["cursor"]


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("get", f"{URL}99999999999999999999999/", "endpoint_id"),
        ("post", f"{URL}9223372036854775808/rotate-secret/", "endpoint_id"),
        ("get", f"{URL}9223372036854775808/deliveries/", "endpoint_id"),
    ],
)
def test_an_id_beyond_bigint_is_refused_naming_it(alice_api, method, path, field):
    response = getattr(alice_api, method)(path)
    assert response.status_code == 400 and field in response.json()["errors"]
