"""Redis (the cache, the rate-limit counters and the Celery broker) paused with SIGSTOP, then
killed and restarted empty, under scoring load: scoring keeps working or answers 503 with
Retry-After (never a 500, never a hang), comes back within seconds, loses no accepted
transaction, and the worker still takes batch jobs from the restarted broker."""

from __future__ import annotations

import json
import time
import uuid

from tests.faults.checks import check_stored, judge_replies, run_outage
from tests.faults.stack import Load, now, transaction_body

PAUSE_S = 6
KILL_S = 6
WORKER_BACK_BOUND_S = 60


def test_a_paused_then_killed_redis_gives_no_500_and_scoring_recovers(stack, figures):
    stack.wait_ready(timeout=60)
    failures: list[str] = []
    mark = stack.log_mark()
    with Load(stack.web_port, stack.token(), prefix=f"rd-{uuid.uuid4().hex[:8]}") as load:
        time.sleep(3)
        assert any(r.status == 201 for r in load.snapshot()), f"no 201 before the fault: {load.snapshot()[:3]}"
        paused = run_outage(
            stack,
            load,
            label="redis paused",
            fault=stack.redis.pause,
            heal=stack.redis.resume,
            service_back=lambda: stack.redis.wait_ready(timeout=10),
            hold_s=PAUSE_S,
        )
        time.sleep(3)
        killed = run_outage(
            stack,
            load,
            label="redis killed",
            fault=stack.redis.crash,
            heal=stack.redis.start,  # same port, empty: persistence is off
            service_back=lambda: stack.redis.wait_ready(timeout=10),
            hold_s=KILL_S,
        )
        time.sleep(2)
    replies = load.snapshot()

    summary = judge_replies(replies, failures, label="redis")
    paused.judge(replies, failures, readyz_bound=False)
    killed.judge(replies, failures, readyz_bound=False)
    stored = check_stored(stack, replies, failures, label="redis")

    # The broker lost its queues with Redis: a job queued now must still be picked up.
    started = now()
    prefix = f"rd-batch-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"transactions": [transaction_body(f"{prefix}-{i}", i) for i in range(10)]}).encode()
    created = stack.api("POST", "/api/v1/batches/", stack.token(), body=body)
    worker_back_s = None
    if created.status != 202:
        failures.append(f"redis: a batch after the restart was refused: {created.status} {created.body[:200]!r}")
    else:
        job_id = created.json()["id"]
        deadline = now() + WORKER_BACK_BOUND_S
        while now() < deadline and stack.job_row(job_id)["status"] != "succeeded":
            time.sleep(0.2)
        if stack.job_row(job_id)["status"] == "succeeded":
            worker_back_s = round(now() - started, 2)
        else:
            failures.append(
                f"redis: a 10-row batch queued after the restart did not finish within {WORKER_BACK_BOUND_S} s "
                f"({stack.job_row(job_id)})"
            )
    figures.record(
        "redis_paused_then_killed",
        {
            **summary,
            **stored,
            "paused": paused.figures(replies),
            "killed": killed.figures(replies),
            "batch_after_restart_done_s": worker_back_s,
            "server_errors_logged": stack.server_errors(mark),
        },
        failures,
    )
    assert not failures, "\n".join(failures)


def test_a_batch_uploaded_while_the_broker_is_down_is_stored_and_finished_once_it_is_back(stack, figures):
    """The broker (Redis) dies before an upload: the upload is answered (202: stored, or 503 with
    Retry-After: nothing stored) within a few seconds, and a stored job is finished after the
    broker comes back, by the resume that beat runs (stall window + beat interval)."""
    stack.wait_ready(timeout=60)
    failures: list[str] = []
    token = stack.token()
    prefix = f"bd-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"transactions": [transaction_body(f"{prefix}-{i}", i) for i in range(10)]}).encode()
    stack.redis.crash()
    try:
        sent = now()
        created = stack.api("POST", "/api/v1/batches/", token, body=body)
        upload_s = round(now() - sent, 2)
    finally:
        back = now()
        stack.redis.start()
        stack.redis.wait_ready(timeout=10)
    if upload_s > 5:
        failures.append(f"broker down: the upload took {upload_s} s")
    finished_s = None
    if created.status == 503:
        if not created.headers.get("retry-after"):
            failures.append("broker down: a 503 without Retry-After")
    elif created.status != 202:
        failures.append(f"broker down: the upload got {created.status} {created.body[:200]!r}")
    else:
        job_id = created.json()["id"]
        deadline = now() + WORKER_BACK_BOUND_S
        while now() < deadline and stack.job_row(job_id)["status"] != "succeeded":
            time.sleep(0.5)
        row = stack.job_row(job_id)
        if row["status"] == "succeeded" and row["scored"] == 10:
            finished_s = round(now() - back, 2)
        else:
            failures.append(f"broker down: the stored job was not finished within {WORKER_BACK_BOUND_S} s ({row})")
    figures.record(
        "broker_down_upload",
        {"upload_status": created.status, "upload_s": upload_s, "finished_after_broker_back_s": finished_s},
        failures,
    )
    assert not failures, "\n".join(failures)
