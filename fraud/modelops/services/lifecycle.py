"""The model lifecycle: training, activation and rollback, shadowing, scheduled retraining."""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from audit.services import audit_record
from cipherguard.replica import analytics_reads
from fraud.features import definitions as fx
from fraud.features.store import load_history
from fraud.modelops.psi import reference_bins
from fraud.models import ModelStatus, ModelVersion, Transaction, WebhookEventType
from fraud.scoring.runtime import load_model, runtime, servable
from fraud.scoring.scorer import calibrate
from fraud.webhooks import payloads
from fraud.webhooks.events import webhook_events_record

logger = logging.getLogger(__name__)


def model_version_activate(*, version: ModelVersion, actor: User | None = None) -> ModelVersion:
    """Make ``version`` the one active model; the previous one is retired. Activating a version
    that was active before is a rollback, and audited as one. The partial unique index on active
    status makes a concurrent second activation fail instead of leaving two active models.
    Admins' webhook endpoints get ``model.activated``, recorded in the same transaction."""
    with transaction.atomic():
        now = timezone.now()
        current = list(
            ModelVersion.objects.select_for_update().filter(status=ModelStatus.ACTIVE).exclude(pk=version.pk)
        )
        for old in current:
            old.status = ModelStatus.RETIRED
            old.retired_at = now
            old.save(update_fields=["status", "retired_at"])
        rollback = version.activated_at is not None
        version.status = ModelStatus.ACTIVE
        version.shadow = False  # a promoted challenger stops shadowing itself
        version.activated_at = now
        version.retired_at = None
        version.save(update_fields=["status", "activated_at", "retired_at", "shadow"])
        audit_record(
            event_type="model.rolled_back" if rollback else "model.activated",
            actor=actor,
            obj=version,
            before={"active": [old.version for old in current]},
            after={"active": version.version},
        )
        webhook_events_record(
            event_type=WebhookEventType.MODEL_ACTIVATED,
            owner=None,
            payloads=[
                payloads.model_activated(version, previous=current[0].version if current else None, rollback=rollback)
            ],
        )
        transaction.on_commit(runtime.invalidate)
    logger.info("model %s activated", version.version)
    return version


@dataclass(frozen=True)
class TrainingWindows:
    train_start: datetime
    train_end: datetime
    validation_start: datetime
    validation_end: datetime


def training_windows(
    *, first: datetime, as_of: datetime, validation_days: int, label_delay_days: int
) -> TrainingWindows:
    """Temporal split, never future into past. Validation ends ``label_delay`` before ``as_of``
    (younger labels are not settled); training ends ``label_delay`` before validation starts, so
    the labels it learns from were known when the validation period began. The first 7 days are
    skipped: their history windows are still filling."""
    delay = timedelta(days=label_delay_days)
    validation_end = as_of - delay
    validation_start = validation_end - timedelta(days=validation_days)
    train_end = validation_start - delay
    train_start = first + timedelta(days=7)
    if train_end - train_start < timedelta(days=7):
        raise ValueError(
            f"not enough history to train: need at least {14 + 2 * label_delay_days + validation_days} days, "
            f"have {(as_of - first).days}"
        )
    return TrainingWindows(train_start, train_end, validation_start, validation_end)


