"""Webhook tasks: thin, ids only. Sending is idempotent per delivery (a lease and the status
gate each attempt), so a redelivered message or an overlapping sweep sends nothing twice."""

from __future__ import annotations

from celery import shared_task

from fraud.webhooks import delivery
from fraud.webhooks.events import SEND_CHUNK, deliveries_enqueue


@shared_task(name="fraud.tasks.webhook_deliveries_send")
def webhook_deliveries_send(delivery_ids: list[int]) -> int:
    ids = [int(pk) for pk in delivery_ids][:SEND_CHUNK]
    outcomes = delivery.webhook_deliveries_send(delivery_ids=ids, grab=SEND_CHUNK - len(ids))
    return sum(1 for o in outcomes if o.status == "delivered")


@shared_task(name="fraud.tasks.webhooks_send_due")
def webhooks_send_due() -> int:
    """Every few seconds (beat): queue what is due — retries, and deliveries whose message was
    lost or whose worker died (their lease has run out)."""
    due = delivery.webhook_deliveries_due()
    deliveries_enqueue(due)
    return len(due)


@shared_task(name="fraud.tasks.webhook_events_prune")
def webhook_events_prune() -> int:
    return delivery.webhook_events_prune()
