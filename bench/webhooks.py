"""`make bench-webhooks`: how long a flagged transaction's webhook takes to reach its receiver at
100 flagged transactions a second, on this machine, on loopback only, bounded in time (about two
minutes once `make bench`'s seed database exists; building it first takes about 90 s more).

1. `make bench`'s seed database (bench/run.py: 90 days of history, a trained active model; built
   once, reused) copied fresh to ``cipherguard_bench_webhooks``, dropped at the end.
2. Every one of the seed's merchants on the bench client's block list, so every posted transaction
   is declined by the list: each is a ``transaction.flagged`` event. The client's webhook endpoint
   points at a receiver in this process: a threaded HTTP server on 127.0.0.1 answering 200 at
   once, noting when each request arrived, its event id, the event's ``timestamp`` and
   ``data.transaction_id``.
3. As production runs it: gunicorn (deploy/gunicorn.conf.py, one sync worker per core), one
   Celery worker with ``--concurrency=2`` (deploy/k8s/worker.yaml) and beat (the 5 s sweep),
   PostgreSQL, Redis as the broker; production settings, with the receiver's address allowed
   (WEBHOOKS_ALLOWED_NETWORKS=127.0.0.1/32, plain http).
4. A warm-up (20 transactions, their webhooks awaited), then open-loop load: 100
   POST /api/v1/transactions/ a second for 30 s, each sent at its scheduled moment by one of a
   few threads (a slow answer holds up its own thread only), each timed.
   A server slower than the rate gets fewer requests, never a longer load: the report says how
   many of the 3,000 were sent and the rate achieved.
5. Per event, latency = arrival at the receiver - the moment its scoring request returned,
   matched by ``data.transaction_id``; also from the envelope's ``timestamp`` (when the event was
   stored, inside the scoring transaction). p50/p95/p99/max, delivered vs flagged, duplicates,
   signatures checked, the rate at which the worker delivered.

Exits 1 if any flagged transaction's event has not arrived 60 s after the load ended (or a
signature does not verify). Writes bench/results/webhooks.json.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import random
import shutil
import signal
import statistics
import sys
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/webhooks.py` as well as `python -m bench.webhooks`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import (  # noqa: E402 - after the path fix above
    CLIENT,
    PYTHON,
    RESULTS,
    ROOT,
    SEED,
    Api,
    ensure_seed,
    free_port,
    log,
    machine,
    manage,
    psql,
    server_env,
    start,
    transaction,
    wait_http,
)

RUN_DB = "cipherguard_bench_webhooks"
WARMUP = 20
DRAIN_BOUND_S = 60

SETUP = """
import json
from accounts.models import Role, User
from fraud.rules.services import list_entry_add
from fraud.webhooks.services import webhook_endpoint_create
admin, _ = User.objects.get_or_create(username="bench-admin", defaults={{"role": Role.ADMIN}})
client = User.objects.get(username={client!r})
for i in range({merchants}):
    list_entry_add(actor=admin, kind="merchant", value=f"M{{i:05d}}", action="block", reason="bench webhooks",
                   owner=client)
created = webhook_endpoint_create(owner=client, url={url!r}, event_types=["transaction.flagged"],
                                  description="bench/webhooks.py receiver")