def model_train(
    *,
    validation_days: int = 14,
    seed: int = 0,
    activate: bool = False,
    as_of: datetime | None = None,
    read_replica: bool = False,
) -> ModelVersion:
    """Train a model on all stored history, export it to ONNX, verify ONNX against
    scikit-learn, and store it as a candidate (or the active) ``ModelVersion``. With
    ``read_replica`` (the scheduled retraining), the history is read from the read replica when
    one is usable; a command run right after loading data reads the primary."""
    # scikit-learn (training, and the metrics of protocol) stays out of web processes, which import
    # this module for activation and shadowing: ~60 MB they never use.
    from fraud.modelops import training
    from fraud.modelops.protocol import calibration_metrics

    history = Transaction.objects.all()
    if as_of is not None:
        history = history.filter(timestamp__lt=as_of)
    with analytics_reads() if read_replica else nullcontext():
        frame, _ids = load_history(history)
    if len(frame) == 0:
        raise ValueError("no transactions to train on: run `manage.py generate_transactions` or import history")
    first = fx.from_epoch_us(int(frame.ts.min()))
    as_of = as_of or fx.from_epoch_us(int(frame.ts.max()) + 1)
    delay_days = settings.FRAUD_LABEL_DELAY_DAYS
    w = training_windows(first=first, as_of=as_of, validation_days=validation_days, label_delay_days=delay_days)
    x = fx.features_offline(frame, frame, label_delay_days=delay_days)

    def window(start: datetime, end: datetime) -> np.ndarray:
        return (frame.ts >= fx.to_epoch_us(start)) & (frame.ts < fx.to_epoch_us(end))

    train_rows, val_rows = window(w.train_start, w.train_end), window(w.validation_start, w.validation_end)
    # Labels as known at ``as_of``. The training window ends two label delays before it, so its
    # labels have had time to arrive; features still only see labels known at each row's time.
    known = frame.fraud_known_at <= fx.to_epoch_us(as_of)
    y_train, y_val = known[train_rows].astype(np.int64), known[val_rows].astype(np.int64)
    if y_train.sum() < 10 or y_val.sum() < 1:
        raise ValueError(
            f"too few fraud labels to train ({int(y_train.sum())} in training, {int(y_val.sum())} in validation)"
        )

    model = training.fit(x[train_rows], y_train, seed=seed)
    neutral = training.neutral_values(x[train_rows])
    exported = training.export(model, x[val_rows], list(fx.FEATURE_NAMES), neutral)
    # The score becomes a probability on the validation window, which the model never saw: an
    # analyst's "0.3" then means about 3 in 10 such payments are fraud. Calibration is monotone,
    # so the validation ranking metrics (and the comparison with the champion) are unchanged.
    raw_val = model.predict_proba(x[val_rows].astype(np.float32))[:, 1]
    calibration = training.fit_calibration(raw_val, y_val)
    val_scores = calibrate(raw_val, calibration)
    train_scores = calibrate(model.predict_proba(x[train_rows].astype(np.float32))[:, 1], calibration)
    metrics = {
        "validation": training.binary_metrics(y_val, val_scores),
        "train": training.binary_metrics(y_train, train_scores),
        "calibration": {
            "before": calibration_metrics(y_val, raw_val),
            "after": calibration_metrics(y_val, val_scores),
            "fitted": bool(calibration),
        },
        "onnx_max_abs_diff": exported.onnx_max_abs_diff,
        "label_delay_days": delay_days,
        "seed": seed,
        # Score and feature distributions of the training rows: the reference for drift.
        "reference": reference_distributions(x[train_rows], train_scores),
    }
    active = ModelVersion.objects.filter(status=ModelStatus.ACTIVE).first()
    if active is not None and servable(active):
        # The champion on exactly the challenger's held-back rows: a like-for-like comparison.
        champion_scores = load_model(active).scorer.predict(x[val_rows])
        metrics["active_on_same_window"] = {
            "version": active.version,
            **training.binary_metrics(y_val, champion_scores),
        }
    now = timezone.now()
    version = ModelVersion.objects.create(
        version=f"{training.VERSION_PREFIX}-{now:%Y%m%d-%H%M%S-%f}",
        algorithm=training.ALGORITHM,
        artifact=exported.artifact,
        artifact_sha256=exported.sha256,
        feature_set_version=fx.FEATURE_SET_VERSION,
        feature_names=list(fx.FEATURE_NAMES),
        neutral_values=exported.neutral_values,
        calibration=calibration,
        train_start=w.train_start,
        train_end=w.train_end,
        validation_start=w.validation_start,
        validation_end=w.validation_end,
        metrics=metrics,
    )
    logger.info("trained model %s: %s", version.version, metrics["validation"])
    if activate:
        model_version_activate(version=version)
    return version


def model_version_set_shadow(*, version: ModelVersion, on: bool, actor: User | None = None) -> ModelVersion:
    """Start (or stop) scoring live traffic with ``version`` in shadow. One challenger at a
    time: starting one stops the previous. The active model cannot be its own shadow."""
    if on and version.status == ModelStatus.ACTIVE:
        raise ValueError(f"{version.version} is the active model")
    with transaction.atomic():
        previous = list(ModelVersion.objects.select_for_update().filter(shadow=True).exclude(pk=version.pk))
        for old in previous:
            old.shadow = False
            old.save(update_fields=["shadow"])
        version.shadow = on
        version.save(update_fields=["shadow"])
        audit_record(
            event_type="model.shadow_started" if on else "model.shadow_stopped",
            actor=actor,
            obj=version,
            before={"shadow": [v.version for v in previous]},
            after={"shadow": version.version if on else None},
        )
        transaction.on_commit(runtime.invalidate)
    return version


def model_retrain(
    *, seed: int = 0, auto_promote_margin: float | None = None, read_replica: bool = False
) -> ModelVersion:
    """Train a candidate and compare it with the active model on the same held-back window.
    With a margin >= 0 (``MODEL_AUTO_PROMOTE_MARGIN``), a candidate whose Average Precision beats
    the active model's by more than the margin is promoted (audited as the system's action);
    otherwise an admin decides."""
    margin = settings.MODEL_AUTO_PROMOTE_MARGIN if auto_promote_margin is None else auto_promote_margin
    candidate = model_train(seed=seed, activate=False, read_replica=read_replica)
    champion = candidate.metrics.get("active_on_same_window")
    ours = candidate.metrics["validation"].get("average_precision")
    if champion is None:
        if not ModelVersion.objects.filter(status=ModelStatus.ACTIVE).exists() and margin >= 0:
            model_version_activate(version=candidate)  # nothing live yet: the candidate is better than nothing
    elif margin >= 0 and ours is not None and ours > champion.get("average_precision", 0.0) + margin:
        model_version_activate(version=candidate)
    candidate.refresh_from_db()
    logger.info("retrained %s (%s): AP %s vs active %s", candidate.version, candidate.status, ours, champion)
    return candidate


def reference_distributions(x: np.ndarray, scores: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Decile edges and shares of the score and of every feature, for PSI later."""
    return {
        "score": reference_bins(scores, bins),
        "features": {name: reference_bins(x[:, i], bins) for i, name in enumerate(fx.FEATURE_NAMES)},
    }
