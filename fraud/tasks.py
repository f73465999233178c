"""The fraud app's Celery tasks, one module per job. Celery's autodiscovery, and the app's
start-up (``FraudConfig.ready``), import this module so that every task is registered."""

from __future__ import annotations

from fraud.backtests.tasks import backtest_run_task
from fraud.batches.tasks import batch_job_process, batch_jobs_resume_stalled
from fraud.modelops.tasks import drift_report_daily, model_retrain
from fraud.webhooks.tasks import webhook_deliveries_send, webhook_events_prune, webhooks_send_due

__all__ = [
    "backtest_run_task",
    "batch_job_process",
    "batch_jobs_resume_stalled",
    "drift_report_daily",
    "model_retrain",
    "webhook_deliveries_send",
    "webhook_events_prune",
    "webhooks_send_due",
]