print(json.dumps({{"endpoint": created.endpoint.pk, "secret": created.secret}}))
"""


# --- The receiver ---------------------------------------------------------------------------------


@dataclass
class Arrival:
    at: float  # time.time() when the body was read
    webhook_id: str
    headers: dict[str, str]
    body: bytes
    event_id: str = ""
    event_timestamp: float | None = None
    transaction_id: str | None = None


@dataclass
class Receiver:
    arrivals: list[Arrival] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None
    port: int = 0

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the worker's connection pool expects

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                arrival = Arrival(time.time(), self.headers.get("webhook-id", ""),
                                  {k.lower(): v for k, v in self.headers.items()}, body)  # fmt: skip
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with receiver.lock:
                    receiver.arrivals.append(arrival)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, name="receiver", daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def snapshot(self) -> list[Arrival]:
        with self.lock:
            return list(self.arrivals)

    def transaction_ids(self) -> set[str]:
        return {a.transaction_id for a in parse(self.snapshot()) if a.transaction_id}

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def parse(arrivals: list[Arrival]) -> list[Arrival]:
    """Fill in each arrival's event fields from its body (done off the receiving path)."""
    for a in arrivals:
        if a.event_id:
            continue
        envelope = json.loads(a.body)
        a.event_id = envelope["id"]
        a.event_timestamp = datetime.fromisoformat(envelope["timestamp"].replace("Z", "+00:00")).timestamp()
        a.transaction_id = (envelope.get("data") or {}).get("transaction_id")
    return arrivals


# --- The load -------------------------------------------------------------------------------------


@dataclass
class Sent:
    transaction_id: str
    scheduled: float  # perf_counter
    started: float  # perf_counter
    finished: float  # perf_counter
    returned_at: float  # time.time() when the answer was read: the latency's start
    status: int | None
    decision: str | None = None
    error: str | None = None


def post(port: int, token: str, body: dict[str, str], timeout: float) -> tuple[int | None, Any, str | None]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/api/v1/transactions/", json.dumps(body).encode(),
                     {"Content-Type": "application/json", "Host": "127.0.0.1", "Authorization": f"Bearer {token}"})  # fmt: skip
        response = conn.getresponse()
        data = response.read()
        try:
            return response.status, json.loads(data), None
        except ValueError:
            return response.status, None, None
    except (OSError, http.client.HTTPException) as exc:
        return None, None, f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()


def open_loop(port: int, token: str, *, rate: float, seconds: float, threads: int, prefix: str) -> list[Sent]:
    """``rate`` requests a second for ``seconds``: request i is sent at start + i / rate by
    whichever of ``threads`` is free, however long earlier answers took (open loop). A server
    slower than the rate leaves the threads behind the schedule; what has not been sent one
    second after the window closes is not sent at all, so the load lasts ``seconds`` whatever
    happens (the report counts the requests sent against those scheduled)."""
    total = int(rate * seconds)
    counter, lock, sent = itertools.count(), threading.Lock(), []
    rng_lock, rng = threading.Lock(), random.Random(21)
    begin = time.perf_counter() + 0.2
    cutoff = begin + seconds + 1.0

    def run() -> None:
        while True:
            with lock:
                i = next(counter)
            if i >= total or time.perf_counter() > cutoff:
                return
            scheduled = begin + i / rate
            time.sleep(max(0.0, scheduled - time.perf_counter()))
            tid = f"{prefix}-{i}"
            with rng_lock:
                body = transaction(rng, tid)
            started = time.perf_counter()
            status, data, error = post(port, token, body, timeout=30)
            finished, returned_at = time.perf_counter(), time.time()
            decision = data.get("decision") if isinstance(data, dict) else None
            with lock:
                sent.append(Sent(tid, scheduled, started, finished, returned_at, status, decision, error))

    workers = [threading.Thread(target=run, name=f"load-{n}", daemon=True) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=seconds + 60)
    if any(w.is_alive() for w in workers):
        raise SystemExit("a load thread did not finish")
    return sent


