"""A Celery worker SIGKILLed (the whole process group) while it holds a webhook POST open: nothing
is lost. The receiver keeps the first request it gets unanswered; once that request is in flight
the worker dies; a new worker (the production command; the deployment's beat sends the sweep every
5 s) sends the interrupted delivery again once its lease has run out, with the same webhook-id and
the same bytes, and every event ends up delivered, signed, nothing pending or failed.

The workers here run the deployment's settings plus three: the receiver's address allowed over
plain http (WEBHOOKS_ALLOWED_NETWORKS, WEBHOOKS_HTTPS_ONLY, as an operator allows an internal
receiver), and a 12 s lease (WEBHOOK_LEASE_SECONDS) so that the test is bounded. The deployment's own worker (which has no such allowance) is stopped for the test and a
fresh one started after it, so the scenarios after this one find the stack as it was."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from tests.faults.stack import BIN, CLIENT, PYTHON, ROOT, Proc, Stack, now, wait_until
from tests.fraud.webhooks.receiver import Received, Receiver

if TYPE_CHECKING:
    from tests.faults.conftest import Figures

EVENTS = 5
# The lease must be twice a whole POST (connect + read timeouts), as settings insist: 2 × (1 + 5).
LEASE_S = 12
HOLD_S = 30  # the held request's answer comes this late, long after the worker that sent it died
# The interrupted delivery is due again once the sweep counts it lost: its lease has run out and,
# never having been attempted to the end, FIRST_ATTEMPT_GRACE (30 s) has passed since the event;
# then one beat interval (5 s) and a worker's start. 60 s leaves room on a busy machine.
REDELIVERY_BOUND_S = 60
TEST_BOUND_S = 90
WEBHOOK_ENV = {
    "WEBHOOKS_ALLOWED_NETWORKS": "127.0.0.1/32",
    "WEBHOOKS_HTTPS_ONLY": "false",
    "WEBHOOK_LEASE_SECONDS": str(LEASE_S),
    "WEBHOOK_CONNECT_TIMEOUT": "1",
    "WEBHOOK_READ_TIMEOUT": "5",
}

ENDPOINT_CREATE = """
import json
from accounts.models import User
from fraud.webhooks.services import webhook_endpoint_create
created = webhook_endpoint_create(
    owner=User.objects.get(username={client!r}), url={url!r}, event_types=["transaction.flagged"],
    description="fault suite: worker killed mid-delivery",
)
print(json.dumps({{"endpoint": created.endpoint.pk, "secret": created.secret}}))
"""
# One event per transaction, each in its own transaction as scoring records them: one task
# message per event, so the worker's two processes share them.
EVENTS_RECORD = """
from django.db import transaction
from accounts.models import User
from fraud.webhooks.events import webhook_events_record
client = User.objects.get(username={client!r})
for i in range({n}):
    with transaction.atomic():
        webhook_events_record(event_type="transaction.flagged", owner=client,
                              payloads=[{{"transaction_id": f"{prefix}-{{i}}", "decision": "decline"}}])
print("recorded")
"""


class HoldingReceiver(Receiver):
    """The receiver of tests/fraud/webhooks, except that the first request is recorded on arrival
    and then held unanswered for ``hold`` seconds (or until ``release``); every later one is
    answered 200 at once."""

    def __init__(self, hold: float) -> None:
        super().__init__()
        self.hold = hold
        self.released = threading.Event()
        self.in_flight = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> HoldingReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    first = not receiver.requests
                    receiver.requests.append(
                        Received({k.lower(): v for k, v in self.headers.items()}, body, time.time())
                    )
                if first:
                    receiver.in_flight.set()
                    receiver.released.wait(receiver.hold)
                # The held request's sender is dead by now: its connection is gone.
                with contextlib.suppress(OSError):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True).start()
        return self

    def stop(self) -> None:
        self.released.set()
        super().stop()


def shell(stack: Stack, code: str) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", "shell", "-c", code],
        cwd=ROOT, env={**stack.env, **WEBHOOK_ENV}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"manage.py shell failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def start_webhook_worker(stack: Stack, number: int) -> Proc:
    """The production worker command with the webhook settings above; kept in ``stack.workers`` so
    the session's tear-down ends it whatever happens here."""
    worker = Proc(
        f"webhook-worker-{number}",
        [str(BIN / "celery"), "-A", "cipherguard", "worker", "--concurrency=2", "--loglevel=INFO"],
        {**stack.env, **WEBHOOK_ENV},
        stack.logs / f"webhook-worker-{number}.log",
    ).start()
    stack.workers.append(worker)
    stack.worker = worker
    return worker


