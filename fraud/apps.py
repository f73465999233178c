from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.apps import AppConfig

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)


class FraudConfig(AppConfig):
    name = "fraud"
    verbose_name = "Fraud scoring"

    # What this app adds to the kernel's process-level endpoints (cipherguard/hooks.py). The
    # imports are inside the methods: an AppConfig is imported before the app's models exist.

    def ready(self) -> None:
        # Registers every task in every process: services send their tasks by name.
        from fraud import tasks  # noqa: F401

    def readiness_checks(self) -> dict[str, Callable[[], str]]:
        from fraud.scoring.runtime import model_readiness

        return {"model": model_readiness}

    def warm_up(self) -> None:
        import fraud.scoring.runtime  # noqa: F401 - the scoring path's imports (onnxruntime, numpy)

    def warm_up_process(self) -> None:
        from fraud.scoring.runtime import runtime

        try:
            runtime.current()
        except Exception as exc:  # no database or no model yet: readiness reports it
            logger.warning("warm-up: model not loaded (%s)", type(exc).__name__)

    def state_collectors(self) -> list[Collector]:
        from fraud.metrics import StateCollector

        return [StateCollector()]

    def openapi_postprocess(self, result: dict[str, Any]) -> dict[str, Any]:
        from fraud.webhooks.payloads import openapi_components

        return openapi_components(result)
