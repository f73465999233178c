"""Delivery to a real receiver on 127.0.0.1: signatures, retries, a receiver down and back,
410, a day of failures, the SSRF guard at delivery, leases, rotation and re-sends."""

from __future__ import annotations

import ipaddress
import socket
from datetime import timedelta

import pytest
import time_machine
from django.db import transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from fraud.models import WebhookAttempt, WebhookDelivery, WebhookDeliveryStatus, WebhookEvent, WebhookEventType
from fraud.webhooks import addresses
from fraud.webhooks import delivery as deliveries
from fraud.webhooks.events import webhook_events_record
from fraud.webhooks.services import (
    EndpointError,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_rotate_secret,
)
from tests.fraud.webhooks.receiver import running_receiver

FLAGGED = WebhookEventType.TRANSACTION_FLAGGED


def record(owner, n: int = 1, event_type: str = FLAGGED) -> list[WebhookDelivery]:
    with transaction.atomic():
        webhook_events_record(
            event_type=event_type, owner=owner, payloads=[{"transaction_id": f"T{i}"} for i in range(n)]
        )
    return list(WebhookDelivery.objects.order_by("pk"))


def send_due_at(moment) -> list[deliveries.AttemptOutcome]:
    with time_machine.travel(moment, tick=False):
        return deliveries.webhook_deliveries_send(delivery_ids=deliveries.webhook_deliveries_due())


def test_a_delivery_arrives_signed_and_the_receiver_verifies_it(alice, receiver):
    created = webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[FLAGGED])
    [pending] = record(alice)

    [outcome] = deliveries.webhook_deliveries_send(delivery_ids=[pending.pk])

    assert outcome.status == "delivered"
    [payload] = receiver.verified(created.secret)
    event = WebhookEvent.objects.get()
    assert payload["id"] == str(event.event_id) == receiver.requests[0].headers["webhook-id"]
    assert payload["type"] == "transaction.flagged"
    assert payload["data"] == {"transaction_id": "T0"}
    assert payload["api_version"]
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 43 + "=").verify(receiver.requests[0].body, receiver.requests[0].headers)
    pending.refresh_from_db()
    assert pending.status == WebhookDeliveryStatus.DELIVERED
    [attempt] = WebhookAttempt.objects.all()
    assert (attempt.status_code, attempt.response_excerpt, attempt.number) == (200, "ok", 1)


def test_500_twice_then_200_arrives_on_the_third_attempt_with_the_same_id(alice, receiver):
    receiver.answers = [500, 500]
    created = webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[FLAGGED])
    [pending] = record(alice)
    start = timezone.now()

    assert [o.status for o in deliveries.webhook_deliveries_send(delivery_ids=[pending.pk])] == ["retry"]
    assert send_due_at(start + timedelta(seconds=1)) == []  # not due before its backoff (5 s ± 20 %)
    assert [o.status for o in send_due_at(start + timedelta(seconds=7))] == ["retry"]
    assert [o.status for o in send_due_at(start + timedelta(seconds=7 + 361))] == ["delivered"]

    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(ids) == 3 and len(set(ids)) == 1
    assert len(receiver.verified(created.secret)) == 3
    assert list(WebhookAttempt.objects.order_by("number").values_list("status_code", flat=True)) == [500, 500, 200]


def test_a_receiver_that_is_down_gets_the_event_once_it_is_back(alice, settings):
    settings.WEBHOOKS_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    with socket.socket() as probe:  # a port nobody listens on, to bring the receiver up on later
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hooks"
    created = webhook_endpoint_create(owner=alice, url=url, event_types=[FLAGGED])
    [pending] = record(alice)
    start = timezone.now()

    [down] = deliveries.webhook_deliveries_send(delivery_ids=[pending.pk])
    assert down.status == "retry"
    assert WebhookAttempt.objects.get().error == "connection refused"

    for receiver in running_receiver(port=port):
        assert [o.status for o in send_due_at(start + timedelta(seconds=10))] == ["delivered"]
        [payload] = receiver.verified(created.secret)
        assert payload["id"] == str(WebhookEvent.objects.get().event_id)


