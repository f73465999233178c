"""A private CipherGuard deployment for the fault suite: its own PostgreSQL (``initdb`` in a
temporary directory), its own Redis, gunicorn with the production config, a Celery worker and
beat, all on free loopback ports. Nothing here touches the machine's shared services.

Contract: every process is started in its own session (so its whole group can be signalled by
its id), every wait has a deadline, and ``Stack.stop`` ends everything this module started.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import yaml

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the virtualenv's bin: gunicorn, celery
PYTHON = sys.executable
CONFIGMAP = ROOT / "deploy" / "k8s" / "configmap.yaml"

CLIENT = "faults-client"
CLIENT_PASSWORD = "Faults-Correct-Horse-Battery-42"  # noqa: S105 - a throw-away user in a throw-away database
DATABASE = "cipherguard"
# The production split of an upload into chunks happens in the web request and the worker
# processes one chunk per task: both must see the same size (the brief: 1,000-row chunks).
BATCH_CHUNK_SIZE = 1000
# Setup history: the .ci/run schemathesis sizes, enough to train a model in seconds.
HISTORY = {"days": 45, "customers": 200, "merchants": 30, "seed": 3}


class SetupError(RuntimeError):
    """The private deployment could not be brought up (message carries the logs' tails)."""


def now() -> float:
    return time.monotonic()


def wait_until(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.2, what: str) -> Any:
    """Poll ``predicate`` until it returns something truthy; raise TimeoutError after ``timeout``."""
    deadline = now() + timeout
    while True:
        with contextlib.suppress(Exception):
            value = predicate()
            if value:
                return value
        if now() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def tail(path: Path, size: int = 4000) -> str:
    if not path.exists():
        return f"({path.name}: no log)"
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - size))
        return f"--- {path.name} (tail) ---\n" + f.read().decode(errors="replace")


def postgres_bin_dir() -> Path | None:
    """PostgreSQL 15's server binaries (the project's version), else the newest installed."""
    preferred = Path("/usr/lib/postgresql/15/bin")
    if (preferred / "initdb").exists():
        return preferred
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _children_of(pid: int) -> list[int]:
    """The live processes whose parent is ``pid`` (read from /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # The command name may contain spaces and parentheses: split after the last ')'.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                children.append(int(stat.parent.name))
    return children


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        # A zombie has exited; it only waits to be reaped by its (new) parent.
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


# --- Processes -----------------------------------------------------------------------------------


@dataclass
class Proc:
    """One started command, the leader of its own process group."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    cwd: Path = ROOT
    as_user: str | None = None
    process: subprocess.Popen | None = None
    started_at: float = 0.0

    def start(self) -> Proc:
        handle = self.log.open("ab")
        extra: dict[str, Any] = {}
        if self.as_user:
            extra = {"user": self.as_user, "group": self.as_user, "extra_groups": []}
        self.started_at = now()
        self.process = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **extra,
        )
        handle.close()  # the child holds its own copy
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def kill_group(self, timeout: float = 15) -> None:
        """SIGKILL the whole group (parent and children) and reap the leader."""
        if self.process is None:
            return
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
        """Ask politely, then SIGKILL the group; bounded by ``timeout`` plus the kill."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.signal_group(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            self.signal_group(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        self.kill_group()  # whatever of the group is left (a worker whose master died)

    def log_tail(self, size: int = 4000) -> str:
        return tail(self.log, size)


class Postgres:
    """A throw-away cluster: ``initdb`` (trust auth) in ``root``, one postmaster on ``port``,
    listening on 127.0.0.1 only, with the server's durable defaults (fsync on)."""

    def __init__(self, bin_dir: Path, root: Path, logs: Path) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.logs = logs
        self.user = "postgres" if os.geteuid() == 0 else None
        self.proc: Proc | None = None
        self.starts = 0

    def _env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}

    def init(self) -> None:
        self.root.mkdir(mode=0o700)
        if self.user:
            shutil.chown(self.root, self.user, self.user)
        result = subprocess.run(
            [str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
             "--locale=C.UTF-8"],
            env=self._env(), cwd=self.root, capture_output=True, text=True, timeout=120, check=False,
            **({"user": self.user, "group": self.user, "extra_groups": []} if self.user else {}),
        )  # fmt: skip
        if result.returncode != 0:
            raise SetupError(f"initdb failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")

    def start(self) -> Proc:
        self.starts += 1
        self.proc = Proc(
            f"postgres-{self.starts}",
            [
                str(self.bin_dir / "postgres"), "-D", str(self.data),
                "-c", "listen_addresses=127.0.0.1",
                "-c", f"port={self.port}",
                "-c", f"unix_socket_directories={self.root}",
                "-c", "max_connections=100",
            ],
            self._env(),
            self.logs / "postgres.log",
            cwd=self.root,
            as_user=self.user,
        ).start()  # fmt: skip
        return self.proc

    def url(self, database: str = DATABASE) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = DATABASE, timeout: int = 3) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            dbname=database,
            autocommit=True,
            connect_timeout=timeout,
            options="-c statement_timeout=30000",  # the suite's own reads never wait unbounded
        )

    def accepts_connections(self) -> bool:
        try:
            with self.connect("postgres", timeout=1) as conn:
                return conn.execute("SELECT 1").fetchone() == (1,)
        except psycopg.Error:
            return False

    def wait_ready(self, timeout: float = 30) -> None:
        try:
            wait_until(self.accepts_connections, timeout=timeout, interval=0.1, what="PostgreSQL to accept connections")
        except TimeoutError as exc:
            raise SetupError(f"{exc}\n{tail(self.logs / 'postgres.log')}") from None

    def crash(self) -> None:
        """SIGKILL the postmaster alone, as an OOM kill or a node failure would, then wait until
        its orphaned backends are gone (they leave on their own when they notice the postmaster
        died; any still there after 10 s are killed by id), so a restart can take the data dir."""
        assert self.proc is not None and self.proc.running(), "PostgreSQL is not running"
        postmaster = self.proc.pid
        children = _children_of(postmaster)
        os.kill(postmaster, signal.SIGKILL)
        self.proc.process.wait(timeout=10)
        deadline = now() + 10
        while any(_alive(pid) for pid in children) and now() < deadline:
            time.sleep(0.05)
        for pid in children:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(signal.SIGINT, timeout=15)  # SIGINT: PostgreSQL's fast shutdown


