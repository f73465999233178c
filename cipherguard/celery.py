"""The Celery app. Reliability settings live in settings.py (``CELERY_*``); schedules in
``CELERY_BEAT_SCHEDULE`` there too. Tasks are thin: they take ids and call one service."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

# A worker serving metrics (METRICS_PORT) needs prometheus_client's multiprocess mode, chosen when
# prometheus_client is first imported, before any pool process forks: this module is the first
# of ours a `celery` process imports. Containers set PROMETHEUS_MULTIPROC_DIR themselves.
if (
    "worker" in sys.argv
    and os.environ.get("METRICS_PORT", "0").strip() not in ("", "0")
    and not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="cipherguard-worker-metrics-")
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

from celery import Celery, Task  # noqa: E402 - after the environment above
from celery.exceptions import SecurityWarning  # noqa: E402
from celery.signals import (  # noqa: E402
    before_task_publish,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_shutdown,
)
from django.conf import settings  # noqa: E402
from django.db import InterfaceError, OperationalError  # noqa: E402
from prometheus_client import CollectorRegistry, multiprocess, start_http_server  # noqa: E402

from cipherguard import context, metrics  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cipherguard.settings")
logger = logging.getLogger(__name__)


class CipherGuardTask(Task):
    """Every task retries transient database trouble with exponential backoff and jitter (a
    failover, a full pool), at most five times; anything else fails the task at once."""

    autoretry_for = (OperationalError, InterfaceError)
    retry_backoff = 2
    retry_backoff_max = 300
    retry_jitter = True
    max_retries = 5


app = Celery("cipherguard", task_cls=CipherGuardTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _ensure_filesystem_queue() -> None:
    """The embedded default broker is a pair of folders; kombu needs them to exist."""
    options = app.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)


if str(app.conf.broker_url).startswith("filesystem"):
    _ensure_filesystem_queue()
    # The embedded queue is a folder of the user who ran `make run`, often root in a container.
    # Celery's root warning is about a worker that unpickles messages from a shared broker; this
    # one accepts JSON only (CELERY_ACCEPT_CONTENT; with pickle Celery refuses to start as root,
    # a check this filter leaves in place), so the warning would only puzzle a newcomer.
    warnings.filterwarnings("ignore", category=SecurityWarning)


def task(name: str) -> Task:
    """The task registered under ``name``, for a service that queues work: a task module imports
    the services it calls, so a service sends its task by name instead of importing it back.
    Apps register their tasks when Django starts (their ``AppConfig.ready`` imports them)."""
    return app.tasks[name]


# The request's correlation id travels with every task it enqueues, so a batch job's log lines
# can be tied back to the upload that started it.
REQUEST_ID_HEADER = "cipherguard_request_id"


@before_task_publish.connect
def _carry_request_id(sender: str | None = None, headers: dict | None = None, **kwargs: object) -> None:
    rid = context.request_id.get()
    if headers is not None and rid:
        headers.setdefault(REQUEST_ID_HEADER, rid)
    metrics.CELERY_TASKS_SENT.labels(sender or "unknown").inc()


# Task start times by task id, in the process running the task (prerun and postrun fire there).
_started: dict[str, float] = {}


@task_prerun.connect
def _restore_request_id(task_id: str | None = None, task: Task | None = None, **kwargs: object) -> None:
    rid = getattr(task.request, REQUEST_ID_HEADER, None) if task is not None else None
    context.request_id.set(context.new_request_id(rid))
    if task_id:
        _started[task_id] = time.perf_counter()


@task_postrun.connect
def _task_finished(
    task_id: str | None = None, task: Task | None = None, state: str | None = None, **kwargs: object
) -> None:
    """Count the task by its final state (SUCCESS, FAILURE, RETRY) and time it."""
    context.request_id.set("")
    name = task.name if task is not None else "unknown"
    started = _started.pop(task_id or "", None)
    if started is not None:
        metrics.CELERY_TASK_SECONDS.labels(name).observe(time.perf_counter() - started)
    metrics.CELERY_TASKS.labels(name, state or "UNKNOWN").inc()


@worker_init.connect
def _serve_worker_metrics(**kwargs: object) -> None:
    """With METRICS_PORT set, the worker's main process serves every pool process's metrics
    (summed from PROMETHEUS_MULTIPROC_DIR, where files of a previous run are removed first: they
    would be counted again; this process's own files, already open, stay)."""
    port = settings.METRICS_PORT
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not port or not directory:
        return
    for stale in Path(directory).glob("*.db"):
        if not stale.stem.endswith(f"_{os.getpid()}"):
            stale.unlink()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    start_http_server(port, registry=registry)
    logger.info("worker metrics on port %s", port)


@worker_process_shutdown.connect
def _pool_process_gone(pid: int | None = None, **kwargs: object) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid or os.getpid())