def test_410_disables_the_endpoint_says_why_and_gives_up_what_was_pending(alice, receiver):
    receiver.answers = [410]
    endpoint = webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[FLAGGED]).endpoint
    first, second = record(alice, n=2)

    deliveries.webhook_deliveries_send(delivery_ids=[first.pk])

    endpoint.refresh_from_db()
    assert not endpoint.enabled and "410" in endpoint.disabled_reason
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {WebhookDeliveryStatus.FAILED}
    assert deliveries.webhook_deliveries_send(delivery_ids=[second.pk])[0].status == "skipped"
    assert len(receiver.requests) == 1
    with transaction.atomic():  # a disabled endpoint gets no new events
        assert webhook_events_record(event_type=FLAGGED, owner=alice, payloads=[{"transaction_id": "T9"}]) == 0


def test_an_endpoint_failing_for_a_day_is_disabled_with_the_reason(alice, receiver):
    receiver.answers = [503] * 20
    endpoint = webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[FLAGGED]).endpoint
    [pending] = record(alice)
    start = timezone.now()
    deliveries.webhook_deliveries_send(delivery_ids=[pending.pk])
    moment, outcomes = start, []
    while len(outcomes) < 10:
        moment += timedelta(hours=1)
        outcomes += [o.status for o in send_due_at(moment)]
        endpoint.refresh_from_db()
        if not endpoint.enabled:
            break

    assert not endpoint.enabled
    assert "Every delivery failed from" in endpoint.disabled_reason and "HTTP 503" in endpoint.disabled_reason
    assert outcomes[-1] == "failed"
    assert endpoint.disabled_at - start >= timedelta(hours=24)


def test_an_address_that_turns_private_after_saving_is_refused_at_delivery(alice, receiver, settings):
    endpoint = webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[FLAGGED]).endpoint
    [pending] = record(alice)
    settings.WEBHOOKS_ALLOWED_NETWORKS = []  # the operator withdraws the exception

    [outcome] = deliveries.webhook_deliveries_send(delivery_ids=[pending.pk])

    assert outcome.status == "retry"
    assert receiver.requests == []
    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code is None and "does not resolve to a public address" in attempt.error
    endpoint.refresh_from_db()
    assert endpoint.enabled  # a refusal is a failed attempt, retried, not a reason to disable at once


def test_a_name_rebound_to_a_private_address_is_refused_at_delivery(alice, receiver, settings, monkeypatch):
    settings.WEBHOOKS_ALLOWED_NETWORKS = []
    public = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 80))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: public)
    webhook_endpoint_create(owner=alice, url="http://hooks.example.com/in", event_types=[FLAGGED])
    [pending] = record(alice)
    rebound = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 80))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: rebound)

    [outcome] = deliveries.webhook_deliveries_send(delivery_ids=[pending.pk])

    assert outcome.status == "retry"
    error = WebhookAttempt.objects.get().error
    assert "hooks.example.com does not resolve to a public address" in error
    assert "169.254" not in error  # the client reads its delivery log: it learns nothing of our network


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://127.0.0.1:9/hooks", "public address"),
        ("http://10.1.2.3/hooks", "public address"),
        ("http://169.254.169.254/latest/meta-data/", "public address"),
        ("http://[::1]/hooks", "public address"),
        ("http://[::ffff:192.168.0.1]/hooks", "public address"),
        ("http://0.0.0.0/hooks", "public address"),
        ("http://localhost:8000/hooks", "public address"),
        ("http://[64:ff9b::a00:1]/hooks", "public address"),  # NAT64 for 10.0.0.1
        ("http://[::127.0.0.1]/hooks", "public address"),  # IPv4-compatible
        ("http://[::ffff:0:7f00:1]/hooks", "public address"),  # IPv4-translated
        ("http://[2002:7f00:1::]/hooks", "public address"),  # 6to4
        ("http://[2001:0:5ef5:79fd::1]/hooks", "public address"),  # Teredo
        ("http://[fec0::1]/hooks", "public address"),  # site-local
        ("http://100.64.0.1/hooks", "public address"),  # carrier-grade NAT
        ("ftp://example.com/hooks", "http or https"),
        ("http://user:pw@example.com/hooks", "user name or password"),
        ("http://exa mple.com/hooks", "ASCII"),
        ("https://[::1/hooks", "not a valid URL"),
        ("https://[zzz]/hooks", "not a valid URL"),
        ("https://example.com:99999/hooks", "not a valid URL"),
        ("https://example.com:0/hooks", "invalid port"),
    ],
)
def test_unsafe_urls_are_refused_at_save(alice, settings, url, words):
    settings.WEBHOOKS_HTTPS_ONLY = False
    with pytest.raises(EndpointError) as refused:
        webhook_endpoint_create(owner=alice, url=url, event_types=[FLAGGED])
    assert refused.value.field == "url"
    assert words in refused.value.message


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "a loopback address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("64:ff9b::7f00:1", "a loopback address"),
        ("10.0.0.1", "a private address"),
        ("fe80::1", "a link-local address"),
        ("224.0.0.1", "a multicast address"),
        ("2002:7f00:1::", "a reserved or non-public address"),
        ("93.184.215.14", ""),
        ("2606:4700::1111", ""),
    ],
)
def test_what_an_address_reaches_is_what_is_judged(address, kind):
    assert addresses.address_refusal(ipaddress.ip_address(address), ()) == kind


