"""Judging what clients saw during a fault: every reply is classified, the figures the closing
note quotes are computed, and each broken promise becomes one readable failure line (a test
collects them all and fails once, so one run reports every figure)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.faults.stack import Load, Reply, Stack, http_request, now

# The brief's bounds: a request during an outage answers within this (gunicorn's 30 s timeout
# and a client's patience are far above it), and scoring is back this soon after the service.
LONGEST_REQUEST_BOUND_S = 5.0
RECOVERY_BOUND_S = 5.0
READYZ_BOUND_S = 1.0


def problem_503_issues(reply: Reply) -> list[str]:
    """What is wrong with a 503 as a client must be able to rely on it: ``Retry-After`` in
    delay-seconds, and an RFC 7807 problem+json body saying 503."""
    issues = []
    retry_after = reply.headers.get("retry-after")
    if retry_after is None:
        issues.append("no Retry-After")
    elif not retry_after.strip().isdigit():
        issues.append(f"Retry-After {retry_after!r} is not a number of seconds")
    content_type = reply.headers.get("content-type", "")
    if not content_type.startswith("application/problem+json"):
        issues.append(f"Content-Type {content_type!r}, not application/problem+json")
    try:
        body = json.loads(reply.body)
        if not isinstance(body, dict) or body.get("status") != 503:
            issues.append(f"problem body without status 503: {reply.body[:120]!r}")
    except ValueError:
        issues.append(f"body is not JSON: {reply.body[:120]!r}")
    return issues


def example(reply: Reply) -> str:
    if reply.status is None:
        return f"{reply.transaction_id}: no answer after {reply.duration:.1f} s ({reply.error})"
    return f"{reply.transaction_id}: {reply.status} after {reply.duration:.2f} s {reply.body[:200]!r}"


def judge_replies(replies: list[Reply], failures: list[str], *, label: str) -> dict[str, Any]:
    """The whole run of a load: statuses, 5xx other than 503, unanswered requests, 503s a client
    could not act on, and any status other than 201/503 (a harness or app bug either way)."""
    by_status = Counter(str(r.status) for r in replies)
    other_5xx = [r for r in replies if r.status is not None and r.status >= 500 and r.status != 503]
    unanswered = [r for r in replies if r.status is None]
    bad_503 = [(r, problem_503_issues(r)) for r in replies if r.status == 503]
    bad_503 = [(r, issues) for r, issues in bad_503 if issues]
    unexpected = [r for r in replies if r.status is not None and r.status < 500 and r.status != 201]
    if other_5xx:
        failures.append(
            f"{label}: {len(other_5xx)} responses >= 500 other than 503 ({dict(Counter(r.status for r in other_5xx))}); "
            f"first: {example(other_5xx[0])}"
        )
    if unanswered:
        failures.append(f"{label}: {len(unanswered)} requests got no HTTP answer; first: {example(unanswered[0])}")
    if bad_503:
        failures.append(
            f"{label}: {len(bad_503)} of {by_status.get('503', 0)} 503s unusable by a client "
            f"({'; '.join(bad_503[0][1])}); first: {example(bad_503[0][0])}"
        )
    if unexpected:
        failures.append(f"{label}: {len(unexpected)} unexpected statuses; first: {example(unexpected[0])}")
    return {
        "requests": len(replies),
        "by_status": dict(sorted(by_status.items())),
        "5xx_other_than_503": len(other_5xx),
        "no_answer": len(unanswered),
        "503_without_retry_after_or_problem_json": len(bad_503),
        "longest_request_s": round(max((r.duration for r in replies), default=0.0), 3),
    }


def check_stored(stack: Stack, replies: list[Reply], failures: list[str], *, label: str) -> dict[str, Any]:
    """Every 201 is in PostgreSQL (read directly after the run); 503s that were stored anyway
    are counted (harmless: a client's retry gets the stored result back)."""
    accepted = [r.transaction_id for r in replies if r.status == 201]
    refused = [r.transaction_id for r in replies if r.status == 503]
    stored = stack.stored(accepted)
    missing = sorted(set(accepted) - stored)
    if missing:
        failures.append(f"{label}: {len(missing)} transactions answered 201 are not stored, e.g. {missing[:5]}")
    return {
        "accepted_201": len(accepted),
        "accepted_but_missing": len(missing),
        "refused_503_but_stored": len(stack.stored(refused)) if refused else 0,
    }


@dataclass
class Outage:
    """One fault under load: when it began, when it was healed (the restart issued), when the
    service answered again, what /readyz said meanwhile, and the first 201 afterwards."""

    label: str
    fault_at: float = 0.0
    healed_at: float = 0.0
    back_at: float = 0.0
    readyz: list[Reply] = field(default_factory=list)
    first_201_after: Reply | None = None

    def during(self, replies: list[Reply]) -> list[Reply]:
        """Requests in flight at any moment of the outage (fault until the service is back)."""
        return [r for r in replies if r.started < self.back_at and r.finished > self.fault_at]

    def figures(self, replies: list[Reply]) -> dict[str, Any]:
        during = self.during(replies)
        longest = max(during, key=lambda r: r.duration, default=None)
        return {
            "outage_s": round(self.back_at - self.fault_at, 2),
            "service_back_after_heal_s": round(self.back_at - self.healed_at, 2),
            "requests_during": len(during),
            "during_by_status": dict(sorted(Counter(str(r.status) for r in during).items())),
            "longest_request_during_s": round(longest.duration, 3) if longest else None,
            "recovery_first_201_after_heal_s": (
                round(self.first_201_after.finished - self.healed_at, 3) if self.first_201_after else None
            ),
            # 0 when scoring never needed the service back (it answered 201 before that).
            "recovery_first_201_after_service_back_s": (
                round(max(0.0, self.first_201_after.finished - self.back_at), 3) if self.first_201_after else None
            ),
            "readyz_probes": len(self.readyz),
            "readyz_by_status": dict(sorted(Counter(str(r.status) for r in self.readyz).items())),
            "readyz_longest_s": round(max((r.duration for r in self.readyz), default=0.0), 3),
        }

    def judge(self, replies: list[Reply], failures: list[str], *, readyz_bound: bool) -> None:
        during = self.during(replies)
        longest = max(during, key=lambda r: r.duration, default=None)
        if longest is not None and longest.duration >= LONGEST_REQUEST_BOUND_S:
            failures.append(
                f"{self.label}: the longest request during the outage took {longest.duration:.1f} s "
                f"(bound {LONGEST_REQUEST_BOUND_S:.0f} s): {example(longest)}"
            )
        if self.first_201_after is None:
            failures.append(f"{self.label}: no 201 within 30 s of the service coming back")
        elif (delay := self.first_201_after.finished - self.healed_at) >= RECOVERY_BOUND_S:
            failures.append(f"{self.label}: first 201 {delay:.1f} s after the restart (bound {RECOVERY_BOUND_S:.0f} s)")
        if readyz_bound:
            if len(self.readyz) < 3:
                failures.append(f"{self.label}: only {len(self.readyz)} /readyz probes during the outage")
            slow = [r for r in self.readyz if r.duration >= READYZ_BOUND_S]
            # A probe still in flight when the service came back may rightly say 200.
            not_503 = [r for r in self.readyz if r.status != 503 and r.finished < self.back_at]
            if slow:
                failures.append(
                    f"{self.label}: {len(slow)} of {len(self.readyz)} /readyz probes took >= {READYZ_BOUND_S:.0f} s "
                    f"(longest {max(r.duration for r in slow):.2f} s, statuses {[r.status for r in slow]})"
                )
            if not_503:
                failures.append(
                    f"{self.label}: /readyz answered {[r.status or r.error for r in not_503]} during the outage, not 503"
                )


def run_outage(
    stack: Stack,
    load: Load,
    *,
    label: str,
    fault: Callable[[], object],
    heal: Callable[[], object],
    service_back: Callable[[], object],
    hold_s: float,
) -> Outage:
    """Break a service under load for ``hold_s`` seconds while /readyz is probed every 0.5 s (one
    probe at a time, 5 s client timeout, as a kubelet would), heal it, wait for it to answer,
    then for the first 201 (at most 30 s). The service is healed even if something in between
    raises, so a later test does not inherit the fault."""
    outage = Outage(label)
    stop = threading.Event()
    probes: list[Reply] = []

    def probing() -> None:
        while not stop.is_set():
            reply = http_request(stack.web_port, "GET", "/readyz", timeout=5)
            probes.append(reply)
            stop.wait(max(0.0, 0.5 - reply.duration))

    prober = threading.Thread(target=probing, name="readyz-probe", daemon=True)
    outage.fault_at = now()
    fault()
    try:
        prober.start()
        time.sleep(max(0.0, outage.fault_at + hold_s - now()))
    finally:
        outage.healed_at = now()
        heal()
        stop.set()
        service_back()
        outage.back_at = now()
        prober.join(timeout=10)
    outage.readyz = [r for r in probes if r.started < outage.healed_at]
    deadline = now() + 30
    while (first := load.first_success_after(outage.healed_at)) is None and now() < deadline:
        time.sleep(0.05)
    outage.first_201_after = first
    return outage
