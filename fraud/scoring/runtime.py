"""The scoring runtime of one process: the active model's ONNX session (and a shadow
challenger's), the decision thresholds and the live lists and rules, read from the database at
most every ``FRAUD_RUNTIME_REFRESH_SECONDS``.

The session is built once per model version and swapped when the active version changes; a
change made through a service in this process applies at once: model changes call
``runtime.invalidate`` on commit, list, rule and threshold changes send ``policy_changed``."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.dispatch import receiver

from cipherguard.memory import return_free_heap
from fraud.features import definitions as fx
from fraud.models import ModelStatus, ModelVersion
from fraud.rules.expressions import Compiled
from fraud.rules.policy import Policy, Thresholds
from fraud.rules.selectors import load_policy, thresholds_row
from fraud.rules.signals import policy_changed
from fraud.scoring.scorer import OnnxScorer

logger = logging.getLogger(__name__)


class NoActiveModelError(Exception):
    """No model version is active: nothing can be scored."""


@dataclass(frozen=True)
class ActiveModel:
    id: int
    version: str
    sha256: str
    scorer: OnnxScorer


def servable(version: ModelVersion) -> bool:
    """Whether this code computes every feature the model needs. Feature sets only ever append
    features, so models of earlier sets keep serving (on their own columns) until a retrained
    one replaces them."""
    return set(version.feature_names) <= set(fx.FEATURE_NAMES)


def load_model(version: ModelVersion) -> ActiveModel:
    """The model's session; it takes rows in today's ``FEATURE_NAMES`` layout."""
    if not servable(version):
        raise NoActiveModelError(
            f"model {version.version} expects feature set {version.feature_set_version}, "
            f"this code computes {fx.FEATURE_SET_VERSION}"
        )
    scorer = OnnxScorer(
        bytes(version.artifact),
        expected_sha256=version.artifact_sha256,
        feature_names=version.feature_names,
        neutral_values=version.neutral_values,
        input_names=fx.FEATURE_NAMES,
        calibration=version.calibration,
    )
    return ActiveModel(id=version.pk, version=version.version, sha256=version.artifact_sha256, scorer=scorer)


class Runtime:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._model: ActiveModel | None = None
        self._shadow: ActiveModel | None = None
        self._thresholds: Thresholds | None = None
        self._policy = Policy()
        self._compiled: dict[tuple[int, str], Compiled] = {}
        self._checked_at = float("-inf")

    def invalidate(self) -> None:
        self._checked_at = float("-inf")

    def _stale(self) -> bool:
        return time.monotonic() - self._checked_at >= settings.FRAUD_RUNTIME_REFRESH_SECONDS

    def _refresh(self) -> None:
        row = thresholds_row()
        self._thresholds = Thresholds(review=row.review_threshold, decline=row.decline_threshold)
        rows = list(
            ModelVersion.objects.filter(Q(status=ModelStatus.ACTIVE) | Q(shadow=True)).values_list(
                "id", "version", "artifact_sha256", "status", "shadow"
            )
        )
        before = (self._model, self._shadow)
        self._model = self._swap(self._model, next((r[:3] for r in rows if r[3] == ModelStatus.ACTIVE), None))
        self._shadow = self._swap(self._shadow, next((r[:3] for r in rows if r[4]), None))
        if self._model is not before[0] or self._shadow is not before[1]:
            del before  # the replaced sessions are freed here, then their memory handed back
            return_free_heap()
        try:
            self._policy = load_policy(self._compiled)
        except Exception:  # scoring goes on with the lists and rules it had; the error is logged
            logger.exception("could not load the lists and rules; keeping the previous ones")
        self._checked_at = time.monotonic()

    @staticmethod
    def _swap(loaded: ActiveModel | None, wanted: tuple[int, str, str] | None) -> ActiveModel | None:
        """Keep the loaded session while it is still the wanted version (compared by id, name
        and digest: SQLite can reuse an id after a rollback); otherwise load the new one."""
        if wanted is None:
            return None
        if loaded is not None and (loaded.id, loaded.version, loaded.sha256) == wanted:
            return loaded
        return load_model(ModelVersion.objects.get(pk=wanted[0]))

    def policy(self) -> Policy:
        """The lists and rules, read together with the active model."""
        self.current()
        return self._policy

    def shadow(self) -> ActiveModel | None:
        """The challenger scoring in shadow, if any; read together with the active model."""
        self.current()
        return self._shadow

    def current(self) -> tuple[ActiveModel, Thresholds]:
        if self._stale():
            with self._lock:
                if self._stale():
                    self._refresh()
        if self._model is None or self._thresholds is None:
            raise NoActiveModelError("no active model: train one with `manage.py train_model --activate`")
        return self._model, self._thresholds


runtime = Runtime()


@receiver(policy_changed, dispatch_uid="fraud.scoring.runtime")
def _reread_policy(**kwargs: Any) -> None:
    runtime.invalidate()


def model_readiness() -> str:
    """The active model's version, for the readiness probe; "unavailable" without one."""
    try:
        model, _ = runtime.current()
    except NoActiveModelError:
        return "unavailable"
    return model.version
