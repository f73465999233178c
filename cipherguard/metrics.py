"""Prometheus metrics: what operators watch besides django-prometheus's HTTP histograms.

Two kinds:

* Event metrics (counters, histograms) are recorded where things happen: scoring, Celery tasks,
  the connection pool. Under gunicorn and the Celery prefork pool every process writes its own
  file in ``PROMETHEUS_MULTIPROC_DIR`` and a scrape sums them (prometheus_client's multiprocess
  mode), so one scrape sees every worker.
* State metrics are read at scrape time by the collectors each app offers through its
  ``AppConfig.state_collectors()`` (``cipherguard.hooks``): the fraud app's open and overdue
  cases, live model precision and recall, drift, batch-job progress and queue length
  (``fraud.metrics``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections
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

from cipherguard.hooks import app_hooks

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


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition(*, include_state: bool = True) -> bytes:
    """The text exposition of every process's event metrics (summed in multiprocess mode), plus
    the state the apps' collectors read now."""
    if multiprocess_dir():
        events = CollectorRegistry()
        multiprocess.MultiProcessCollector(events)
    else:
        events = REGISTRY
    output = generate_latest(events)
    if include_state:
        state = CollectorRegistry()
        for offer in app_hooks("state_collectors"):
            for collector in offer():
                state.register(collector)
        output += generate_latest(state)
    return output
