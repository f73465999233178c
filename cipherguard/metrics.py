"""Prometheus metrics: what operators watch besides django-prometheus's HTTP histograms.

Two kinds:

* Event metrics (counters, histograms) are recorded where things happen: scoring, Celery tasks,
  the connection pool. Under gunicorn and the Celery prefork pool every process writes its own
  file in ``PROMETHEUS_MULTIPROC_DIR`` and a scrape sums them (prometheus_client's multiprocess
  mode), so one scrape sees every worker.
* State metrics (open and overdue cases, the live model's precision and recall, drift, batch-job
  progress, queue length) are read from the database and the broker at scrape time by
  ``StateCollector``, cached briefly in the shared cache so several replicas scraped every 15 s
  do not repeat the same aggregate queries.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

# The *_created series double the exposition for nothing our rules or dashboards use.
disable_created_metrics()

# Scoring takes milliseconds: buckets fine enough below 25 ms for a meaningful p50/p99, up to the
# 100 ms alert threshold and beyond.
LATENCY_BUCKETS = (
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

SCORING_SECONDS = Histogram(
    "cipherguard_scoring_seconds",
    "Time spent scoring in the service (features, model, reasons, storing), per call; "
    "path=single is one API transaction, batch a synchronous batch call, job a batch-job chunk.",
    ["path"],
    buckets=LATENCY_BUCKETS,
)
SCORED = Counter(
    "cipherguard_transactions_scored_total",
    "Transactions newly scored (replays of a stored transaction are not counted).",
    ["path"],
)
DECISIONS = Counter("cipherguard_decisions_total", "Fraud decisions given, by outcome.", ["decision"])
SCORES = Histogram(
    "cipherguard_fraud_score",
    "Distribution of the fraud scores given (a probability).",
    buckets=tuple(round(0.05 * i, 2) for i in range(1, 21)),
)
CELERY_TASKS_SENT = Counter("cipherguard_celery_tasks_sent_total", "Celery tasks enqueued.", ["task"])
CELERY_TASKS = Counter(
    "cipherguard_celery_tasks_total",
    "Celery tasks finished, by final state (SUCCESS, FAILURE, RETRY).",
    ["task", "state"],
)
CELERY_TASK_SECONDS = Histogram(
    "cipherguard_celery_task_seconds",
    "Celery task run time.",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
BATCH_ROWS = Counter("cipherguard_batch_rows_total", "Batch-job rows processed, by outcome.", ["outcome"])
# Connection-pool use, set by each process after every request; summed over live processes.
DB_POOL = Gauge(
    "cipherguard_db_pool_connections",
    "Database pool connections of this service: open (size), available (idle), waiting (requests "
    "queued for a connection), max (configured maximum).",
    ["database", "state"],
    multiprocess_mode="livesum",
)


@contextmanager
def scoring_timer(path: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        SCORING_SECONDS.labels(path).observe(time.perf_counter() - start)


def record_scored(path: str, transactions: list[Any]) -> None:
    """Count newly scored transactions, their decisions and their scores."""
    if not transactions:
        return
    SCORED.labels(path).inc(len(transactions))
    by_decision: dict[str, int] = {}
    for tx in transactions:
        by_decision[tx.decision] = by_decision.get(tx.decision, 0) + 1
        SCORES.observe(tx.fraud_score)
    for decision, n in by_decision.items():
        DECISIONS.labels(decision).inc(n)


def record_batch_rows(*, scored: int, failed: int) -> None:
    BATCH_ROWS.labels("scored").inc(scored)
    BATCH_ROWS.labels("failed").inc(failed)


def record_pool_usage(**kwargs: object) -> None:
    """Connected to ``request_finished``: publish this process's pool statistics (a dict copy
    under the pool's lock, microseconds)."""
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        if conn.vendor != "postgresql" or not conn.settings_dict.get("OPTIONS", {}).get("pool"):
            continue
        try:
            stats = conn.pool.get_stats()
        except Exception as exc:  # a closed pool (shutdown) must not turn into a failed response
            logger.debug("pool metrics unavailable: %s", type(exc).__name__)
            continue
        DB_POOL.labels(conn.alias, "open").set(stats.get("pool_size", 0))
        DB_POOL.labels(conn.alias, "available").set(stats.get("pool_available", 0))
        DB_POOL.labels(conn.alias, "waiting").set(stats.get("requests_waiting", 0))
        DB_POOL.labels(conn.alias, "max").set(stats.get("pool_max", 0))


# --- State read at scrape time ------------------------------------------------------------------

STATE_CACHE_KEY = "metrics:state:v1"


def _state() -> dict[str, Any]:
    """The database-backed figures, as plain data (cached by the caller)."""
    from django.conf import settings
    from django.db.models import Count, Min, Q
    from django.utils import timezone

    from cipherguard.replica import analytics_reads
    from fraud.models import (
        BatchJob,
        BatchStatus,
        Case,
        Decision,
        DriftReport,
        Label,
        ModelStatus,
        ModelVersion,
        Transaction,
    )

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
    state["queue_length"] = _queue_length(settings.CELERY_TASK_DEFAULT_QUEUE)
    return state


def _queue_length(queue: str) -> int | None:
    """Messages waiting in the Celery queue (a passive declare: works on Redis and RabbitMQ);
    None when the broker cannot tell (the embedded folder queue) or does not answer."""
    from cipherguard.celery import app

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
        from django.core.cache import cache

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
        from fraud.models import CaseStatus

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
        if state["queue_length"] is not None:
            queue = GaugeMetricFamily(
                "cipherguard_celery_queue_length", "Messages waiting in the Celery queue.", labels=["queue"]
            )
            from django.conf import settings

            queue.add_metric([settings.CELERY_TASK_DEFAULT_QUEUE], state["queue_length"])
            yield queue


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition(*, include_state: bool = True) -> bytes:
    """The text exposition of every process's event metrics (summed in multiprocess mode), plus
    the state read now."""
    if multiprocess_dir():
        events = CollectorRegistry()
        multiprocess.MultiProcessCollector(events)
    else:
        events = REGISTRY
    output = generate_latest(events)
    if include_state:
        state = CollectorRegistry()
        state.register(StateCollector())
        output += generate_latest(state)
    return output
