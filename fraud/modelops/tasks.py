"""Scheduled Celery tasks of the model lifecycle (see CELERY_BEAT_SCHEDULE): interfaces only,
registered under their historical names (``fraud.tasks.*``), which the schedule uses."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from cipherguard.replica import analytics_reads
from fraud.modelops.services import lifecycle
from fraud.modelops.services.drift import drift_report_compute


@shared_task(name="fraud.tasks.model_retrain")
def model_retrain() -> str:
    """The scheduled retraining: a candidate compared with the live model; promoted only by an
    admin or by the configured margin."""
    # The months of history it trains on are read from the replica when there is one (see
    # model_train); everything else, its own writes included, stays on the primary.
    return lifecycle.model_retrain(read_replica=True).version


@shared_task(name="fraud.tasks.drift_report_daily")
def drift_report_daily() -> list[int]:
    """Yesterday's drift report."""
    with analytics_reads():  # a finished day's rows: the replica has them
        return [r.pk for r in drift_report_compute(day=timezone.now().date() - timedelta(days=1))]
