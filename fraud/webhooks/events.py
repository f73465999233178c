"""The outbox writer: the one way any job records a webhook event.

``webhook_events_record`` must run inside the database transaction of the change it reports (a
score stored, a case closed, a batch job finished): the event rows commit or roll back with it,
so no event is lost when the change commits and none is invented when it fails. The deliveries
are queued only after the commit (``on_commit``); the sweep (every few seconds, from beat) sends
whatever a lost message or a dead worker left behind."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from kombu.exceptions import KombuError

from accounts.models import Role, User
from cipherguard import celery
from fraud.models import WebhookDelivery, WebhookEndpoint, WebhookEvent, WebhookEventType

logger = logging.getLogger(__name__)

# fraud.webhooks.tasks calls the delivery services, so the task is sent by its registered name.
SEND_TASK = "fraud.tasks.webhook_deliveries_send"
# Delivery ids per task message: small messages, and one slow endpoint holds up few others.
SEND_CHUNK = 50

# model.activated is about the platform, not one client's data: it goes to admins' endpoints.
PLATFORM_EVENTS = frozenset({WebhookEventType.MODEL_ACTIVATED})


def subscribers(*, owner: User | None, event_type: str) -> list[WebhookEndpoint]:
    """The enabled endpoints that want ``event_type`` of ``owner``'s data (of the platform when
    ``owner`` is None: admins' endpoints)."""
    if event_type in PLATFORM_EVENTS:
        endpoints = WebhookEndpoint.objects.filter(enabled=True, owner__role=Role.ADMIN, owner__is_active=True)
    elif owner is None or not owner.is_active:  # a deactivated client is told nothing
        return []
    else:
        endpoints = WebhookEndpoint.objects.filter(enabled=True, owner=owner)
    return [e for e in endpoints if event_type in e.event_types]


def webhook_events_record(*, event_type: str, owner: User | None, payloads: Sequence[dict[str, Any]]) -> int:
    """Record one event per payload for every endpoint that wants it; returns the deliveries made.

    An event nobody subscribed to is not stored: the outbox holds what is owed, not a copy of
    every change. Must be called inside the transaction of the change (``RuntimeError`` if not)."""
    if event_type not in WebhookEventType.values:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    if not connection.in_atomic_block:
        raise RuntimeError("webhook events are recorded inside the transaction of the change they report")
    if not payloads:
        return 0
    endpoints = subscribers(owner=owner, event_type=event_type)
    if not endpoints:
        return 0
    now = timezone.now()
    events = WebhookEvent.objects.bulk_create(
        [
            WebhookEvent(
                event_id=uuid.uuid4(),
                type=event_type,
                owner=owner if event_type not in PLATFORM_EVENTS else None,
                api_version=settings.WEBHOOK_API_VERSION,
                data=payload,
                created_at=now,
            )
            for payload in payloads
        ]
    )
    deliveries = WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(event=event, endpoint=endpoint, next_attempt_at=now, created_at=now)
            for event in events
            for endpoint in endpoints
        ]
    )
    ids = [d.pk for d in deliveries]
    transaction.on_commit(lambda: deliveries_enqueue(ids))
    return len(ids)


def deliveries_enqueue(delivery_ids: Iterable[int]) -> None:
    """Hand deliveries to the workers. A broker that is down loses nothing: the rows are stored
    and due, and the sweep sends them once a worker runs."""
    ids = list(delivery_ids)
    try:
        for start in range(0, len(ids), SEND_CHUNK):
            celery.task(SEND_TASK).delay(ids[start : start + SEND_CHUNK])
    except (KombuError, OSError) as exc:
        logger.warning(
            "%d webhook deliveries stored but not queued (%s); the sweep sends them", len(ids), type(exc).__name__
        )
