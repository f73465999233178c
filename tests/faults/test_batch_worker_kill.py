"""A 20,000-row batch job whose Celery worker (the whole process group) is SIGKILLed after a few
1,000-row chunks; a new worker is started with the production command and settings (stall
window, visibility timeout as deployed): the job resumes within 60 s and finishes exactly once.

When it does not resume within the wait, the test says so, then re-sends the job's task by name
(`celery call`, what a redelivered message would be) only so that exactly-once can still be
checked in the same run; the figures mark that run as ``kicked``."""

from __future__ import annotations

import csv
import io
import subprocess
import time
import uuid
from collections import Counter

from tests.faults.stack import BIN, ROOT, batch_csv, multipart, now

ROWS = 20_000
CHUNKS_BEFORE_KILL = 3
RESUME_BOUND_S = 60
RESUME_WAIT_S = 75  # past the bound, to record a late figure rather than only "more than 60"
FINISH_WAIT_S = 180


def test_a_batch_job_whose_worker_is_killed_resumes_within_60_s_and_finishes_exactly_once(stack, figures):
    stack.wait_ready(timeout=60)
    failures: list[str] = []
    token = stack.token()
    prefix = f"bk-{uuid.uuid4().hex[:8]}"
    body, content_type = multipart("file", "faults.csv", batch_csv(ROWS, prefix), "text/csv")
    created = stack.api("POST", "/api/v1/batches/", token, body=body, content_type=content_type, timeout=60)
    assert created.status == 202, f"upload: {created.status} {created.error} {created.body[:300]!r}"
    job_id = created.json()["id"]
    uploaded_at = created.finished

    first = stack.worker
    deadline = now() + 120
    while stack.job_row(job_id)["chunks_done"] < CHUNKS_BEFORE_KILL:
        assert now() < deadline, (
            f"{CHUNKS_BEFORE_KILL} chunks not done in 120 s: {stack.job_row(job_id)}\n{first.log_tail()}"
        )
        time.sleep(0.1)
    first.kill_group()  # parent and pool children: the whole worker, mid-job
    killed_at = now()
    at_kill = stack.job_row(job_id)
    assert at_kill["status"] == "running" and at_kill["chunks_done"] < at_kill["chunk_count"], (
        f"the kill came too late to interrupt the job: {at_kill}"
    )
    rate = at_kill["scored"] / max(killed_at - uploaded_at, 1e-6)

    worker = stack.start_worker()
    ready_s = resume_s = None
    while now() - worker.started_at < RESUME_WAIT_S:
        if ready_s is None and " ready." in worker.log.read_text(errors="replace"):
            ready_s = now() - worker.started_at
        if stack.job_row(job_id)["chunks_done"] > at_kill["chunks_done"]:
            resume_s = now() - worker.started_at
            break
        assert worker.running(), f"the new worker exited\n{worker.log_tail()}"
        time.sleep(0.1)
    kicked = False
    if resume_s is None or resume_s >= RESUME_BOUND_S:
        when = f"after {resume_s:.1f} s" if resume_s is not None else f"not within {RESUME_WAIT_S} s"
        ready = f"{ready_s:.1f} s" if ready_s is not None else "never"
        failures.append(
            f"the job resumed {when} of the new worker's start (bound {RESUME_BOUND_S} s; the worker was ready "
            f"after {ready}; the job at the kill: {at_kill})"
        )
    if resume_s is None:
        kicked = True
        for lane in range(int(stack.env.get("BATCH_LANES", "2"))):
            subprocess.run(
                [str(BIN / "celery"), "-A", "cipherguard", "call", "fraud.tasks.batch_job_process",
                 "--args", f"[{job_id}, null, {lane}]"],
                cwd=ROOT, env=stack.env, capture_output=True, timeout=60, check=True,
            )  # fmt: skip

    deadline = now() + FINISH_WAIT_S
    while stack.job_row(job_id)["status"] in ("queued", "running") and now() < deadline:
        time.sleep(0.2)
    finished_at = now()

    status = stack.api("GET", f"/api/v1/batches/{job_id}/", token, timeout=30)
    assert status.status == 200, f"status: {status.status} {status.body[:300]!r}"
    job = status.json()
    if (job["status"], job["total"], job["scored"], job["failed"]) != ("succeeded", ROWS, ROWS, 0):
        failures.append(
            f"job {job_id}: status {job['status']}, total {job['total']}, scored {job['scored']}, failed {job['failed']} "
            f"(expected succeeded, {ROWS}, {ROWS}, 0)"
        )
    row = stack.job_row(job_id)
    if row["chunks_done"] != row["chunk_count"]:
        failures.append(f"job {job_id}: {row['chunks_done']} of {row['chunk_count']} chunks done")

    results = stack.api("GET", f"/api/v1/batches/{job_id}/results/", token, timeout=60)
    lines = results.body.count(b"\n")
    rows = list(csv.DictReader(io.StringIO(results.body.decode(errors="replace"))))
    numbers = Counter(int(r["row"]) for r in rows)
    ids = Counter(r["transaction_id"] for r in rows)
    duplicate_rows = sum(n - 1 for n in numbers.values() if n > 1)
    duplicate_ids = sum(n - 1 for n in ids.values() if n > 1)
    if results.status != 200 or lines != ROWS + 1:
        failures.append(f"results: {results.status}, {lines} lines (expected 200, {ROWS + 1}) {results.error or ''}")
    if duplicate_rows or duplicate_ids or set(numbers) != set(range(1, ROWS + 1)):
        failures.append(
            f"results: {duplicate_rows} duplicate row numbers, {duplicate_ids} duplicate transaction ids, "
            f"{len(set(range(1, ROWS + 1)) - set(numbers))} rows missing"
        )
    if set(ids) != {f"{prefix}-{i}" for i in range(ROWS)} or any(r["status"] != "201" for r in rows):
        failures.append(f"results: transaction ids or statuses differ: {Counter(r['status'] for r in rows)}")
    with stack.pg.connect() as conn:
        items, distinct_rows = conn.execute(
            "SELECT count(*), count(DISTINCT row) FROM fraud_batchitem WHERE job_id = %s", [job_id]
        ).fetchone()
        transactions = conn.execute(
            "SELECT count(*) FROM fraud_transaction WHERE owner_id = %s AND transaction_id LIKE %s",
            [stack.client_id, f"{prefix}-%"],
        ).fetchone()[0]
    if (items, distinct_rows, transactions) != (ROWS, ROWS, ROWS):
        failures.append(
            f"database: {items} batch items, {distinct_rows} distinct rows, {transactions} transactions (expected {ROWS} each)"
        )

    figures.record(
        "batch_worker_killed",
        {
            "rows": ROWS,
            "chunk_size": row["chunk_count"] and ROWS // row["chunk_count"],
            "chunks": row["chunk_count"],
            "upload_s": round(created.duration, 2),
            "chunks_done_at_kill": at_kill["chunks_done"],
            "kill_after_upload_s": round(killed_at - uploaded_at, 2),
            "rows_per_s_before_kill": round(rate),
            "new_worker_ready_s": round(ready_s, 2) if ready_s is not None else None,
            "resume_s": round(resume_s, 2) if resume_s is not None else None,
            "resume_bound_s": RESUME_BOUND_S,
            "kicked": kicked,
            "finished_after_new_worker_s": round(finished_at - worker.started_at, 1),
            "final_status": job["status"],
            "scored": job["scored"],
            "result_lines": lines,
            "duplicate_rows": duplicate_rows,
            "db_items": items,
            "db_transactions": transactions,
        },
        failures,
    )
    assert not failures, "\n".join(failures)