class Redis:
    """A throw-away Redis on 127.0.0.1 with persistence off (what the brief and CI use)."""

    def __init__(self, root: Path, logs: Path) -> None:
        self.root = root
        self.port = free_port()
        self.logs = logs
        self.proc: Proc | None = None
        self.starts = 0
        self.binary = shutil.which("redis-server") or "redis-server"

    def start(self) -> Proc:
        self.root.mkdir(exist_ok=True)
        self.starts += 1
        self.proc = Proc(
            f"redis-{self.starts}",
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.root)],
            {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            self.logs / "redis.log",
            cwd=self.root,
        ).start()  # fmt: skip
        return self.proc

    def ping(self, timeout: float = 1) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def wait_ready(self, timeout: float = 15) -> None:
        try:
            wait_until(self.ping, timeout=timeout, interval=0.05, what="Redis to answer PING")
        except TimeoutError as exc:
            raise SetupError(f"{exc}\n{tail(self.logs / 'redis.log')}") from None

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def crash(self) -> None:
        assert self.proc is not None
        self.proc.kill_group(timeout=10)

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(signal.SIGTERM, timeout=5)


# --- HTTP ----------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int | None  # None: no HTTP answer (refused, reset, timed out)
    headers: dict[str, str]
    body: bytes
    error: str | None
    started: float
    finished: float
    transaction_id: str = ""

    @property
    def duration(self) -> float:
        return self.finished - self.started

    def json(self) -> Any:
        return json.loads(self.body)


def http_request(
    port: int,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> Reply:
    """One request on a fresh connection (gunicorn's sync workers close it after each one).
    ``timeout`` bounds every socket operation."""
    started = now()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data, None, started, now())
    except (OSError, http.client.HTTPException) as exc:
        return Reply(None, {}, b"", f"{type(exc).__name__}: {exc}", started, now())
    finally:
        conn.close()


