"""Celery tasks: interfaces only. Each takes ids, calls one service, and is safe to run twice."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready

from fraud.services import batches

logger = logging.getLogger(__name__)


@shared_task
def batch_job_process(job_id: int) -> None:
    """One chunk per task, then the next task: short tasks, bounded memory, and progress that
    survives a killed worker."""
    if batches.batch_process_next_chunk(job_id=job_id):
        batch_job_process.delay(job_id)


@shared_task
def batch_jobs_resume_stalled() -> list[int]:
    return batches.batch_jobs_resume_stalled()


@worker_ready.connect
def _resume_on_start(**kwargs: object) -> None:
    # A worker that starts after a crash picks the interrupted jobs up at once, instead of
    # waiting for the broker to redeliver their messages (which Redis does lazily).
    resumed = batches.batch_jobs_resume_stalled()
    if resumed:
        logger.info("resumed stalled batch jobs %s", resumed)


@shared_task
def backtest_run_task(backtest_id: int) -> str:
    from fraud.services.backtests import backtest_run

    return backtest_run(backtest_id=backtest_id).status


@shared_task
def model_retrain() -> str:
    """The scheduled retraining (see CELERY_BEAT_SCHEDULE): a candidate compared with the live
    model; promoted only by an admin or by the configured margin."""
    from fraud.services import model_retrain as retrain

    # The months of history it trains on are read from the replica when there is one (see
    # model_train); everything else, its own writes included, stays on the primary.
    return retrain(read_replica=True).version


@shared_task
def drift_report_daily() -> list[int]:
    """Yesterday's drift report (see CELERY_BEAT_SCHEDULE)."""
    from datetime import timedelta

    from django.utils import timezone

    from cipherguard.replica import analytics_reads
    from fraud.services.drift import drift_report_compute

    with analytics_reads():  # a finished day's rows: the replica has them
        return [r.pk for r in drift_report_compute(day=timezone.now().date() - timedelta(days=1))]
