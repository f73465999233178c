"""Sending deliveries: claim, sign, POST, record the attempt, schedule the retry or give up.

At least once, never twice at the same time: a worker claims a delivery with a conditional
UPDATE that sets a lease (``lease_until``), so two workers handed the same id (a message
redelivered, a sweep overlapping a queued send) cannot both send it; a worker killed mid-send
leaves the delivery pending, and the sweep sends it again once the lease has run out. Receivers
drop the rare duplicate by ``webhook-id``, the event's id, the same on every attempt."""

from __future__ import annotations

import functools
import json
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidTag
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import User
from audit.services import audit_record
from fraud.models import WebhookAttempt, WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint, WebhookEvent
from fraud.webhooks import addresses, metrics, sender, signing
from fraud.webhooks.events import deliveries_enqueue

logger = logging.getLogger(__name__)

USER_AGENT = "CipherGuard-Webhooks/1"
_jitter = secrets.SystemRandom()


@functools.cache
def secret_box() -> signing.SecretBox:
    return signing.SecretBox(current_key=settings.ENCRYPTION_KEY, old_keys=settings.ENCRYPTION_OLD_KEYS)


def allowed_networks() -> tuple[addresses.Network, ...]:
    return addresses.networks(settings.WEBHOOKS_ALLOWED_NETWORKS)


def event_body(event: WebhookEvent) -> bytes:
    """The JSON posted for an event: the same bytes on every attempt."""
    envelope = {
        "id": str(event.event_id),
        "type": event.type,
        "timestamp": event.created_at.isoformat().replace("+00:00", "Z"),
        "api_version": event.api_version,
        "data": event.data,
    }
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode()


def signing_secrets(endpoint: WebhookEndpoint, *, now: datetime) -> list[str]:
    keys = [secret_box().open(endpoint.secret)]
    if endpoint.previous_secret and endpoint.previous_secret_expires_at and endpoint.previous_secret_expires_at > now:
        keys.append(secret_box().open(endpoint.previous_secret))
    return keys


def retry_delay(attempts: int) -> timedelta | None:
    """How long to wait after the ``attempts``-th failure; None once the schedule is spent."""
    delays = settings.WEBHOOK_RETRY_DELAYS
    if attempts > len(delays):
        return None
    return timedelta(seconds=delays[attempts - 1] * _jitter.uniform(0.8, 1.2))


@dataclass(frozen=True)
class AttemptOutcome:
    delivery_id: int
    status: str  # delivered | retry | failed | skipped
    status_code: int | None = None