def test_production_takes_https_only(alice, settings):
    settings.WEBHOOKS_HTTPS_ONLY = True
    with pytest.raises(EndpointError, match="https"):
        webhook_endpoint_create(owner=alice, url="http://example.com/hooks", event_types=[FLAGGED])


def test_an_event_is_recorded_only_inside_the_transaction_of_its_change(transactional_db, alice, receiver):
    webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[FLAGGED])
    with pytest.raises(RuntimeError):  # outside any transaction: it could not commit with a change
        webhook_events_record(event_type=FLAGGED, owner=alice, payloads=[{"transaction_id": "T1"}])
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        webhook_events_record(event_type=FLAGGED, owner=alice, payloads=[{"transaction_id": "T1"}])
        _ = 1 / 0  # the change fails after its event was written
    assert not WebhookEvent.objects.exists()
    assert not WebhookDelivery.objects.exists()


def test_a_delivery_held_by_one_worker_is_not_sent_by_another(alice, receiver):
    webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[FLAGGED])
    [pending] = record(alice)
    assert deliveries._claim([pending.pk], timezone.now()) == [pending.pk]  # a worker took it and died mid-send

    assert deliveries.webhook_deliveries_send(delivery_ids=[pending.pk])[0].status == "skipped"
    assert deliveries.webhook_deliveries_due() == []
    assert receiver.requests == []
    # Once the lease has run out, the sweep sends it.
    later = timezone.now() + timedelta(seconds=61 + deliveries.FIRST_ATTEMPT_GRACE.total_seconds())
    assert [o.status for o in send_due_at(later)] == ["delivered"]


def test_after_a_rotation_both_secrets_verify_until_the_overlap_ends(alice, dave, receiver):
    created = webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[FLAGGED])
    rotated = webhook_endpoint_rotate_secret(endpoint=created.endpoint, actor=alice, overlap_hours=1)
    assert rotated.secret != created.secret
    first, second = record(alice, n=2)

    deliveries.webhook_deliveries_send(delivery_ids=[first.pk])
    with time_machine.travel(timezone.now() + timedelta(hours=2), tick=False):
        deliveries.webhook_deliveries_send(delivery_ids=[second.pk])

    during, after = receiver.requests
    for secret in (created.secret, rotated.secret):
        Webhook(secret).verify(during.body, during.headers)
    with time_machine.travel(timezone.now() + timedelta(hours=2), tick=False):
        Webhook(rotated.secret).verify(after.body, after.headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(created.secret).verify(after.body, after.headers)


def test_a_resend_posts_the_same_event_again(alice, receiver, django_capture_on_commit_callbacks):
    created = webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[FLAGGED])
    [pending] = record(alice)
    deliveries.webhook_deliveries_send(delivery_ids=[pending.pk])

    deliveries.webhook_delivery_resend(delivery=pending, actor=alice)
    with pytest.raises(deliveries.ResendError):
        deliveries.webhook_delivery_resend(delivery=pending, actor=alice)
    deliveries.webhook_deliveries_send(delivery_ids=[pending.pk])

    first, again = receiver.verified(created.secret)
    assert first == again
    assert WebhookAttempt.objects.count() == 2