def transaction_body(transaction_id: str, n: int) -> dict[str, str]:
    """A valid scoring request (tests/fraud/scoring/test_scoring_api.py's body) on the history's
    customers and merchants."""
    return {
        "transaction_id": transaction_id,
        "customer_id": f"C{n % HISTORY['customers']:06d}",
        "merchant_id": f"M{(n * 7) % HISTORY['merchants']:05d}",
        "amount": f"{10 + (n * 37) % 490}.{n % 100:02d}",
        "currency": "EUR",
        "country": "FR",
        "timestamp": (datetime.now(UTC) - timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "channel": "pos",
    }


def batch_csv(n: int, prefix: str) -> bytes:
    """A batch upload in the documented CSV layout (tests/fraud/batches/test_batch_jobs.py)."""
    when = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = io.StringIO()
    out.write("transaction_id,customer_id,merchant_id,amount,currency,country,timestamp,channel\n")
    for i in range(n):
        out.write(
            f"{prefix}-{i},C{i % HISTORY['customers']:06d},M{(i * 7) % HISTORY['merchants']:05d},"
            f"{10 + (i * 37) % 490}.{i % 100:02d},EUR,FR,{when},pos\n"
        )
    return out.getvalue().encode()


def multipart(field_name: str, filename: str, content: bytes, content_type: str) -> tuple[bytes, str]:
    boundary = f"faults-{uuid.uuid4().hex}"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field_name}"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


# --- Load ----------------------------------------------------------------------------------------


