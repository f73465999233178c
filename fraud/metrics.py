"""The fraud app's state metrics, read from the database and the broker at scrape time (the
kernel's ``/metrics`` asks ``FraudConfig.state_collectors`` for them): open and overdue cases, the
live model's precision and recall, drift, batch-job progress, queue length, the webhook backlog and
endpoints. Cached briefly in the shared cache, so several replicas scraped every 15 s do not
repeat the same aggregate queries."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Min, Q
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from cipherguard.celery import app
from cipherguard.replica import analytics_reads
from fraud.models import (
    BatchJob,
    BatchStatus,
    Case,
    CaseStatus,
    Decision,
    DriftReport,
    Label,
    ModelStatus,
    ModelVersion,
    Transaction,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
)

logger = logging.getLogger(__name__)

# Versioned: a replica of the previous release reading a newer replica's cached state (or the
# reverse, during a rolling deploy) would miss keys.
STATE_CACHE_KEY = "metrics:state:v2"


def _state() -> dict[str, Any]:
    """The database-backed figures, as plain data (cached by the caller)."""
    now = timezone.now()
    state: dict[str, Any] = {}
    with analytics_reads():
        cases = dict(Case.objects.active().values_list("status").annotate(n=Count("id")).order_by())
        state["cases"] = cases
        state["cases_overdue"] = Case.objects.overdue(now).count()
        oldest = Case.objects.active().aggregate(oldest=Min("opened_at"))["oldest"]
        state["case_oldest_age"] = (now - oldest).total_seconds() if oldest else 0.0

        active = ModelVersion.objects.filter(status=ModelStatus.ACTIVE).values("id", "version").first()
        state["model"] = active["version"] if active else None
        shadow = ModelVersion.objects.filter(shadow=True).values_list("version", flat=True).first()
        state["shadow_model"] = shadow
        if active:
            # Precision and recall of the live model's flags (review or decline) over the last 30
            # days of transactions whose label is known.
            window = Transaction.objects.filter(
                model_version_id=active["id"], scored_at__gte=now - timedelta(days=30), label__in=Label.values
            )
            flagged = ~Q(decision=Decision.APPROVE)
            fraud = Q(label=Label.FRAUD)
            c = window.aggregate(
                labelled=Count("id"),
                tp=Count("id", filter=flagged & fraud),
                fp=Count("id", filter=flagged & ~fraud),
                fn=Count("id", filter=~flagged & fraud),
            )
            state["labelled"] = c["labelled"]
            state["precision"] = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else None
            state["recall"] = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else None
            drift = (
                DriftReport.objects.filter(model_version_id=active["id"])
                .values("day", "score_psi", "feature_psi")
                .first()
            )
            state["drift"] = drift and {
                "day": drift["day"].isoformat(),
                "score_psi": drift["score_psi"],
                "feature_psi": drift["feature_psi"] or {},
            }
        jobs = dict(
            BatchJob.objects.filter(status__in=[BatchStatus.QUEUED, BatchStatus.RUNNING])
            .values_list("status")
            .annotate(n=Count("id"))
            .order_by()
        )
        state["batch_jobs"] = jobs
        state["batch_running"] = [
            {"id": j["id"], "total": j["total"], "done": j["scored"] + j["failed"]}
            for j in BatchJob.objects.filter(status=BatchStatus.RUNNING)
            .order_by("id")
            .values("id", "total", "scored", "failed")[:50]
        ]
        oldest_queued = BatchJob.objects.filter(status=BatchStatus.QUEUED).aggregate(t=Min("created_at"))["t"]
        state["batch_oldest_queued_age"] = (now - oldest_queued).total_seconds() if oldest_queued else 0.0
        state["webhooks"] = _webhook_state(now)
    state["queue_length"] = _queue_length(settings.CELERY_TASK_DEFAULT_QUEUE)
    return state


def _webhook_state(now: datetime) -> dict[str, Any]:
    """Two aggregates: the pending deliveries (a small set the partial index webhook_delivery_due
    holds) and the endpoints (a few per client)."""
    pending = WebhookDelivery.objects.filter(status=WebhookDeliveryStatus.PENDING).aggregate(
        first=Count("id", filter=Q(attempts=0)),
        retry=Count("id", filter=Q(attempts__gt=0)),
        # A delivery is created with its event, at the same instant: its created_at is the event's,
        # without a join (a re-send keeps it too).
        oldest=Min("created_at"),
        due=Min("next_attempt_at"),
    )
    # Each endpoint in one state (aliases that are not field names, which aggregate() refuses).
    endpoints = WebhookEndpoint.objects.aggregate(
        healthy=Count("id", filter=Q(enabled=True, failing_since__isnull=True)),
        failing=Count("id", filter=Q(enabled=True, failing_since__isnull=False)),
        off=Count("id", filter=Q(enabled=False)),
    )
    return {
        "backlog": {"first": pending["first"], "retry": pending["retry"]},
        "oldest_age": max(0.0, (now - pending["oldest"]).total_seconds()) if pending["oldest"] else 0.0,
        # A retry waiting for its time is not late; a delivery past its time that no worker has
        # sent is: the workers are behind, stopped, or held by slow receivers.
        "overdue": max(0.0, (now - pending["due"]).total_seconds()) if pending["due"] else 0.0,
        "endpoints": {"enabled": endpoints["healthy"], "failing": endpoints["failing"], "disabled": endpoints["off"]},
    }


def _queue_length(queue: str) -> int | None:
    """Messages waiting in the Celery queue (a passive declare: works on Redis and RabbitMQ);
    None when the broker cannot tell (the embedded folder queue) or does not answer."""
    if str(app.conf.broker_url).startswith(("filesystem", "memory")):
        return None
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=1)
            _, count, _ = conn.default_channel.queue_declare(queue=queue, passive=True)
            return int(count)
    except Exception as exc:  # a broker outage must not break the scrape; the gauge goes missing
        logger.warning("metrics: queue length unavailable: %s", type(exc).__name__)
        return None


class StateCollector(Collector):
    def __init__(self, ttl_seconds: float = 15.0) -> None:
        self.ttl = ttl_seconds

    def _cached_state(self) -> dict[str, Any] | None:
        try:
            state = cache.get(STATE_CACHE_KEY)
        except Exception:  # the cache is down: compute without it
            state = None
        if state is None:
            try:
                state = _state()
            except Exception as exc:  # the database is down: the HTTP metrics must still be served
                logger.warning("metrics: state unavailable: %s", type(exc).__name__)
                return None
            try:
                cache.set(STATE_CACHE_KEY, state, timeout=self.ttl)
            except Exception as exc:  # served uncached; the next scrape tries again
                logger.warning("metrics: state not cached: %s", type(exc).__name__)
        return state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        state = self._cached_state()
        up = GaugeMetricFamily("cipherguard_state_up", "1 when the database-backed metrics could be read.")
        up.add_metric([], 1 if state is not None else 0)
        yield up
        if state is None:
            return
        cases = GaugeMetricFamily("cipherguard_cases", "Active cases by status.", labels=["status"])
        for status in CaseStatus.values:
            if status != CaseStatus.CLOSED:
                cases.add_metric([status], state["cases"].get(status, 0))
        yield cases
        yield GaugeMetricFamily(
            "cipherguard_cases_overdue", "Active cases past their due time (SLA).", value=state["cases_overdue"]
        )
        yield GaugeMetricFamily(
            "cipherguard_case_oldest_open_age_seconds",
            "Age of the oldest active case.",
            value=state["case_oldest_age"],
        )
        info = GaugeMetricFamily(
            "cipherguard_model_info",
            "The model versions in service (role=active or shadow).",
            labels=["version", "role"],
        )
        if state["model"]:
            info.add_metric([state["model"], "active"], 1)
        if state["shadow_model"]:
            info.add_metric([state["shadow_model"], "shadow"], 1)
        yield info
        yield GaugeMetricFamily(
            "cipherguard_model_active",
            "1 when a model is active (nothing can be scored otherwise).",
            value=1 if state["model"] else 0,
        )
        if state["model"]:
            yield GaugeMetricFamily(
                "cipherguard_model_labelled_transactions",
                "Transactions of the last 30 days scored by the active model whose label is known.",
                value=state["labelled"],
            )
            for name, key in (("precision", "precision"), ("recall", "recall")):
                if state[key] is not None:
                    yield GaugeMetricFamily(
                        f"cipherguard_model_{name}",
                        f"The active model's {name} over the last 30 days of labelled transactions "
                        "(flagged = review or decline, positive = confirmed fraud).",
                        value=state[key],
                    )
            drift = state.get("drift")
            if drift:
                yield GaugeMetricFamily(
                    "cipherguard_drift_score_psi",
                    "Population stability index of the score on the latest drift report's day.",
                    value=drift["score_psi"],
                )
                feature = GaugeMetricFamily(
                    "cipherguard_drift_feature_psi",
                    "PSI of each feature on the latest report's day.",
                    labels=["feature"],
                )
                for name, psi in sorted(drift["feature_psi"].items()):
                    feature.add_metric([name], float(psi))
                yield feature
        jobs = GaugeMetricFamily("cipherguard_batch_jobs", "Batch jobs waiting or running.", labels=["status"])
        for status in ("queued", "running"):
            jobs.add_metric([status], state["batch_jobs"].get(status, 0))
        yield jobs
        progress = GaugeMetricFamily(
            "cipherguard_batch_job_progress_ratio", "Share of a running batch job's rows done.", labels=["job"]
        )
        for job in state["batch_running"]:
            progress.add_metric([str(job["id"])], job["done"] / job["total"] if job["total"] else 0.0)
        yield progress
        yield GaugeMetricFamily(
            "cipherguard_batch_oldest_queued_age_seconds",
            "How long the oldest queued batch job has waited for a worker.",
            value=state["batch_oldest_queued_age"],
        )
        yield from self._webhooks(state["webhooks"])
        if state["queue_length"] is not None:
            queue = GaugeMetricFamily(
                "cipherguard_celery_queue_length", "Messages waiting in the Celery queue.", labels=["queue"]
            )
            queue.add_metric([settings.CELERY_TASK_DEFAULT_QUEUE], state["queue_length"])
            yield queue

    def _webhooks(self, state: dict[str, Any]) -> Iterator[GaugeMetricFamily]:
        backlog = GaugeMetricFamily(
            "cipherguard_webhook_backlog",
            "Webhook deliveries not yet delivered nor given up, by the attempt they wait for (first or retry).",
            labels=["attempt"],
        )
        for attempt in ("first", "retry"):
            backlog.add_metric([attempt], state["backlog"][attempt])
        yield backlog
        yield GaugeMetricFamily(
            "cipherguard_webhook_oldest_undelivered_seconds",
            "Age of the event of the oldest pending webhook delivery (retries included); 0 when none is pending.",
            value=state["oldest_age"],
        )
        yield GaugeMetricFamily(
            "cipherguard_webhook_overdue_seconds",
            "How long the pending webhook delivery furthest past its attempt time has waited for a worker; "
            "0 when none is due.",
            value=state["overdue"],
        )
        endpoints = GaugeMetricFamily(
            "cipherguard_webhook_endpoints",
            "Webhook endpoints by state: enabled (healthy), failing (enabled, every delivery failing since "
            "failing_since), disabled.",
            labels=["state"],
        )
        for name in ("enabled", "failing", "disabled"):
            endpoints.add_metric([name], state["endpoints"][name])
        yield endpoints
