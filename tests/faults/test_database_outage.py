"""PostgreSQL's postmaster SIGKILLed under scoring load, down ~8 s, restarted on the same data
directory and port: clients get 503 + Retry-After (never a 500, never a hang), /readyz says so
at once, scoring comes back within seconds, and nothing answered 201 is lost."""

from __future__ import annotations

import time
import uuid

from tests.faults.checks import READYZ_BOUND_S, check_stored, judge_replies, run_outage
from tests.faults.stack import Load

OUTAGE_S = 8


def test_a_killed_database_gives_503s_with_retry_after_and_loses_no_accepted_transaction(stack, figures):
    stack.wait_ready(timeout=60)
    failures: list[str] = []
    mark = stack.log_mark()
    with Load(stack.web_port, stack.token(), prefix=f"pg-{uuid.uuid4().hex[:8]}") as load:
        time.sleep(3)
        assert any(r.status == 201 for r in load.snapshot()), f"no 201 before the fault: {load.snapshot()[:3]}"
        outage = run_outage(
            stack,
            load,
            label="postgres killed",
            fault=stack.pg.crash,
            heal=stack.pg.start,  # same data directory, same port
            service_back=lambda: stack.pg.wait_ready(timeout=30),
            hold_s=OUTAGE_S,
        )
        time.sleep(2)  # a little steady state after recovery
    replies = load.snapshot()

    summary = judge_replies(replies, failures, label="postgres killed")
    outage.judge(replies, failures, readyz_bound=True)
    stored = check_stored(stack, replies, failures, label="postgres killed")
    figures.record(
        "postgres_killed",
        {
            **summary,
            **outage.figures(replies),
            **stored,
            "readyz_bound_s": READYZ_BOUND_S,
            "server_errors_logged": stack.server_errors(mark),
        },
        failures,
    )
    assert not failures, "\n".join(failures)