def test_the_secret_is_stored_sealed(alice, receiver):
    created = webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[FLAGGED])
    assert created.secret.startswith("whsec_")
    assert created.secret not in created.endpoint.secret
    assert deliveries.secret_box().open(created.endpoint.secret) == created.secret


def test_only_admins_subscribe_to_model_activations(alice, dave, receiver):
    with pytest.raises(EndpointError, match="admins"):
        webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[WebhookEventType.MODEL_ACTIVATED])
    webhook_endpoint_create(owner=dave, url=receiver.url, event_types=[WebhookEventType.MODEL_ACTIVATED])
    deliveries_made = record(None, event_type=WebhookEventType.MODEL_ACTIVATED)
    assert [d.endpoint.owner for d in deliveries_made] == [dave]


def test_a_secret_sealed_under_a_lost_key_is_never_sent_unsigned(alice, receiver, settings):
    webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[FLAGGED])
    [pending] = record(alice)
    settings.ENCRYPTION_KEY, settings.ENCRYPTION_OLD_KEYS = "another-key-entirely", ()
    deliveries.secret_box.cache_clear()
    try:
        [outcome] = deliveries.webhook_deliveries_send(delivery_ids=[pending.pk])
    finally:
        deliveries.secret_box.cache_clear()

    assert outcome.status == "retry"
    assert receiver.requests == []
    assert "cannot be opened" in WebhookAttempt.objects.get().error


def test_settled_events_past_the_retention_are_pruned_and_pending_ones_kept(alice, receiver):
    webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[FLAGGED])
    delivered, waiting = record(alice, n=2)
    deliveries.webhook_deliveries_send(delivery_ids=[delivered.pk])

    with time_machine.travel(timezone.now() + timedelta(days=31), tick=False):
        assert deliveries.webhook_events_prune() == 1

    assert list(WebhookDelivery.objects.values_list("pk", flat=True)) == [waiting.pk]
    assert not WebhookAttempt.objects.exists()


def test_under_a_backlog_one_task_sends_the_queued_first_attempts_and_their_own_messages_skip(alice, receiver):
    created = webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[FLAGGED])
    first, second, third = record(alice, n=3)

    outcomes = deliveries.webhook_deliveries_send(delivery_ids=[first.pk], grab=5)

    assert [(o.delivery_id, o.status) for o in outcomes] == [
        (first.pk, "delivered"),
        (second.pk, "delivered"),
        (third.pk, "delivered"),
    ]
    assert deliveries.webhook_deliveries_send(delivery_ids=[second.pk], grab=5)[0].status == "skipped"
    assert len(receiver.verified(created.secret)) == 3


def test_a_batch_stops_at_half_its_lease_and_releases_the_rest(alice, receiver, settings):
    settings.WEBHOOK_LEASE_SECONDS = 1
    receiver.delay = 0.6  # a slow receiver: the first POST uses up half the lease
    webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[FLAGGED])
    first, second = record(alice, n=2)

    outcomes = deliveries.webhook_deliveries_send(delivery_ids=[first.pk, second.pk])

    assert [o.status for o in outcomes] == ["delivered"]
    second.refresh_from_db()
    assert (second.status, second.lease_until, second.attempts) == (WebhookDeliveryStatus.PENDING, None, 0)
    assert deliveries.webhook_deliveries_send(delivery_ids=[second.pk])[0].status == "delivered"


def test_a_deactivated_client_is_told_nothing(alice, receiver):
    webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[FLAGGED])
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    with transaction.atomic():
        assert webhook_events_record(event_type=FLAGGED, owner=alice, payloads=[{"transaction_id": "T1"}]) == 0


def test_deleting_an_endpoint_takes_its_delivery_log_with_it(alice, receiver, monkeypatch):
    monkeypatch.setattr(deliveries, "PRUNE_BATCH", 2)  # several batches
    created = webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[FLAGGED])
    sent = record(alice, n=5)
    deliveries.webhook_deliveries_send(delivery_ids=[d.pk for d in sent])

    webhook_endpoint_delete(endpoint=created.endpoint, actor=alice)

    assert not WebhookDelivery.objects.exists()
    assert not WebhookAttempt.objects.exists()


def test_the_signing_secret_stays_out_of_reprs(alice, receiver):
    created = webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[FLAGGED])
    assert created.secret not in repr(created)
