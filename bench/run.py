"""`make bench`: CipherGuard under load on this machine, against PostgreSQL and Redis.

What it does, bounded in time (about four minutes once the seed database exists):

1. A seed database (``cipherguard_bench_seed``): 90 days of generated history, 301,631
   transactions of 2,000 customers at 300 merchants, and a trained, active model. Built once
   (about 90 s) and reused while its fingerprint (code of the generator, feature set, seed) holds.
2. Every run works on a fresh copy (``CREATE DATABASE … TEMPLATE``), so runs do not feed each
   other's history.
3. gunicorn (deploy/gunicorn.conf.py, one sync worker per core) with production settings: DEBUG
   off, INFO logs (JSON, to a file), rate limits on with the benchmark client's own quota raised,
   and a Celery worker for the batch job.
4. Loads it from wrk (Lua scripts in bench/wrk/) on loopback, and from a Python client for the
   batch endpoint and the batch job, then measures inference in-process and the web workers' RSS.
5. Prints a table and writes it, with the machine and versions, to bench/results/latest.json.

Targets (issue #7) are printed beside each figure; absolute times move with machine load,
ratios to the framework ceiling (a trivial authenticated DRF endpoint measured in the same run)
travel better.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
RESULTS = ROOT / "bench" / "results"
WRK_DIR = ROOT / "bench" / "wrk"

SEED = {"days": 90, "customers": 2000, "merchants": 300, "seed": 1}
CLIENT, CLIENT_PASSWORD = "bench-client", "bench-client-password-1"
COUNTRIES = ["FR", "FR", "FR", "DE", "GB", "ES", "IT", "NL"]
CHANNELS = ["pos", "pos", "online", "online", "recurring"]


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- Environment ----------------------------------------------------------------------------------


def server_env(database: str, args: argparse.Namespace, port: int) -> dict[str, str]:
    """Production settings with throw-away secrets (this process only)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "CELERY_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="cipherguard.settings",
        ENVIRONMENT="production",
        DEBUG="false",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",
        LOG_LEVEL="INFO",
        LOG_FORMAT="json",
        DATABASE_URL=f"{args.postgres}/{database}",
        REDIS_URL=f"{args.redis}/10",
        CELERY_BROKER_URL=f"{args.redis}/9",
        JWT_ACCESS_MINUTES="60",
        METRICS_TOKEN=secrets.token_urlsafe(32),
        PROMETHEUS_MULTIPROC_DIR=str(Path(args.workdir) / "prometheus"),
        CIPHERGUARD_VAR_DIR=str(Path(args.workdir) / "var"),
        GUNICORN_BIND=f"127.0.0.1:{port}",
        OMP_NUM_THREADS="1",
    )
    for name in ("SECRET_KEY", "JWT_SECRET", "ENCRYPTION_KEY", "AUDIT_MAC_KEY", "PAN_FINGERPRINT_KEY"):
        env[name] = secrets.token_urlsafe(48)
    return env


