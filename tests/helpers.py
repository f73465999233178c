"""Framework-light helpers for building test data and a small trained model once per session."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from fraud.features import definitions as fx
from fraud.modelops.datasets import frame_from_generated
from fraud.modelops.generator import Generated


def run_concurrently(count: int, work: Callable[[int], None], *, timeout: float = 120) -> list[BaseException]:
    """Run ``work(k)`` for k in 0..count-1 in threads released together (each its own database
    connection, closed at the end); returns what they raised."""
    from django.db import connection

    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            barrier.wait(timeout=10)
            work(k)
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    return errors


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def online_features(tx, *, label_delay_days: int = 7) -> np.ndarray:
    """The feature row ``[1, n]`` the scoring path computes for a stored transaction."""
    from fraud.features.store import PendingTransaction, features_online

    pending = PendingTransaction(
        owner_id=tx.owner_id,
        customer_id=tx.customer_id,
        merchant_id=tx.merchant_id,
        country=tx.country,
        channel=tx.channel,
        timestamp=tx.timestamp,
        amount=float(tx.amount),
        card_fingerprint=tx.card_fingerprint,
    )
    return features_online(pending, label_delay_days=label_delay_days)


@dataclass(frozen=True)
class TrainedArtifact:
    artifact: bytes
    sha256: str
    neutral_values: list[float]
    onnx_max_abs_diff: float
    x_validation: np.ndarray
    sklearn_validation_scores: np.ndarray


def train_small_model(g: Generated, *, label_delay_days: int = 7, split: datetime) -> TrainedArtifact:
    from fraud.modelops import training

    frame = frame_from_generated(g)
    x = fx.features_offline(frame, frame, label_delay_days=label_delay_days)
    cut = fx.to_epoch_us(split)
    train, val = frame.ts < cut, frame.ts >= cut
    y = (frame.fraud_known_at != fx.NOT_FRAUD).astype(np.int64)
    model = training.fit(x[train], y[train], seed=0)
    neutral = training.neutral_values(x[train])
    exported = training.export(model, x[val], list(fx.FEATURE_NAMES), neutral)
    return TrainedArtifact(
        artifact=exported.artifact,
        sha256=exported.sha256,
        neutral_values=exported.neutral_values,
        onnx_max_abs_diff=exported.onnx_max_abs_diff,
        x_validation=x[val],
        sklearn_validation_scores=model.predict_proba(x[val].astype(np.float32))[:, 1],
    )