class Load:
    """``threads`` clients POSTing /api/v1/transactions/ back to back, each with a unique
    transaction id; every reply is kept (status, duration, headers, transaction id)."""

    def __init__(self, port: int, token: str, *, prefix: str, threads: int = 4, timeout: float = 30) -> None:
        self.port, self.token, self.prefix, self.threads, self.timeout = port, token, prefix, threads, timeout
        self.replies: list[Reply] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def _run(self, index: int) -> None:
        n = 0
        while not self._stop.is_set():
            tid = f"{self.prefix}-{index}-{n}"
            body = json.dumps(transaction_body(tid, index * 100_000 + n)).encode()
            reply = http_request(
                self.port,
                "POST",
                "/api/v1/transactions/",
                body=body,
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"},
                timeout=self.timeout,
            )
            reply.transaction_id = tid
            with self._lock:
                self.replies.append(reply)
            n += 1
            if reply.status is None:
                time.sleep(0.05)  # a refused connection returns at once: do not spin

    def __enter__(self) -> Load:
        for index in range(self.threads):
            thread = threading.Thread(target=self._run, args=(index,), name=f"load-{index}", daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(timeout=self.timeout + 10)
        assert not any(t.is_alive() for t in self._workers), "a load thread did not stop"

    def snapshot(self) -> list[Reply]:
        with self._lock:
            return list(self.replies)

    def first_success_after(self, t: float) -> Reply | None:
        ok = [r for r in self.snapshot() if r.status == 201 and r.finished > t]
        return min(ok, key=lambda r: r.finished) if ok else None


# --- The deployment ------------------------------------------------------------------------------


def production_env(overrides: dict[str, str]) -> dict[str, str]:
    """The production ConfigMap (deploy/k8s/configmap.yaml) with throw-away secrets, our own
    connection URLs and paths; nothing of the caller's service settings leaks in."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update({k: str(v) for k, v in yaml.safe_load(CONFIGMAP.read_text())["data"].items()})
    for name in ("SECRET_KEY", "JWT_SECRET", "ENCRYPTION_KEY", "AUDIT_MAC_KEY", "PAN_FINGERPRINT_KEY", "METRICS_TOKEN"):
        env[name] = secrets.token_urlsafe(48)
    env.update(
        DJANGO_SETTINGS_MODULE="cipherguard.settings",
        ENVIRONMENT="production",
        DEBUG="false",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",
        WEB_CONCURRENCY="2",
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        BATCH_CHUNK_SIZE=str(BATCH_CHUNK_SIZE),
    )
    env.update(overrides)
    return env


@dataclass
class Stack:
    base: Path
    pg_bin: Path
    logs: Path = field(init=False)
    pg: Postgres = field(init=False)
    redis: Redis = field(init=False)
    env: dict[str, str] = field(init=False)
    web_port: int = field(init=False)
    web: Proc | None = None
    worker: Proc | None = None
    beat: Proc | None = None
    workers: list[Proc] = field(default_factory=list)  # every worker started, the killed ones too
    client_id: int = 0
    setup_seconds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.logs = self.base / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.pg = Postgres(self.pg_bin, self.base / "pg", self.logs)
        self.redis = Redis(self.base / "redis", self.logs)
        self.web_port = free_port()
        var = self.base / "var"
        (var / "staticfiles").mkdir(parents=True, exist_ok=True)
        self.env = production_env(
            {
                "DATABASE_URL": self.pg.url(),
                "REDIS_URL": self.redis.url(0),
                "CELERY_BROKER_URL": self.redis.url(1),
                "CIPHERGUARD_VAR_DIR": str(var),
                "PROMETHEUS_MULTIPROC_DIR": str(self.base / "prometheus-web"),
                "GUNICORN_BIND": f"127.0.0.1:{self.web_port}",
            }
        )

    # --- Bring-up -------------------------------------------------------------------------------

    def _timed(self, label: str, fn: Callable[[], Any]) -> Any:
        started = now()
        try:
            return fn()
        finally:
            self.setup_seconds[label] = round(now() - started, 2)

    def manage(self, *argv: str, timeout: float = 120, extra_env: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            [PYTHON, "manage.py", *argv],
            cwd=ROOT,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise SetupError(f"manage.py {' '.join(argv)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
        return result.stdout

    def start(self) -> None:
        started = now()
        self._timed("initdb", self.pg.init)
        self.pg.start()
        self._timed("postgres_start", self.pg.wait_ready)
        self.redis.start()
        self.redis.wait_ready()
        with self.pg.connect("postgres") as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
        self._timed("migrate", lambda: self.manage("migrate", "--no-input", "-v", "0", timeout=180))
        self.manage(
            "create_user", CLIENT, "--role", "api_client", extra_env={"CIPHERGUARD_USER_PASSWORD": CLIENT_PASSWORD}
        )
        start_day = (datetime.now(UTC) - timedelta(days=HISTORY["days"])).strftime("%Y-%m-%d")
        self._timed(
            "history",
            lambda: self.manage(
                "generate_transactions",
                *("--days", str(HISTORY["days"]), "--customers", str(HISTORY["customers"])),
                *("--merchants", str(HISTORY["merchants"]), "--seed", str(HISTORY["seed"])),
                *("--start", start_day, "--owner", CLIENT),
                timeout=180,
            ),
        )
        self._timed("train", lambda: self.manage("train_model", "--activate", timeout=180))
        with self.pg.connect() as conn:
            # The suite measures faults, not the quota: this client's own limits are raised (as
            # bench/run.py does); rate limiting itself stays on, so its Redis calls are in play.
            row = conn.execute(
                "UPDATE accounts_user SET api_requests_per_hour = %s, api_burst_per_second = %s "
                "WHERE username = %s RETURNING id",
                [10**9, 10**6, CLIENT],
            ).fetchone()
            assert row, "the API client was not created"
            self.client_id = row[0]
        self.start_web()
        self.beat = Proc(
            "beat",
            [str(BIN / "celery"), "-A", "cipherguard", "beat", "--loglevel=INFO",
             "--schedule", str(self.base / "celerybeat-schedule")],
            self.env,
            self.logs / "beat.log",
        ).start()  # fmt: skip
        self.start_worker()
        self._timed("web_ready", lambda: self.wait_ready(timeout=60))
        self.setup_seconds["worker_ready_at_most"] = round(self.wait_worker_ready(self.worker, timeout=60), 2)
        self.setup_seconds["total"] = round(now() - started, 1)

    def start_web(self) -> Proc:
        self.web = Proc(
            "gunicorn",
            [str(BIN / "gunicorn"), "cipherguard.wsgi", "--config", "deploy/gunicorn.conf.py", "--workers", "2"],
            self.env,
            self.logs / "gunicorn.log",
        ).start()
        return self.web

    def start_worker(self) -> Proc:
        """The production worker command (deploy/k8s/worker.yaml)."""
        number = len(self.workers) + 1
        self.worker = Proc(
            f"worker-{number}",
            [str(BIN / "celery"), "-A", "cipherguard", "worker", "--concurrency=2", "--loglevel=INFO"],
            self.env,
            self.logs / f"worker-{number}.log",
        ).start()
        self.workers.append(self.worker)
        return self.worker

    def wait_worker_ready(self, worker: Proc, timeout: float = 60) -> float:
        """Seconds from the worker's start until it logged that it is ready."""

        def ready() -> bool:
            if not worker.running():
                raise SetupError(f"{worker.name} exited\n{worker.log_tail()}")
            return " ready." in worker.log.read_text(errors="replace")

        deadline = now() + timeout
        while not ready():
            if now() > deadline:
                raise SetupError(f"{worker.name} not ready after {timeout:.0f} s\n{worker.log_tail()}")
            time.sleep(0.1)
        return now() - worker.started_at

    def ready(self) -> bool:
        return http_request(self.web_port, "GET", "/readyz", timeout=5).status == 200

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = now() + timeout
        while not self.ready():
            if self.web is None or not self.web.running():
                raise SetupError(f"gunicorn exited\n{self.diagnostics()}")
            if now() > deadline:
                last = http_request(self.web_port, "GET", "/readyz", timeout=5)
                raise SetupError(f"/readyz not 200 after {timeout:.0f} s: {last.status} {last.body[:300]!r}\n"
                                 f"{self.diagnostics()}")  # fmt: skip
            time.sleep(0.3)

    # --- Use ------------------------------------------------------------------------------------

    def token(self) -> str:
        reply = http_request(
            self.web_port,
            "POST",
            "/api/v1/auth/token/",
            body=json.dumps({"username": CLIENT, "password": CLIENT_PASSWORD}).encode(),
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        assert reply.status == 200, f"token: {reply.status} {reply.error} {reply.body[:300]!r}"
        return reply.json()["access"]

    def api(self, method: str, path: str, token: str, *, body: bytes | None = None,
            content_type: str = "application/json", timeout: float = 30) -> Reply:  # fmt: skip
        headers = {"Authorization": f"Bearer {token}"}
        if body is not None:
            headers["Content-Type"] = content_type
        return http_request(self.web_port, method, path, body=body, headers=headers, timeout=timeout)

    def stored(self, transaction_ids: list[str]) -> set[str]:
        """Which of these transaction ids PostgreSQL holds for our client (read directly)."""
        with self.pg.connect() as conn:
            rows = conn.execute(
                "SELECT transaction_id FROM fraud_transaction WHERE owner_id = %s AND transaction_id = ANY(%s)",
                [self.client_id, transaction_ids],
            ).fetchall()
        return {r[0] for r in rows}

    def job_row(self, job_id: int) -> dict[str, Any]:
        with self.pg.connect(timeout=2) as conn:
            cur = conn.execute(
                "SELECT status, chunks_done, chunk_count, scored, failed, total, heartbeat_at "
                "FROM fraud_batchjob WHERE id = %s",
                [job_id],
            )
            names = [c.name for c in cur.description]
            return dict(zip(names, cur.fetchone(), strict=True))

    def log_mark(self) -> int:
        """Where gunicorn's log ends now: pass it to ``server_errors`` after a scenario."""
        return (self.logs / "gunicorn.log").stat().st_size

    def server_errors(self, since: int, top: int = 5) -> dict[str, int]:
        """The errors the web workers logged since ``since``: message and exception, counted."""
        counts: Counter[str] = Counter()
        with (self.logs / "gunicorn.log").open("rb") as f:
            f.seek(since)
            for raw in f:
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(record, dict) or record.get("level") not in ("ERROR", "CRITICAL"):
                    continue
                key = str(record.get("message", ""))[:120]
                if record.get("exc_info"):
                    key += " | " + str(record["exc_info"]).strip().splitlines()[-1][:200]
                counts[key] += 1
        return dict(counts.most_common(top))

    def diagnostics(self) -> str:
        procs = [self.web, self.worker, self.beat, self.pg.proc, self.redis.proc]
        return "\n".join(p.log_tail(3000) for p in procs if p is not None)

    # --- Tear-down ------------------------------------------------------------------------------

    def stop(self) -> None:
        for proc in (self.web, self.beat):
            if proc is not None:
                proc.stop(signal.SIGTERM, timeout=10)
        for proc in self.workers:
            proc.stop(signal.SIGTERM, timeout=10)
        self.redis.stop()
        self.pg.stop()

    def keep_logs(self, target: Path, size: int = 5_000_000) -> None:
        """The last ``size`` bytes of every log, for the closing note and for failures."""
        shutil.rmtree(target, ignore_errors=True)  # this run's logs only
        target.mkdir(parents=True)
        for path in self.logs.glob("*.log"):
            with path.open("rb") as src:
                src.seek(max(0, path.stat().st_size - size))
                (target / path.name).write_bytes(src.read())