def manage(env: dict[str, str], *argv: str) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800
    )
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(argv)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def psql(args: argparse.Namespace, sql: str, database: str = "postgres") -> str:
    result = subprocess.run(
        ["psql", f"{args.postgres}/{database}", "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise SystemExit(f"psql failed: {result.stderr.strip()}")
    return result.stdout.strip()


def seed_fingerprint() -> str:
    """Changes when the seed would come out different: generator, features, training code."""
    digest = hashlib.sha256(json.dumps(SEED, sort_keys=True).encode())
    for path in (
        "fraud/modelops/generator.py",
        "fraud/features/definitions.py",
        "fraud/modelops/training.py",
        "fraud/models.py",
    ):
        digest.update((ROOT / path).read_bytes())
    for path in sorted((ROOT / "fraud" / "migrations").glob("0*.py")):
        digest.update(path.name.encode())
    return digest.hexdigest()[:16]


def ensure_seed(args: argparse.Namespace) -> str:
    seed_db = "cipherguard_bench_seed"
    fingerprint = seed_fingerprint()
    comment = psql(args, f"SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '{seed_db}'")
    if comment == fingerprint and not args.reseed:
        log(f"seed database {seed_db} is current ({fingerprint})")
        return seed_db
    log(f"building the seed database {seed_db} (once; about 90 s)")
    psql(args, f"DROP DATABASE IF EXISTS {seed_db}")
    psql(args, f"CREATE DATABASE {seed_db}")
    env = server_env(seed_db, args, 0)
    started = time.monotonic()
    manage(env, "migrate", "--no-input")
    manage({**env, "CIPHERGUARD_USER_PASSWORD": CLIENT_PASSWORD}, "create_user", CLIENT, "--role", "api_client")
    start = (datetime.now(UTC) - timedelta(days=SEED["days"])).strftime("%Y-%m-%d")
    manage(
        env,
        "generate_transactions",
        *("--days", str(SEED["days"]), "--customers", str(SEED["customers"])),
        *("--merchants", str(SEED["merchants"]), "--seed", str(SEED["seed"]), "--start", start, "--owner", CLIENT),
    )
    manage(env, "train_model", "--activate")
    # The benchmark measures the server, not the quota: this client's own limits are raised
    # (rate limiting itself stays on, so its cost is in every figure).
    manage(
        env,
        "shell",
        "-c",
        "from accounts.models import User; "
        f"User.objects.filter(username={CLIENT!r}).update(api_requests_per_hour=10**9, api_burst_per_second=10**6)",
    )
    psql(args, "VACUUM ANALYZE", seed_db)
    psql(args, f"COMMENT ON DATABASE {seed_db} IS '{fingerprint}'")
    log(f"seed built in {time.monotonic() - started:.0f} s")
    return seed_db


def fresh_copy(args: argparse.Namespace, seed_db: str) -> str:
    run_db = "cipherguard_bench_run"
    psql(args, f"DROP DATABASE IF EXISTS {run_db} WITH (FORCE)")
    psql(args, f"CREATE DATABASE {run_db} TEMPLATE {seed_db}")
    return run_db


# --- Processes ------------------------------------------------------------------------------------


def start(stack: ExitStack, argv: list[str], env: dict[str, str], logfile: Path) -> subprocess.Popen:
    handle = logfile.open("w")
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)

    def stop() -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        handle.close()

    stack.callback(stop)
    return process


def wait_http(port: int, path: str = "/healthz", timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(OSError):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path, headers={"Host": "127.0.0.1"})
            if conn.getresponse().status == 200:
                return
        time.sleep(0.3)
    raise SystemExit(f"the server on port {port} did not answer {path}")


class Api:
    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        self.headers = {"Content-Type": "application/json", "Host": "127.0.0.1"}

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        payload = body if isinstance(body, bytes | None) else json.dumps(body).encode()
        self.conn.request(method, path, payload, {**self.headers, **(headers or {})})
        response = self.conn.getresponse()
        data = response.read()
        is_json = response.getheader("Content-Type", "").startswith(("application/json", "application/problem+json"))
        return response.status, json.loads(data) if is_json and data else data

    def login(self) -> str:
        status, data = self.call("POST", "/api/v1/auth/token/", {"username": CLIENT, "password": CLIENT_PASSWORD})
        if status != 200:
            raise SystemExit(f"token request failed: {status} {data}")
        self.headers["Authorization"] = f"Bearer {data['access']}"
        return data["access"]


# --- Workload -------------------------------------------------------------------------------------


def transaction(rng: random.Random, tid: str) -> dict[str, str]:
    return {
        "transaction_id": tid,
        "customer_id": f"C{rng.randrange(SEED['customers']):06d}",
        "merchant_id": f"M{rng.randrange(SEED['merchants']):05d}",
        "amount": f"{rng.lognormvariate(3.8, 0.8):.2f}",
        "currency": "EUR",
        "country": rng.choice(COUNTRIES),
        "channel": rng.choice(CHANNELS),
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def wrk(script: str, port: int, connections: int, seconds: int, env: dict[str, str]) -> dict[str, Any]:
    threads = max(1, min(2, connections))
    result = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(WRK_DIR / script),
         f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=seconds + 60, env={**os.environ, **env},
    )  # fmt: skip
    match = re.search(r"BENCH_JSON (\{.*\})", result.stdout)
    if not match:
        raise SystemExit(f"wrk printed no result:\n{result.stdout}\n{result.stderr}")
    raw = json.loads(match.group(1))
    duration = raw["duration_us"] / 1e6
    return {
        "connections": connections,
        "requests": raw["requests"],
        "errors": raw["non_2xx"] + raw["socket_errors"],
        "rps": round(raw["requests"] / duration, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p95_ms": round(raw["p95_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "max_ms": round(raw["max_us"] / 1000, 2),
    }


def http_load(port: int, token: str, args: argparse.Namespace) -> dict[str, Any]:
    """Single-transaction scoring and the framework ceiling, at each concurrency."""
    base_env = {"BENCH_TOKEN": token, "BENCH_WRK_DIR": str(WRK_DIR),
                "BENCH_CUSTOMERS": str(SEED["customers"]), "BENCH_MERCHANTS": str(SEED["merchants"])}  # fmt: skip
    results: dict[str, Any] = {"scoring": [], "ceiling": []}
    log("warming up")
    wrk("score.lua", port, 2, 3, {**base_env, "BENCH_RUN": f"warm{time.time_ns()}"})
    wrk("whoami.lua", port, 2, 2, base_env)
    for connections in args.concurrency:
        log(f"ceiling (GET /api/v1/auth/whoami/) at {connections} connections")
        results["ceiling"].append(wrk("whoami.lua", port, connections, args.seconds, base_env))
        log(f"scoring (POST /api/v1/transactions/) at {connections} connections")
        env = {**base_env, "BENCH_RUN": f"s{connections}-{time.time_ns()}"}
        results["scoring"].append(wrk("score.lua", port, connections, args.seconds, env))
    return results


# A realistic policy for the latency cost of #9: 20 live rules (one reading the customer's
# countries, which costs a query) and 1,000 list entries of every kind, none of which the
# benchmark's transactions hit (so every rule is evaluated on every request).
POLICY_SETUP = f"""
from accounts.models import Role, User
from fraud.rules.services import list_entry_add, rule_activate, rule_save
admin, _ = User.objects.get_or_create(username="bench-admin", defaults={{"role": Role.ADMIN}})
client = User.objects.get(username={CLIENT!r})
conditions = ["amount > 90000", "score >= 0.999 and channel == 'atm'", "m_risk_7d > 0.9 and amount > 50000",
              "country in ['KP', 'IR', 'SY'] and amount > 10", "c_n_1h >= 5000", "amount / c_avg_30d > 500",
              "card_n_1h >= 40", "hour == 3 and amount > 80000", "country not in customer_countries_30d and amount > 95000"]
for i in range(20):
    rule = rule_save(actor=admin, name=f"bench rule {{i}}", condition=conditions[i % len(conditions)],
                     action=["review", "decline"][i % 2], priority=i, shadow=i % 5 == 4)
    rule_activate(actor=admin, rule=rule)
for i in range(400):
    list_entry_add(actor=admin, kind="customer", value=f"XC{{i:05d}}", action="block", reason="bench", owner=client)
    list_entry_add(actor=admin, kind="merchant", value=f"XM{{i:05d}}", action="allow", reason="bench", owner=client)
for i in range(100):
    list_entry_add(actor=admin, kind="ip", value=f"10.{{i}}.0.0/16", action="block", reason="bench")
list_entry_add(actor=admin, kind="card", value="4000056655665556", action="block", reason="bench", owner=client)
for code in ("KP", "IR", "SY", "CU", "RU", "BY", "VE", "MM"):
    list_entry_add(actor=admin, kind="country", value=code, action="block", reason="bench")
print("policy installed")
"""
# How many of the transactions scored with the policy matched a list entry or a rule: none should
# (the policy's cost is its evaluation; a match opens a case, a cost of its own). The batch runs
# before it give every bench customer dozens of payments in the last hour, which is why the
# velocity rule's threshold is out of reach.
POLICY_MATCHES = """
from fraud.models import Transaction
scored = Transaction.objects.filter(transaction_id__startswith="rules")
print(scored.count(), scored.exclude(rule_matches=[]).count())
"""
POLICY_TEARDOWN = """
from accounts.models import User
from fraud.models import ListEntry, Rule
from fraud.rules.services import list_entry_remove, rule_disable
admin = User.objects.get(username="bench-admin")
for rule in Rule.objects.filter(name__startswith="bench rule ", status="active"):
    rule_disable(actor=admin, rule=rule)
for entry in ListEntry.objects.filter(reason="bench", removed_at__isnull=True):
    list_entry_remove(actor=admin, entry=entry)
print("policy removed")
"""


def policy_load(port: int, token: str, env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    """Scoring at 1 and 8 connections just before and just after installing the policy above:
    an A/B on the same server and database state (the rows above were measured before the batch
    runs grew the table)."""
    base_env = {"BENCH_TOKEN": token, "BENCH_WRK_DIR": str(WRK_DIR),
                "BENCH_CUSTOMERS": str(SEED["customers"]), "BENCH_MERCHANTS": str(SEED["merchants"])}  # fmt: skip
    levels = [c for c in args.concurrency if c <= 8]

    def measure(tag: str) -> list[dict[str, Any]]:
        # The tag is part of transaction ids: letters and digits only.
        wrk("score.lua", port, 2, 3, {**base_env, "BENCH_RUN": f"{tag}warm{time.time_ns()}"})
        out = []
        for connections in levels:
            log(f"scoring ({tag}) at {connections} connections")
            out.append(wrk("score.lua", port, connections, args.seconds,
                           {**base_env, "BENCH_RUN": f"{tag}{connections}-{time.time_ns()}"}))  # fmt: skip
        return out

    refresh = float(env.get("FRAUD_RUNTIME_REFRESH_SECONDS", "5")) + 1  # every worker re-reads it
    before = measure("norules")
    log("installing 20 rules and ~900 list entries")
    manage(env, "shell", "-c", POLICY_SETUP)
    time.sleep(refresh)
    scoring = measure("rules")
    scored, matched = (int(n) for n in manage(env, "shell", "-c", POLICY_MATCHES).split()[-2:])
    log("removing them again")
    manage(env, "shell", "-c", POLICY_TEARDOWN)
    time.sleep(refresh)
    after = measure("norulesagain")
    # Without the policy: the mean of the runs just before and just after it, so that the machine's
    # drift over the minute (and the table growing with every run) does not count as the policy's.
    without = [
        {**b, "p50_ms": round((b["p50_ms"] + a["p50_ms"]) / 2, 2), "rps": round((b["rps"] + a["rps"]) / 2, 1)}
        for b, a in zip(before, after, strict=True)
    ]
    return {"rules": 20, "list_entries": "~900", "without": without, "before": before, "after": after,
            "scoring": scoring, "scored": scored, "matched": matched}  # fmt: skip


def batch_endpoint(api: Api, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(11)
    calls, size = args.batch_calls, 1000
    bodies = [{"transactions": [transaction(rng, f"be-{c}-{i}") for i in range(size)]} for c in range(calls + 1)]
    status, data = api.call("POST", "/api/v1/transactions/batch/", bodies[0])  # warm-up
    if status != 200:
        raise SystemExit(f"batch endpoint: {status} {str(data)[:500]}")
    log(f"batch endpoint: {calls} calls of {size}")
    started = time.perf_counter()
    scored = 0
    for body in bodies[1:]:
        status, data = api.call("POST", "/api/v1/transactions/batch/", body)
        if status != 200:
            raise SystemExit(f"batch endpoint: {status} {str(data)[:500]}")
        scored += sum(1 for item in data["results"] if item["status"] == 201)
    elapsed = time.perf_counter() - started
    return {"calls": calls, "per_call": size, "scored": scored, "seconds": round(elapsed, 2),
            "tx_per_s": round(scored / elapsed, 1)}  # fmt: skip


def batch_job(api: Api, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(12)
    rows = ["transaction_id,customer_id,merchant_id,amount,currency,country,timestamp,channel"]
    for i in range(args.job_rows):
        t = transaction(rng, f"bj-{i}")
        rows.append(",".join(t[k] for k in ("transaction_id", "customer_id", "merchant_id", "amount", "currency",
                                            "country", "timestamp", "channel")))  # fmt: skip
    boundary = f"bench{secrets.token_hex(8)}"
    csv = ("\n".join(rows) + "\n").encode()
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bench.csv\"\r\n"
            "Content-Type: text/csv\r\n\r\n").encode() + csv + f"\r\n--{boundary}--\r\n".encode()  # fmt: skip
    log(f"batch job: {args.job_rows} rows")
    started = time.perf_counter()
    status, data = api.call(
        "POST", "/api/v1/batches/", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    if status != 202:
        raise SystemExit(f"batch upload: {status} {str(data)[:500]}")
    accepted = time.perf_counter() - started
    deadline = time.monotonic() + args.job_timeout
    while True:
        status, job = api.call("GET", f"/api/v1/batches/{data['id']}/")
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"batch job not done after {args.job_timeout} s: {job}")
        time.sleep(0.5)
    elapsed = time.perf_counter() - started
    if job["status"] != "succeeded":
        raise SystemExit(f"batch job {job['status']}: {job}")
    run_s = (datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])).total_seconds()
    return {"rows": args.job_rows, "scored": job["scored"], "failed": job["failed"],
            "upload_s": round(accepted, 2), "worker_s": round(run_s, 2), "end_to_end_s": round(elapsed, 2),
            "tx_per_s": round(job["scored"] / run_s, 1), "tx_per_s_end_to_end": round(job["scored"] / elapsed, 1)}  # fmt: skip


def bench_module(name: str, env: dict[str, str]) -> dict[str, Any]:
    """Run ``python -m bench.<name>`` against a database (its env) and read the JSON it prints."""
    result = subprocess.run([PYTHON, "-m", f"bench.{name}"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=600)  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"bench.{name} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout)


def worker_rss(master: subprocess.Popen) -> list[dict[str, Any]]:
    children = subprocess.run(["pgrep", "-P", str(master.pid)], capture_output=True, text=True).stdout.split()
    out = []
    for pid in children:
        status = Path(f"/proc/{pid}/status").read_text()
        rss = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))
        rollup = Path(f"/proc/{pid}/smaps_rollup")
        text = rollup.read_text() if rollup.exists() else ""

        def kb(field: str, text: str = text) -> int | None:
            found = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
            return int(found.group(1)) if found else None

        pss, private = kb("Pss"), [kb("Private_Clean"), kb("Private_Dirty")]
        # USS: what this worker alone holds, freed if it exits; PSS adds its share of the rest.
        uss = sum(private) if None not in private else None  # type: ignore[arg-type]
        out.append({"pid": int(pid), "rss_mb": round(rss / 1024, 1),
                    "pss_mb": round(pss / 1024, 1) if pss else None,
                    "uss_mb": round(uss / 1024, 1) if uss else None})  # fmt: skip
    return out


def versions(args: argparse.Namespace) -> dict[str, str]:
    from importlib.metadata import version

    out = {name: version(name) for name in ("Django", "djangorestframework", "djangorestframework-simplejwt",
                                              "psycopg", "onnxruntime", "numpy", "gunicorn", "celery")}  # fmt: skip
    out["python"] = platform.python_version()
    out["postgresql"] = psql(args, "SHOW server_version")
    out["redis"] = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
    out["wrk"] = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return out


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    return {"cores": os.cpu_count(), "cpu": cpu, "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "kernel": platform.release(), "load_avg_before": os.getloadavg()}  # fmt: skip


def microbenchmarks(env: dict[str, str], workdir: Path) -> dict[str, Any]:
    out = workdir / "pytest-benchmark.json"
    result = subprocess.run(
        [PYTHON, "-m", "pytest", "tests/performance", "-q", "-p", "no:cacheprovider", "-o", "python_files=bench_*.py",
         "--benchmark-only",
         f"--benchmark-json={out}", "--benchmark-min-rounds=50", "--benchmark-max-time=1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"micro-benchmarks failed:\n{result.stdout[-3000:]}")
    data = json.loads(out.read_text())
    return {b["name"]: {"median_us": round(b["stats"]["median"] * 1e6, 1), "ops": round(b["stats"]["ops"])}
            for b in data["benchmarks"]}  # fmt: skip


# --- Report ---------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def report(r: dict[str, Any]) -> str:
    lines = [f"CipherGuard benchmark — {r['machine']['cores']} cores, {r['machine']['cpu']}, {r['finished_at']}", ""]
    lines.append(
        "Single-transaction scoring (POST /api/v1/transactions/) vs the framework ceiling (GET /api/v1/auth/whoami/)"
    )
    lines.append(f"{'conns':>5} {'score rps':>10} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'errors':>6} | "
                 f"{'ceiling rps':>11} {'p50 ms':>7} {'p99 ms':>7} | {'ratio':>6}")  # fmt: skip
    for s, c in zip(r["http"]["scoring"], r["http"]["ceiling"], strict=True):
        lines.append(f"{s['connections']:>5} {s['rps']:>10.1f} {s['p50_ms']:>7.2f} {s['p95_ms']:>7.2f} {s['p99_ms']:>7.2f} "
                     f"{s['errors']:>6} | {c['rps']:>11.1f} {c['p50_ms']:>7.2f} {c['p99_ms']:>7.2f} | "
                     f"{s['rps'] / c['rps']:>6.0%}")  # fmt: skip
    if r.get("policy"):
        lines += ["", f"Scoring with {r['policy']['rules']} live rules and {r['policy']['list_entries']} list entries "
                      "(issue #9's latency cost, against the mean of the same load just before installing them and just after removing them; "
                      f"{r['policy'].get('matched', '?')} of {r['policy'].get('scored', '?')} transactions matched one)"]  # fmt: skip
        plain = {s["connections"]: s for s in r["policy"].get("without", r["http"]["scoring"])}
        for s in r["policy"]["scoring"]:
            base = plain.get(s["connections"])
            delta = (
                f"  p50 {s['p50_ms'] - base['p50_ms']:+.2f} ms, rps {s['rps'] / base['rps'] - 1:+.0%}" if base else ""
            )
            lines.append(f"{s['connections']:>5} {s['rps']:>10.1f} {s['p50_ms']:>7.2f} {s['p95_ms']:>7.2f} "
                         f"{s['p99_ms']:>7.2f} {s['errors']:>6} |{delta}")  # fmt: skip
    b, j = r["batch_endpoint"], r["batch_job"]
    lines += ["", f"Batch endpoint: {b['tx_per_s']:,.0f} tx/s ({b['calls']} calls of {b['per_call']}, {b['seconds']} s)",
              f"Batch job: {j['tx_per_s']:,.0f} tx/s in the worker ({j['scored']:,} rows in {j['worker_s']} s; "
              f"{j['tx_per_s_end_to_end']:,.0f} tx/s end to end incl. upload {j['upload_s']} s)", ""]  # fmt: skip
    f = r.get("feature_read")
    if f:
        lines += [f"Feature read, one transaction's aggregates in one round trip ({f['transactions']:,} transactions, "
                  f"{f['merchant_payments_per_day']} payments a day per merchant): merchant from raw history "
                  f"p50 {f['history']['p50_ms']:.2f} ms (p90 {f['history']['p90_ms']:.2f}), from the feature store "
                  f"p50 {f['store']['p50_ms']:.2f} ms (p90 {f['store']['p90_ms']:.2f}); identical: "
                  f"{'yes' if f['identical'] else 'NO'}", ""]  # fmt: skip
    lines.append("Inference, µs per transaction (ours vs bare onnxruntime InferenceSession.run, same model and rows)")
    for row in r["inference"]["rows"]:
        lines.append(f"  {row['what']:<44} batch {row['batch']:>5}: ours {row['ours_us']:>8.1f}  bare {row['bare_us']:>8.1f}  "
                     f"x{row['overhead']:.2f}")  # fmt: skip
    rss = ", ".join(f"RSS {w['rss_mb']:.0f} / PSS {w['pss_mb']:.0f} / USS {w.get('uss_mb') or 0:.0f} MB"
                    for w in r["memory"]["web_workers"])  # fmt: skip
    lines += ["", f"Memory per web worker after the load: {rss}"]
    if r.get("micro"):
        lines += ["", "Micro-benchmarks (tests/performance, pytest-benchmark): median µs"]
        lines += [f"  {name:<50} {m['median_us']:>10.1f}" for name, m in r["micro"].items()]
    lines += ["", "Targets (issues #7, #16, #17):"]
    for name, (ok, detail) in r["targets"].items():
        lines.append(f"  [{verdict(ok):>6}] {name}: {detail}")
    return "\n".join(lines)


def targets(r: dict[str, Any]) -> dict[str, tuple[bool, str]]:
    one = next(s for s in r["http"]["scoring"] if s["connections"] == 1)
    eight = next((s for s in r["http"]["scoring"] if s["connections"] == 8), None)
    ceil8 = next((c for c in r["http"]["ceiling"] if c["connections"] == 8), None)
    infer1 = next(x for x in r["inference"]["rows"] if x["batch"] == 1 and x["what"].startswith("score"))
    out = {
        "p50 <= 3 ms at concurrency 1": (one["p50_ms"] <= 3, f"{one['p50_ms']} ms"),
        "p99 <= 10 ms at concurrency 1 (#17)": (one["p99_ms"] <= 10, f"{one['p99_ms']} ms"),
        "batch endpoint >= 20,000 tx/s": (r["batch_endpoint"]["tx_per_s"] >= 20000, f"{r['batch_endpoint']['tx_per_s']:,.0f} tx/s"),
        "batch job >= 20,000 tx/s": (r["batch_job"]["tx_per_s"] >= 20000, f"{r['batch_job']['tx_per_s']:,.0f} tx/s"),
        "inference overhead <= 2x bare at batch 1": (infer1["overhead"] <= 2, f"x{infer1['overhead']:.2f}"),
        "<= 160 MB RSS per web worker (#16)": (max(w["rss_mb"] for w in r["memory"]["web_workers"]) <= 160,
                                               f"max {max(w['rss_mb'] for w in r['memory']['web_workers']):.0f} MB"),
        "<= 128 MB PSS per web worker (#17)": (max(w["pss_mb"] or 0 for w in r["memory"]["web_workers"]) <= 128,
                                               f"max {max(w['pss_mb'] or 0 for w in r['memory']['web_workers']):.0f} MB"),
    }  # fmt: skip
    if eight and ceil8:
        out[">= 1,000 scored tx/s at concurrency 8"] = (eight["rps"] >= 1000, f"{eight['rps']:,.0f}/s")
        out[">= 50 % of the ceiling at concurrency 8 (#17)"] = (
            eight["rps"] >= 0.5 * ceil8["rps"],
            f"{eight['rps'] / ceil8['rps']:.0%}",
        )
    policy = r.get("policy")
    if policy:
        plain = {s["connections"]: s for s in policy.get("without", r["http"]["scoring"])}
        with_rules = next((s for s in policy["scoring"] if s["connections"] == 1), None)
        if with_rules and 1 in plain:
            cost = with_rules["p50_ms"] - plain[1]["p50_ms"]
            out["20 rules and ~900 list entries cost <= +0.3 ms p50 at concurrency 1 (#17)"] = (
                cost <= 0.3,
                f"{cost:+.2f} ms",
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379"))
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per point")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--batch-calls", type=int, default=10)
    parser.add_argument("--job-rows", type=int, default=100_000)
    parser.add_argument("--job-timeout", type=int, default=600)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--reseed", action="store_true", help="rebuild the seed database")
    parser.add_argument("--seed-db", help="use this existing database as the seed instead (e.g. a 10x history; it "
                                          "needs the bench client, its raised limits and an active model)")  # fmt: skip
    parser.add_argument("--no-micro", action="store_true", help="skip the pytest-benchmark micro-benchmarks")
    parser.add_argument("--workdir", default=str(ROOT / "var" / "bench"))
    args = parser.parse_args()
    # A SIGTERM (a CI timeout, Ctrl-C from make) still stops the server and drops the run database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install wrk (make bench does this)")
    workdir = Path(args.workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)

    report_data: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
                                   "versions": versions(args), "seed": SEED}  # fmt: skip
    seed_db = args.seed_db or ensure_seed(args)
    run_db = fresh_copy(args, seed_db)
    port = free_port()
    env = server_env(run_db, args, port)
    with ExitStack() as stack:
        stack.callback(lambda: psql(args, f"DROP DATABASE IF EXISTS {run_db} WITH (FORCE)"))
        master = start(stack, [PYTHON, "-m", "gunicorn", "cipherguard.wsgi", "--config", "deploy/gunicorn.conf.py",
                               "--workers", str(args.workers)], env, workdir / "gunicorn.log")  # fmt: skip
        worker_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(workdir / "prometheus-worker")}
        start(stack, [PYTHON, "-m", "celery", "-A", "cipherguard", "worker", "--concurrency=2", "--loglevel=WARNING",
                      "--without-gossip", "--without-mingle", "-n", f"bench-{os.getpid()}@%h"], worker_env,
              workdir / "worker.log")  # fmt: skip
        wait_http(port)
        api = Api(port)
        token = api.login()
        report_data["http"] = http_load(port, token, args)
        report_data["memory"] = {"web_workers": worker_rss(master)}
        report_data["batch_endpoint"] = batch_endpoint(api, args)
        report_data["batch_job"] = batch_job(api, args)
        report_data["policy"] = policy_load(port, token, env, args)
    # Our scoring code against a bare onnxruntime session; the feature read from history and store.
    report_data["inference"] = bench_module("inference", server_env(seed_db, args, 0))
    report_data["feature_read"] = bench_module("feature_read", server_env(seed_db, args, 0))
    if not args.no_micro:
        log("micro-benchmarks (tests/performance)")
        report_data["micro"] = microbenchmarks(server_env(seed_db, args, 0), workdir)
    report_data["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    report_data["targets"] = targets(report_data)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(report_data, indent=2) + "\n")
    print(report(report_data))
    print(f"\n(written to {RESULTS.relative_to(ROOT) / 'latest.json'})")


if __name__ == "__main__":
    main()