def _claim(delivery_ids: list[int], now: datetime, *, grab: int = 0) -> list[int]:
    """Take the given deliveries that are still pending, due and held by nobody, and up to
    ``grab`` more first attempts that are due (their own messages still queued behind a backlog):
    one statement, returning what this worker now holds.

    The UPDATE is the gate: its outer WHERE repeats the pending-and-free test, which PostgreSQL
    re-checks on each row after waiting for a concurrent claimer's lock, so of two workers racing
    for a row exactly one gets it (the other's re-check finds the new lease and skips the row)."""
    table = WebhookDelivery._meta.db_table
    ops = connection.ops
    lease = ops.adapt_datetimefield_value(now + timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS))
    at = ops.adapt_datetimefield_value(now)
    ids = [int(pk) for pk in delivery_ids] or [0]
    listed = ", ".join(["%s"] * len(ids))
    free = "status = 'pending' AND (lease_until IS NULL OR lease_until < %s)"
    # The table name is the model's; every value is a bound parameter.
    sql = (
        f"UPDATE {table} SET lease_until = %s WHERE id IN ("  # noqa: S608  # nosec B608
        f"  SELECT id FROM {table} WHERE {free} AND next_attempt_at <= %s"
        f"  AND (id IN ({listed}) OR attempts = 0)"
        f"  ORDER BY CASE WHEN id IN ({listed}) THEN 0 ELSE 1 END, next_attempt_at LIMIT %s"
        f") AND {free} RETURNING id"
    )
    params = [lease, at, at, *ids, *ids, len(ids) + grab, at]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def webhook_deliveries_send(*, delivery_ids: list[int], grab: int = 0) -> list[AttemptOutcome]:
    """Attempt each of ``delivery_ids`` that is due and free, and up to ``grab`` other due first
    attempts (under a backlog, one task then does the work of many messages, whose own turn finds
    them sent); the rest (sent, held, not yet due) are skipped.

    Sends one after another within half a lease: what is left then is released, never held past
    its lease while another worker could take it and send it twice."""
    started = time.monotonic()
    claimed = _claim(delivery_ids, timezone.now(), grab=grab)
    outcomes = [AttemptOutcome(pk, "skipped") for pk in delivery_ids if pk not in set(claimed)]
    rows = WebhookDelivery.objects.select_related("event", "endpoint").in_bulk(claimed)
    endpoints: dict[int, WebhookEndpoint] = {}
    last: dict[int, str] = {}
    for index, pk in enumerate(claimed):
        if time.monotonic() - started > settings.WEBHOOK_LEASE_SECONDS / 2:
            WebhookDelivery.objects.filter(pk__in=claimed[index:]).update(lease_until=None)
            break
        delivery = rows.get(pk)
        if delivery is None:  # its endpoint was deleted since the claim
            continue
        # One endpoint object per endpoint, so a failure or a disable earlier in the batch is seen.
        delivery.endpoint = endpoints.setdefault(delivery.endpoint_id, delivery.endpoint)
        outcome = _attempt(delivery)
        outcomes.append(outcome)
        last[delivery.endpoint_id] = outcome.status
    # An endpoint that ended the batch answering is not failing, even if another worker marked it
    # so after this one loaded it: one conditional UPDATE per such endpoint, not one per delivery.
    recovered = [pk for pk, status in last.items() if status == "delivered"]
    if recovered:
        WebhookEndpoint.objects.filter(pk__in=recovered, failing_since__isnull=False).update(failing_since=None)
    return outcomes


def _attempt(delivery: WebhookDelivery) -> AttemptOutcome:
    now = timezone.now()
    endpoint, event = delivery.endpoint, delivery.event
    number = delivery.attempts + 1
    if not endpoint.enabled:
        _finish(delivery, number=number, now=now, failed_for="the endpoint is disabled", record=False)
        return AttemptOutcome(delivery.pk, "failed")
    try:
        dest = addresses.destination_parse(endpoint.url, https_only=settings.WEBHOOKS_HTTPS_ONLY)
        address = addresses.destination_resolve(dest, allowed=allowed_networks())
    except addresses.UnsafeDestinationError as exc:
        result = sender.PostResult(None, f"refused before sending: {exc}"[:300], 0.0, "")
    else:
        result = _post(event, endpoint, dest, address)
    return _record(delivery, endpoint=endpoint, number=number, result=result)


def _post(
    event: WebhookEvent, endpoint: WebhookEndpoint, dest: addresses.Destination, address: str
) -> sender.PostResult:
    body = event_body(event)
    msg_id = str(event.event_id)
    sent_at = timezone.now()
    try:
        keys = signing_secrets(endpoint, now=sent_at)
    except (LookupError, ValueError, InvalidTag):
        # The secret was sealed under a key this deployment no longer has (ENCRYPTION_KEY changed
        # without ENCRYPTION_OLD_KEYS): nothing can be signed, and an unsigned POST is never sent.
        return sender.PostResult(None, "the signing secret cannot be opened: see the key rotation runbook", 0.0, "")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signing.signature(signing_secrets=keys, msg_id=msg_id, timestamp=sent_at, body=body),
    }
    return sender.post(
        dest, address, body=body, headers=headers,
        connect_timeout=settings.WEBHOOK_CONNECT_TIMEOUT, read_timeout=settings.WEBHOOK_READ_TIMEOUT,
    )  # fmt: skip


