"""Framework-light helpers for building test data and a small trained model once per session."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from fraud.features import definitions as fx
from fraud.modelops.datasets import frame_from_generated
from fraud.modelops.generator import Generated

ROOT = Path(__file__).resolve().parent.parent


def at_once(fn: Callable[[int], Any], n: int, *, timeout: float = 60) -> list[Any]:
    """``fn(i)`` for i in 0..n-1 in threads released together, each on its own database
    connection (closed at the end): what each returned, or the exception it raised."""
    from django.db import connection

    barrier, results = threading.Barrier(n), []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results.append(fn(i))
        except Exception as exc:  # collected: the test asserts on what each thread got
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    return results


@dataclass
class Server:
    base: str  # http://127.0.0.1:<port>
    log: Path
    process: subprocess.Popen


@contextmanager
def gunicorn(tmp_path: Path, env: dict[str, str], *, workers: int = 2) -> Iterator[Server]:
    """gunicorn as deployed (deploy/gunicorn.conf.py) on a free loopback port, against the test
    database, with ``env`` on top; ready when ``/healthz`` answers. Stopped with SIGTERM (its
    exit status is then ``process.returncode``)."""
    from django.db import connection

    db = connection.settings_dict
    port = free_port()
    full_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "cipherguard.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        **env,
    }
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "cipherguard.wsgi", "--config", "deploy/gunicorn.conf.py",
             "--bind", f"127.0.0.1:{port}", "--workers", str(workers)],
            cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(f"{base}/healthz", timeout=2)  # noqa: S310 - loopback
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise AssertionError(log_path.read_text()[-3000:]) from None
                    time.sleep(0.3)
            yield Server(base, log_path, process)
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=60)


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
        currency=tx.currency,
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


def run_batch_job(job_id: int) -> int:
    """Process every chunk of a batch job the way workers do, one task per chunk, lane after
    lane; returns the number of tasks."""
    from fraud.batches.services import batch_process_next_chunk
    from fraud.models import BatchChunk

    tasks = 0
    for lane in sorted(set(BatchChunk.objects.filter(job_id=job_id).values_list("lane", flat=True))):
        tasks += 1
        while batch_process_next_chunk(job_id=job_id, lane=lane):
            tasks += 1
    return tasks