def deliveries(stack: Stack, endpoint_id: int) -> list[dict[str, Any]]:
    with stack.pg.connect(timeout=2) as conn:
        cur = conn.execute(
            "SELECT d.id, e.event_id::text AS event_id, d.status, d.attempts, d.lease_until, "
            "(SELECT count(*) FROM fraud_webhookattempt a WHERE a.delivery_id = d.id) AS attempt_rows "
            "FROM fraud_webhookdelivery d JOIN fraud_webhookevent e ON e.id = d.event_id "
            "WHERE d.endpoint_id = %s ORDER BY d.id",
            [endpoint_id],
        )
        names = [c.name for c in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def delivered(rows: list[dict[str, Any]]) -> int:
    return sum(d["status"] == "delivered" for d in rows)


def bounded_wait(predicate: Callable[[], Any], *, timeout: float, what: str, logs: Callable[[], str]) -> Any:
    try:
        return wait_until(predicate, timeout=timeout, interval=0.1, what=what)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{logs()}") from None


def test_a_worker_killed_mid_delivery_loses_no_webhook_and_the_interrupted_one_arrives_again(
    stack: Stack, figures: Figures
) -> None:
    stack.wait_ready(timeout=60)
    failures: list[str] = []
    standard = stack.worker
    if standard is not None:
        standard.stop(timeout=10)  # the deployment's worker may not post to 127.0.0.1
    receiver = HoldingReceiver(hold=HOLD_S).start()
    started = now()
    try:
        first = start_webhook_worker(stack, 1)
        created = json.loads(shell(stack, ENDPOINT_CREATE.format(client=CLIENT, url=receiver.url)).splitlines()[-1])
        endpoint_id, secret = created["endpoint"], created["secret"]
        stack.wait_worker_ready(first, timeout=60)

        prefix = f"wk-{uuid.uuid4().hex[:8]}"
        shell(stack, EVENTS_RECORD.format(client=CLIENT, n=EVENTS, prefix=prefix))
        bounded_wait(receiver.in_flight.is_set, timeout=20, what="the first webhook POST", logs=first.log_tail)
        in_flight_at = now()
        held_id = receiver.requests[0].headers["webhook-id"]
        # Let the other process deliver the rest first, so the kill hits a worker that has done
        # work (those stay delivered, once) and holds one POST; well within the POST's 6 s deadline,
        # after which the worker would record the attempt as failed on its own.
        deadline = now() + 3
        while now() < deadline and delivered(deliveries(stack, endpoint_id)) < EVENTS - 1:
            time.sleep(0.1)
        at_kill = deliveries(stack, endpoint_id)
        others_done = delivered(at_kill) == EVENTS - 1
        first.kill_group()  # parent and pool children, mid-POST
        killed_at = now()
        held_at_kill = next(d for d in at_kill if d["event_id"] == held_id)
        if (held_at_kill["status"], held_at_kill["lease_until"] is not None) != ("pending", True):
            failures.append(f"the held delivery was not pending under a lease at the kill: {held_at_kill}")

        second = start_webhook_worker(stack, 2)
        second_ready_s = stack.wait_worker_ready(second, timeout=60)

        def held_arrived_again() -> bool:
            return sum(r.headers.get("webhook-id") == held_id for r in receiver.requests) >= 2

        bounded_wait(
            held_arrived_again,
            timeout=max(1.0, killed_at + REDELIVERY_BOUND_S - now()),
            what=f"the interrupted delivery to arrive again (bound {REDELIVERY_BOUND_S} s after the kill)",
            logs=lambda: f"{deliveries(stack, endpoint_id)}\n{second.log_tail()}",
        )
        again_at = now()
        bounded_wait(
            lambda: all(d["status"] == "delivered" for d in deliveries(stack, endpoint_id)),
            timeout=15,
            what="every delivery to be marked delivered",
            logs=lambda: f"{deliveries(stack, endpoint_id)}\n{second.log_tail()}",
        )
        finished_at = now()
    finally:
        receiver.stop()
        if stack.worker is not None and stack.worker.name.startswith("webhook-worker"):
            stack.worker.stop(timeout=10)
        restored = stack.start_worker()  # the deployment's own worker back, for the scenarios after this one
    stack.wait_worker_ready(restored, timeout=60)

    rows = deliveries(stack, endpoint_id)
    payloads = receiver.verified(secret)  # raises on any bad signature, id or timestamp
    ids = Counter(r.headers["webhook-id"] for r in receiver.requests)
    expected = {d["event_id"] for d in rows}
    held_bodies = {r.body for r in receiver.requests if r.headers["webhook-id"] == held_id}
    statuses = Counter(d["status"] for d in rows)
    if len(rows) != EVENTS:
        failures.append(f"{len(rows)} deliveries stored for the endpoint, expected {EVENTS}")
    if statuses != Counter({"delivered": EVENTS}):
        failures.append(f"delivery statuses {dict(statuses)}, expected all {EVENTS} delivered")
    if set(ids) != expected or {p["id"] for p in payloads} != expected:
        failures.append(f"the receiver got event ids {dict(ids)}, expected each of {sorted(expected)}")
    if {p["data"]["transaction_id"] for p in payloads} != {f"{prefix}-{i}" for i in range(EVENTS)}:
        failures.append(f"payload data differ: {[p['data'] for p in payloads]}")
    if ids[held_id] < 2 or len(held_bodies) != 1:
        failures.append(
            f"the interrupted event arrived {ids[held_id]} times in {len(held_bodies)} different bodies "
            "(expected at least twice, the same bytes each time)"
        )
    duplicates = {i: n for i, n in ids.items() if n > 1 and i != held_id}
    if others_done and duplicates:
        failures.append(f"deliveries finished before the kill were sent again: {duplicates}")
    elapsed = finished_at - started
    if elapsed >= TEST_BOUND_S:
        failures.append(f"the scenario took {elapsed:.0f} s (bound {TEST_BOUND_S} s)")

    held_row = next(d for d in rows if d["event_id"] == held_id)
    arrivals = sorted(r.at for r in receiver.requests if r.headers["webhook-id"] == held_id)
    held_payload = next(p for p in payloads if p["id"] == held_id)
    event_time = datetime.fromisoformat(held_payload["timestamp"].replace("Z", "+00:00")).timestamp()
    figures.record(
        "webhook_worker_killed",
        {
            "events": EVENTS,
            "lease_s": LEASE_S,
            "delivered_before_kill": delivered(at_kill),
            "kill_after_first_post_s": round(killed_at - in_flight_at, 2),
            "new_worker_ready_s": round(second_ready_s, 2),
            "redelivered_after_kill_s": round(again_at - killed_at, 2),
            "redelivered_after_event_s": round(arrivals[-1] - event_time, 2),
            "redelivery_bound_s": REDELIVERY_BOUND_S,
            "requests_received": len(receiver.requests),
            "times_received": dict(Counter(ids.values())),
            "held_delivery_attempts": held_row["attempts"],
            # The killed attempt leaves no row: an attempt is logged when it ends.
            "held_delivery_attempt_rows": held_row["attempt_rows"],
            "final_statuses": dict(statuses),
            "scenario_s": round(elapsed, 1),
        },
        failures,
    )
    assert not failures, "\n".join(failures)