def _record(
    delivery: WebhookDelivery, *, endpoint: WebhookEndpoint, number: int, result: sender.PostResult
) -> AttemptOutcome:
    now = timezone.now()
    ok = result.status is not None and 200 <= result.status < 300
    error = result.error or ("" if ok else f"HTTP {result.status}")
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=number,
            attempted_at=now,
            status_code=result.status,
            error=error[:300],
            duration_ms=round(result.duration_ms, 2),
            response_excerpt=result.excerpt,
        )
        if ok:
            delivery.status = WebhookDeliveryStatus.DELIVERED
            delivery.delivered_at = now
            delivery.attempts = number
            delivery.lease_until = None
            delivery.last_error = ""
            delivery.save(update_fields=["status", "delivered_at", "attempts", "lease_until", "last_error"])
            if endpoint.failing_since is not None:
                WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=None)
                endpoint.failing_since = None
            outcome = "delivered"
        elif result.status == 410:
            _disable(
                endpoint, now=now, cause="gone", reason=f"The receiver answered 410 Gone on {now:%Y-%m-%d %H:%M} UTC."
            )
            _finish(delivery, number=number, now=now, failed_for="410 Gone: the endpoint was disabled", record=True)
            outcome = "failed"
        else:
            outcome = _failed(delivery, endpoint=endpoint, number=number, now=now, error=error)
    metrics.record_attempt(delivery=delivery, outcome=outcome, result=result, now=now)
    return AttemptOutcome(delivery.pk, outcome, result.status)


def _failed(delivery: WebhookDelivery, *, endpoint: WebhookEndpoint, number: int, now: datetime, error: str) -> str:
    # The first failure since the last success starts the clock; a day of nothing but failures disables.
    WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(failing_since=now)
    since = WebhookEndpoint.objects.values_list("failing_since", flat=True).get(pk=endpoint.pk) or now
    endpoint.failing_since = since
    if now - since >= timedelta(hours=settings.WEBHOOK_DISABLE_AFTER_HOURS):
        _disable(
            endpoint,
            now=now,
            cause="failing",
            reason=f"Every delivery failed from {since:%Y-%m-%d %H:%M} UTC to {now:%Y-%m-%d %H:%M} UTC; "
            f"the last error: {error}"[:500],
        )
        _finish(delivery, number=number, now=now, failed_for=f"{error}; the endpoint was disabled", record=True)
        return "failed"
    delay = retry_delay(number)
    if delay is None:
        _finish(delivery, number=number, now=now, failed_for=f"{error}; no retries left", record=True)
        return "failed"
    delivery.attempts = number
    delivery.next_attempt_at = now + delay
    delivery.lease_until = None
    delivery.last_error = error[:300]
    delivery.save(update_fields=["attempts", "next_attempt_at", "lease_until", "last_error"])
    return "retry"


def _finish(delivery: WebhookDelivery, *, number: int, now: datetime, failed_for: str, record: bool) -> None:
    delivery.status = WebhookDeliveryStatus.FAILED
    delivery.attempts = number if record else delivery.attempts
    delivery.lease_until = None
    delivery.next_attempt_at = None
    delivery.last_error = failed_for[:300]
    delivery.save(update_fields=["status", "attempts", "lease_until", "next_attempt_at", "last_error"])


def _disable(endpoint: WebhookEndpoint, *, now: datetime, reason: str, cause: str) -> None:
    """Stop sending to an endpoint: its owner sees why (API, admin), and its pending deliveries are
    given up (an owner re-enables the endpoint and re-sends what it still wants). ``cause`` (gone,
    failing) labels the metric an alert watches."""
    disabled = WebhookEndpoint.objects.filter(pk=endpoint.pk, enabled=True).update(
        enabled=False, disabled_reason=reason, disabled_at=now
    )
    endpoint.enabled = False
    if disabled:  # counted once, by the worker that disabled it, and only if that commits
        transaction.on_commit(lambda: metrics.record_endpoint_disabled(cause=cause))
    WebhookDelivery.objects.filter(endpoint_id=endpoint.pk, status=WebhookDeliveryStatus.PENDING).update(
        status=WebhookDeliveryStatus.FAILED, next_attempt_at=None, lease_until=None,
        last_error="the endpoint was disabled before this was delivered",
    )  # fmt: skip
    logger.warning("webhook endpoint %s disabled: %s", endpoint.pk, reason)


