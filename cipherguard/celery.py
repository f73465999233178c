"""The Celery app. Reliability settings live in settings.py (``CELERY_*``); schedules in
``CELERY_BEAT_SCHEDULE`` there too. Tasks are thin: they take ids and call one service."""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery, Task
from celery.signals import before_task_publish, task_postrun, task_prerun
from django.db import InterfaceError, OperationalError

from cipherguard import context

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cipherguard.settings")


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
    for key in ("data_folder_in", "data_folder_out", "processed_folder"):
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)


if str(app.conf.broker_url).startswith("filesystem"):
    _ensure_filesystem_queue()


# The request's correlation id travels with every task it enqueues, so a batch job's log lines
# can be tied back to the upload that started it.
REQUEST_ID_HEADER = "cipherguard_request_id"


@before_task_publish.connect
def _carry_request_id(headers: dict | None = None, **kwargs: object) -> None:
    rid = context.request_id.get()
    if headers is not None and rid:
        headers.setdefault(REQUEST_ID_HEADER, rid)


@task_prerun.connect
def _restore_request_id(task: Task | None = None, **kwargs: object) -> None:
    rid = getattr(task.request, REQUEST_ID_HEADER, None) if task is not None else None
    context.request_id.set(context.new_request_id(rid))


@task_postrun.connect
def _forget_request_id(**kwargs: object) -> None:
    context.request_id.set("")
