"""Webhook event metrics, recorded by the worker that makes the attempt (prometheus_client's
multiprocess mode sums the workers). The backlog and the oldest undelivered event's age are state
metrics, read at scrape time (``fraud.metrics``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prometheus_client import Counter, Histogram

from cipherguard.metrics import LATENCY_BUCKETS

ATTEMPTS = Counter(
    "cipherguard_webhook_attempts_total",
    "Webhook delivery attempts, by outcome (delivered, retry: failed and scheduled again, failed: given up).",
    ["outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "cipherguard_webhook_attempt_seconds", "Time of one webhook POST, until the receiver's answer.",
    buckets=LATENCY_BUCKETS,
)  # fmt: skip
# From the event's commit to the receiver's 2xx: what a client waits, retries included.
LAG_BUCKETS = (*LATENCY_BUCKETS, 60.0, 300.0, 1800.0, 7200.0, 36000.0, 86400.0)
DELIVERY_LAG_SECONDS = Histogram(
    "cipherguard_webhook_delivery_lag_seconds",
    "From an event being recorded to its delivery's 2xx answer, retries included.",
    buckets=LAG_BUCKETS,
)

ENDPOINTS_DISABLED = Counter(
    "cipherguard_webhook_endpoints_disabled_total",
    "Webhook endpoints the platform disabled, by cause (gone: the receiver answered 410; failing: "
    "every delivery failed for WEBHOOK_DISABLE_AFTER_HOURS). An owner switching one off is not counted.",
    ["cause"],
)
# Every series exists from the start at 0: a rate over a series that appears at its first
# increment misses that increment, and a share of failures needs its delivered series.
for _outcome in ("delivered", "retry", "failed"):
    ATTEMPTS.labels(_outcome)
for _cause in ("gone", "failing"):
    ENDPOINTS_DISABLED.labels(_cause)


def record_attempt(*, delivery: Any, outcome: str, result: Any, now: datetime) -> None:
    ATTEMPTS.labels(outcome).inc()
    if result.status is not None:
        ATTEMPT_SECONDS.observe(result.duration_ms / 1000)
    if outcome == "delivered":
        DELIVERY_LAG_SECONDS.observe(max(0.0, (now - delivery.event.created_at).total_seconds()))


def record_endpoint_disabled(*, cause: str) -> None:
    ENDPOINTS_DISABLED.labels(cause).inc()