# A first attempt is queued when its event commits; the sweep only picks it up if that has not
# happened by now (a lost message, a broker that was down), so that under load it does not queue
# every event a second time while the first message is still waiting its turn.
FIRST_ATTEMPT_GRACE = timedelta(seconds=30)


def webhook_deliveries_due(*, limit: int | None = None) -> list[int]:
    """Pending deliveries whose time has come and that no live worker holds, oldest first."""
    now = timezone.now()
    lease_free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    due = Q(attempts=0, next_attempt_at__lte=now - FIRST_ATTEMPT_GRACE) | Q(attempts__gt=0, next_attempt_at__lte=now)
    return list(
        WebhookDelivery.objects.filter(lease_free, due, status=WebhookDeliveryStatus.PENDING)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[: limit or settings.WEBHOOK_SWEEP_BATCH]
    )


class ResendError(ValueError):
    """Why a delivery cannot be sent again, in words for whoever asked."""


def webhook_delivery_resend(*, delivery: WebhookDelivery, actor: User) -> WebhookDelivery:
    """Send a delivery again now, whatever became of it (delivered, given up), with the same event
    id, so a receiver that already has it can tell. Audited."""
    if not delivery.endpoint.enabled:
        raise ResendError("The endpoint is disabled: enable it first.")
    now = timezone.now()
    with transaction.atomic():
        before = {"status": delivery.status, "attempts": delivery.attempts}
        changed = (
            WebhookDelivery.objects.filter(pk=delivery.pk)
            .exclude(status=WebhookDeliveryStatus.PENDING)
            .update(status=WebhookDeliveryStatus.PENDING, next_attempt_at=now, lease_until=None, last_error="")
        )
        if not changed:
            raise ResendError("The delivery is already waiting to be sent.")
        audit_record(
            event_type="webhook.resent",
            actor=actor,
            obj=delivery,
            before=before,
            after={"status": WebhookDeliveryStatus.PENDING, "event_id": str(delivery.event.event_id),
                   "endpoint": delivery.endpoint_id},
        )  # fmt: skip
        transaction.on_commit(lambda: deliveries_enqueue([delivery.pk]))
    delivery.refresh_from_db()
    return delivery


PRUNE_BATCH = 1000


def deliveries_delete(deliveries: QuerySet[WebhookDelivery]) -> int:
    """Delete deliveries and their attempt logs a thousand at a time: Django's cascade would load
    every row (a busy endpoint's month of log) into memory first."""
    done = 0
    while ids := list(deliveries.order_by().values_list("pk", flat=True)[:PRUNE_BATCH]):
        WebhookAttempt.objects.filter(delivery_id__in=ids).delete()
        done += WebhookDelivery.objects.filter(pk__in=ids).delete()[0]
    return done


def webhook_events_prune(*, older_than_days: int | None = None) -> int:
    """Delete events (with their deliveries and attempt logs) older than the retention, once none
    of their deliveries is still pending, a thousand at a time; returns how many events went."""
    days = settings.WEBHOOK_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=days)
    old = WebhookEvent.objects.filter(created_at__lt=cutoff).exclude(deliveries__status=WebhookDeliveryStatus.PENDING)
    done = 0
    while ids := list(old.order_by().values_list("pk", flat=True)[:PRUNE_BATCH]):
        with transaction.atomic():
            deliveries_delete(WebhookDelivery.objects.filter(event_id__in=ids))
            done += WebhookEvent.objects.filter(pk__in=ids).delete()[0]
    return done
