"""Races the database decides (PostgreSQL, real threads): one worker per delivery, the endpoint
limit under concurrent creates, one delivery per event and endpoint."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from fraud.models import WebhookDelivery, WebhookEndpoint, WebhookEventType
from fraud.webhooks import delivery as deliveries
from fraud.webhooks.events import webhook_events_record
from fraud.webhooks.services import EndpointError, webhook_endpoint_create
from tests.helpers import at_once

FLAGGED = WebhookEventType.TRANSACTION_FLAGGED


def test_of_many_workers_handed_one_delivery_exactly_one_sends_it(postgres_tx, alice, receiver):
    webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[FLAGGED])
    with transaction.atomic():
        webhook_events_record(event_type=FLAGGED, owner=alice, payloads=[{"transaction_id": "T1"}])
    pk = WebhookDelivery.objects.get().pk

    results = at_once(lambda i: deliveries.webhook_deliveries_send(delivery_ids=[pk])[0].status, 8)

    assert sorted(results) == ["delivered"] + ["skipped"] * 7, results
    assert len(receiver.requests) == 1


def test_workers_grabbing_a_backlog_at_once_send_each_delivery_once(postgres_tx, alice, receiver):
    webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[FLAGGED])
    with transaction.atomic():
        webhook_events_record(
            event_type=FLAGGED, owner=alice, payloads=[{"transaction_id": f"T{i}"} for i in range(20)]
        )

    results = at_once(lambda i: deliveries.webhook_deliveries_send(delivery_ids=[], grab=8), 6)

    sent = [o.delivery_id for batch in results for o in batch if o.status == "delivered"]
    assert len(sent) == len(set(sent)), results
    leftover = deliveries.webhook_deliveries_send(delivery_ids=[], grab=20)  # what six batches of 8 did not reach
    assert len(sent) + len(leftover) == 20
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == len(receiver.requests) == 20


def test_concurrent_creates_stop_at_the_endpoint_limit(postgres_tx, alice, receiver, settings):
    settings.WEBHOOK_MAX_ENDPOINTS = 2

    results = at_once(lambda i: webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[FLAGGED]), 6)

    assert sum(isinstance(r, EndpointError) for r in results) == 4, results
    assert WebhookEndpoint.objects.filter(owner=alice).count() == 2


def test_an_event_is_delivered_to_an_endpoint_once_whatever_writes_it(postgres, alice, receiver):
    webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[FLAGGED])
    with transaction.atomic():
        webhook_events_record(event_type=FLAGGED, owner=alice, payloads=[{"transaction_id": "T1"}])
    existing = WebhookDelivery.objects.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        WebhookDelivery.objects.create(event=existing.event, endpoint=existing.endpoint, created_at=timezone.now())
