"""Celery tasks of batch jobs: interfaces only. Each takes ids, calls one service, and is safe to
run twice. Registered under their historical names (``fraud.tasks.*``): messages already queued
and the beat schedule name them so."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready

from fraud.batches import services
from fraud.batches.services import PROCESS_TASK

logger = logging.getLogger(__name__)


@shared_task(name=PROCESS_TASK)
def batch_job_process(job_id: int, dispatch: int | None = None, lane: int = 0) -> None:
    """One chunk of one lane per task, then the lane's next task: short tasks, bounded memory,
    and progress that survives a killed worker. ``dispatch`` names the task chain (absent in
    messages queued before chains were numbered, which carry the job on as they always did);
    messages queued before lanes name none and are lane 0, the only lane such jobs have."""
    if services.batch_process_next_chunk(job_id=job_id, dispatch=dispatch, lane=lane):
        batch_job_process.delay(job_id, dispatch, lane)


@shared_task(name="fraud.tasks.batch_jobs_resume_stalled")
def batch_jobs_resume_stalled() -> list[int]:
    return services.batch_jobs_resume_stalled()


@worker_ready.connect
def _resume_on_start(**kwargs: object) -> None:
    # A worker that starts after a crash picks the interrupted jobs up at once, instead of
    # waiting for the broker to redeliver their messages (which Redis does lazily).
    resumed = services.batch_jobs_resume_stalled()
    if resumed:
        logger.info("resumed stalled batch jobs %s", resumed)