def wait_for(receiver: Receiver, ids: set[str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ids <= receiver.transaction_ids():
            return True
        time.sleep(0.2)
    return ids <= receiver.transaction_ids()


# --- Figures --------------------------------------------------------------------------------------


def quantiles_ms(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    cuts = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else values * 99
    return {"p50_ms": round(cuts[49] * 1000, 1), "p95_ms": round(cuts[94] * 1000, 1),
            "p99_ms": round(cuts[98] * 1000, 1), "max_ms": round(max(values) * 1000, 1)}  # fmt: skip


def signatures_bad(arrivals: list[Arrival], secret: str) -> int:
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    hook, bad = Webhook(secret), 0
    for a in arrivals:
        try:
            hook.verify(a.body, a.headers)
        except WebhookVerificationError:
            bad += 1
    return bad


def figures(
    sent: list[Sent], arrivals: list[Arrival], *, scheduled: int, load_end: float, secret: str
) -> dict[str, Any]:
    flagged = {s.transaction_id: s for s in sent if s.status == 201 and s.decision in ("decline", "review")}
    by_tid: dict[str, Arrival] = {}
    for a in sorted(arrivals, key=lambda a: a.at):
        if a.transaction_id in flagged:
            by_tid.setdefault(a.transaction_id, a)  # the first arrival counts
    with_tid = [a for a in arrivals if a.transaction_id]
    latencies = [by_tid[t].at - flagged[t].returned_at for t in by_tid]
    from_event = [a.at - a.event_timestamp for a in by_tid.values() if a.event_timestamp is not None]
    ids = Counter(a.webhook_id for a in arrivals)
    first_at = min((a.at for a in by_tid.values()), default=0.0)
    last_at = max((a.at for a in by_tid.values()), default=0.0)
    span = max(s.finished for s in sent) - min(s.started for s in sent) if sent else 0.0
    lag = [max(0.0, s.started - s.scheduled) for s in sent]
    durations = [s.finished - s.started for s in sent]
    per_second = Counter(int(a.at) for a in by_tid.values())
    return {
        "scheduled": scheduled,
        "requests": len(sent),
        "by_status": dict(sorted(Counter(str(s.status) for s in sent).items())),
        "errors": [s.error for s in sent if s.error][:5],
        "request_rate_per_s": round(len(sent) / span, 1) if span else 0.0,
        "request_ms": quantiles_ms(durations),
        "schedule_lag_ms": quantiles_ms(lag),
        "flagged": len(flagged),
        "delivered": len(by_tid),
        "missing": len(flagged) - len(by_tid),
        "duplicates": sum(n - 1 for n in ids.values() if n > 1),
        "arrivals": len(arrivals),
        "arrivals_without_transaction_id": len(arrivals) - len(with_tid),
        "latency_from_scoring_response": quantiles_ms(latencies),
        "latency_from_event_created": quantiles_ms(from_event),
        "worker_delivery_rate_per_s": round(len(by_tid) / (last_at - first_at), 1) if last_at > first_at else None,
        "worker_peak_deliveries_in_one_s": max(per_second.values(), default=0),
        "last_arrival_after_load_end_s": round(last_at - load_end, 2) if by_tid else None,
        "backlog_at_load_end": sum(
            1 for t, a in by_tid.items() if a.at > load_end and flagged[t].returned_at <= load_end
        ),
        "signatures_bad": signatures_bad(arrivals, secret),
    }


def report(r: dict[str, Any]) -> str:
    f, m = r["figures"], r["machine"]
    lat, created = f["latency_from_scoring_response"], f["latency_from_event_created"]
    req, lag = f["request_ms"], f["schedule_lag_ms"]
    lines = [
        f"CipherGuard webhook delivery latency — {m['cores']} cores, {m['cpu']}, {r['finished_at']}",
        f"load average before {fmt_load(m['load_avg_before'])}, after {fmt_load(r['load_avg_after'])}",
        f"gunicorn {r['web_workers']} sync workers; one Celery worker, --concurrency=2, and beat; Redis broker",
        "",
        f"Load: POST /api/v1/transactions/ at {r['rate']:g}/s for {r['seconds']:g} s, open loop, {r['threads']} threads: "
        f"{f['requests']} of {f['scheduled']} sent, achieved {f['request_rate_per_s']}/s; statuses {f['by_status']}",
        f"  request   p50 {req['p50_ms']} ms  p95 {req['p95_ms']} ms  p99 {req['p99_ms']} ms  max {req['max_ms']} ms",
        f"  schedule lag p99 {lag['p99_ms']} ms, max {lag['max_ms']} ms",
        f"Flagged (declined by the block list): {f['flagged']}; delivered {f['delivered']}, missing {f['missing']}, "
        f"duplicates {f['duplicates']}, bad signatures {f['signatures_bad']}",
        "Latency, receiver arrival - scoring response returned (by data.transaction_id):",
        f"  p50 {lat['p50_ms']} ms  p95 {lat['p95_ms']} ms  p99 {lat['p99_ms']} ms  max {lat['max_ms']} ms",
        "Latency, receiver arrival - event stored (the envelope's timestamp):",
        f"  p50 {created['p50_ms']} ms  p95 {created['p95_ms']} ms  p99 {created['p99_ms']} ms  "
        f"max {created['max_ms']} ms",
        f"Worker delivery rate: {f['worker_delivery_rate_per_s']}/s over first to last arrival "
        f"(peak {f['worker_peak_deliveries_in_one_s']} in one second); last arrival "
        f"{f['last_arrival_after_load_end_s']} s after the load ended ({f['backlog_at_load_end']} still on their way then)",
        f"Database after: deliveries {r['database']['deliveries']}, attempts {r['database']['attempts']}",
    ]
    if f["arrivals_without_transaction_id"]:
        lines.append(f"({f['arrivals_without_transaction_id']} arrivals had no data.transaction_id)")
    lines.append(f"Target: every event within {DRAIN_BOUND_S} s of the load's end: {'ok' if r['ok'] else 'MISSED'}")
    return "\n".join(lines)


def fmt_load(load: Any) -> str:
    return " ".join(f"{x:.2f}" for x in load)


def database_counts(args: argparse.Namespace, database: str) -> dict[str, Any]:
    rows = psql(args, "SELECT status, count(*) FROM fraud_webhookdelivery GROUP BY status ORDER BY status", database)
    attempts = psql(args, "SELECT count(*), count(*) FILTER (WHERE status_code BETWEEN 200 AND 299), "
                          "count(*) FILTER (WHERE number > 1) FROM fraud_webhookattempt", database)  # fmt: skip
    total, ok, retries = (int(x) for x in attempts.split("|"))
    return {
        "deliveries": {line.split("|")[0]: int(line.split("|")[1]) for line in rows.splitlines() if line},
        "attempts": {"total": total, "2xx": ok, "retries": retries},
    }


# --- Main -----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379"))
    parser.add_argument("--broker-db", type=int, default=9, help="Redis database of the Celery broker")
    parser.add_argument("--cache-db", type=int, default=10, help="Redis database of the cache and rate limits")
    parser.add_argument("--database", default=RUN_DB, help="the run's database (created, then dropped)")
    parser.add_argument("--rate", type=float, default=100.0, help="scoring requests a second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=8, help="load threads (open loop)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="gunicorn workers")
    parser.add_argument("--reseed", action="store_true", help="rebuild make bench's seed database")
    parser.add_argument("--seed-db", help="use this existing database as the seed (see bench/run.py)")
    parser.add_argument("--workdir", default=str(ROOT / "var" / "bench-webhooks"))
    args = parser.parse_args()
    # A SIGTERM (a CI timeout, Ctrl-C from make) still stops the services and drops the database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(args.workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)

    result: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
                              "seed": SEED, "rate": args.rate, "seconds": args.seconds, "threads": args.threads,
                              "web_workers": args.workers, "worker_concurrency": 2}  # fmt: skip
    seed_db = args.seed_db or ensure_seed(args)
    run_db = args.database
    psql(args, f"DROP DATABASE IF EXISTS {run_db} WITH (FORCE)")
    psql(args, f"CREATE DATABASE {run_db} TEMPLATE {seed_db}")
    port = free_port()
    env = {
        **server_env(run_db, args, port),
        "REDIS_URL": f"{args.redis}/{args.cache_db}",
        "CELERY_BROKER_URL": f"{args.redis}/{args.broker_db}",
        "WEBHOOKS_ALLOWED_NETWORKS": "127.0.0.1/32",
        "WEBHOOKS_HTTPS_ONLY": "false",
    }
    receiver = Receiver().start()
    with ExitStack() as stack:
        stack.callback(lambda: psql(args, f"DROP DATABASE IF EXISTS {run_db} WITH (FORCE)"))
        stack.callback(receiver.stop)
        log(f"blocking the seed's {SEED['merchants']} merchants for {CLIENT}; its endpoint -> {receiver.url}")
        created = json.loads(
            manage(env, "shell", "-c", SETUP.format(client=CLIENT, merchants=SEED["merchants"], url=receiver.url))
            .strip()
            .splitlines()[-1]
        )
        secret = created["secret"]
        start(stack, [PYTHON, "-m", "gunicorn", "cipherguard.wsgi", "--config", "deploy/gunicorn.conf.py",
                      "--workers", str(args.workers)], env, workdir / "gunicorn.log")  # fmt: skip
        worker_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(workdir / "prometheus-worker")}
        start(stack, [PYTHON, "-m", "celery", "-A", "cipherguard", "worker", "--concurrency=2", "--loglevel=WARNING",
                      "--without-gossip", "--without-mingle", "-n", f"bench-webhooks-{os.getpid()}@%h"], worker_env,
              workdir / "worker.log")  # fmt: skip
        start(stack, [PYTHON, "-m", "celery", "-A", "cipherguard", "beat", "--loglevel=WARNING",
                      "--schedule", str(workdir / "celerybeat-schedule")], worker_env, workdir / "beat.log")  # fmt: skip
        wait_http(port)
        token = Api(port).login()

        log(f"warm-up: {WARMUP} transactions, until their webhooks arrive")
        warm = open_loop(port, token, rate=20, seconds=WARMUP / 20, threads=2, prefix=f"whw{time.time_ns()}")
        warm_ids = {s.transaction_id for s in warm if s.status == 201}
        if len(warm_ids) != WARMUP or not wait_for(receiver, warm_ids, timeout=90):
            raise SystemExit(
                f"warm-up: {len(warm_ids)} of {WARMUP} scored, {len(warm_ids & receiver.transaction_ids())} "
                f"webhooks arrived; statuses {Counter(s.status for s in warm)}; see {workdir}"
            )
        warm_arrivals = len(receiver.snapshot())

        log(f"load: {args.rate:g} flagged transactions a second for {args.seconds:g} s")
        sent = open_loop(port, token, rate=args.rate, seconds=args.seconds, threads=args.threads,
                         prefix=f"wh{time.time_ns()}")  # fmt: skip
        load_end = time.time()
        expected = {s.transaction_id for s in sent if s.status == 201 and s.decision in ("decline", "review")}
        log(f"waiting up to {DRAIN_BOUND_S} s for the last of {len(expected)} webhooks")
        all_arrived = wait_for(receiver, expected, timeout=DRAIN_BOUND_S)
        arrivals = parse(receiver.snapshot()[warm_arrivals:])
        result["load_avg_after"] = os.getloadavg()
        result["database"] = database_counts(args, run_db)
    result["figures"] = figures(
        sent, arrivals, scheduled=int(args.rate * args.seconds), load_end=load_end, secret=secret
    )
    result["ok"] = bool(
        all_arrived and expected and result["figures"]["missing"] == 0 and result["figures"]["signatures_bad"] == 0
    )
    result["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "webhooks.json").write_text(json.dumps(result, indent=2) + "\n")
    print(report(result))
    print(f"\n(written to {(RESULTS / 'webhooks.json').relative_to(ROOT)})")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
