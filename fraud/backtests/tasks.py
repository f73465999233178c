"""Celery task of backtests: takes an id, calls the service."""

from __future__ import annotations

from celery import shared_task

from fraud.backtests.services import RUN_TASK, backtest_run


@shared_task(name=RUN_TASK)
def backtest_run_task(backtest_id: int) -> str:
    return backtest_run(backtest_id=backtest_id).status
