"""A real Celery worker on Redis, against PostgreSQL: jobs complete, and survive a killed worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from fraud.models import BatchItem, BatchJob, BatchStatus, Transaction
from tests.conftest import _unavailable
from tests.fraud.batches.test_batch_jobs import BATCHES, csv_file, good_rows

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def worker(postgres_tx, settings, tmp_path):
    """Start real `celery worker` processes on the test database; they are killed afterwards."""
    if not str(settings.CELERY_BROKER_URL).startswith("redis"):
        _unavailable("needs CELERY_BROKER_URL=redis://... (set by .ci/run)")
    from cipherguard.celery import app

    app.control.purge()
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "cipherguard.settings",
        "DATABASE_URL": f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "BATCH_STALL_SECONDS": "2",
        "CELERY_VISIBILITY_TIMEOUT": "60",
    }
    processes: list[subprocess.Popen] = []

    def start(concurrency: int = 1, **extra_env: str) -> subprocess.Popen:
        log = (tmp_path / f"worker-{len(processes)}.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "cipherguard", "worker", f"--concurrency={concurrency}",
             "--loglevel=INFO", "-n", f"test-{os.getpid()}-{len(processes)}@%h", "--without-gossip",
             "--without-mingle"],
            cwd=ROOT, env={**env, **extra_env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        processes.append(process)
        return process

    start.logs = (
        lambda: "\n".join(  # type: ignore[attr-defined]
            f"--- {path.name} ---\n" + path.read_text()[-3000:] for path in sorted(tmp_path.glob("worker-*.log"))
        )
    )
    yield start
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def wait_for(predicate, *, timeout: float, what: str, logs=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs()}")


def job(job_id: int) -> BatchJob:
    return BatchJob.objects.get(pk=job_id)


def test_a_worker_completes_a_batch_job_with_correct_counts(worker, alice_api, alice, active_model, settings):
    settings.BATCH_CHUNK_SIZE = 100
    worker()
    lines = [*good_rows(450), "bad,C1,M1,-1,EUR,FR,2026-01-01T00:00:00Z,pos"]
    job_id = alice_api.post(BATCHES, {"file": csv_file(lines)}, format="multipart").json()["id"]

    wait_for(
        lambda: job(job_id).status == BatchStatus.SUCCEEDED, timeout=120, what="the job to succeed", logs=worker.logs
    )
    done = job(job_id)
    assert (done.total, done.scored, done.failed, done.chunks_done) == (451, 450, 1, done.chunk_count)
    assert done.chunk_count >= 5  # 100-row chunks in each lane
    assert BatchItem.objects.filter(job=done).count() == 451


def test_killing_the_worker_mid_job_loses_and_duplicates_nothing(worker, alice_api, alice, active_model, settings):
    settings.BATCH_CHUNK_SIZE = 250
    first = worker()
    job_id = alice_api.post(BATCHES, {"file": csv_file(good_rows(5000, prefix="k"))}, format="multipart").json()["id"]

    wait_for(lambda: job(job_id).chunks_done >= 3, timeout=120, what="a few chunks", logs=worker.logs)
    os.killpg(first.pid, signal.SIGKILL)  # the whole worker, parent and child, mid-job
    first.wait(timeout=10)
    interrupted = job(job_id)
    assert interrupted.status == BatchStatus.RUNNING and interrupted.chunks_done < interrupted.chunk_count

    time.sleep(2.5)  # longer than BATCH_STALL_SECONDS: the job now counts as stalled
    worker()
    wait_for(
        lambda: job(job_id).status == BatchStatus.SUCCEEDED,
        timeout=180,
        what="the restarted worker to finish",
        logs=worker.logs,
    )

    done = job(job_id)
    assert (done.total, done.scored, done.failed, done.chunks_done) == (5000, 5000, 0, done.chunk_count)
    rows = list(BatchItem.objects.filter(job=done).values_list("row", flat=True))
    assert len(rows) == 5000 and sorted(rows) == list(range(1, 5001))
    assert Transaction.objects.filter(owner=alice, transaction_id__startswith="k-").count() == 5000


def test_the_worker_serves_its_task_metrics_summed_over_its_pool(
    worker, alice_api, alice, active_model, settings, tmp_path
):
    """Two pool processes share the chunks; the main process's metrics endpoint sums both."""
    from tests.helpers import free_port
    from tests.ops.test_metrics import parse

    settings.BATCH_CHUNK_SIZE = 50
    port = free_port()
    # A stall window longer than the test: a worker that takes more than the 2 s default of this file
    # to start would otherwise resume the job on start and add a duplicate (harmless) task to the count.
    worker(
        concurrency=2,
        METRICS_PORT=str(port),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        BATCH_STALL_SECONDS="300",
    )
    job_id = alice_api.post(BATCHES, {"file": csv_file(good_rows(300, prefix="m"))}, format="multipart").json()["id"]
    wait_for(lambda: job(job_id).status == BatchStatus.SUCCEEDED, timeout=120, what="the job", logs=worker.logs)

    import urllib.request

    def scrape() -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:  # noqa: S310 - loopback
            return parse(response.read().decode())

    wait_for(lambda: scrape().get(("cipherguard_batch_rows_total", (("outcome", "scored"),))) == 300,
             timeout=30, what="the worker's row count", logs=worker.logs)  # fmt: skip
    metrics = scrape()
    succeeded = metrics[
        ("cipherguard_celery_tasks_total", (("state", "SUCCESS"), ("task", "fraud.tasks.batch_job_process")))
    ]
    chunks = job(job_id).chunk_count  # 50-row chunks in each lane
    assert succeeded == chunks >= 6  # one task per chunk
    assert metrics[("cipherguard_celery_task_seconds_count", (("task", "fraud.tasks.batch_job_process"),))] == chunks
    assert metrics[("cipherguard_transactions_scored_total", (("path", "job"),))] == 300
