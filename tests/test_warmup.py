"""What a preloading gunicorn master does before it forks its workers (deploy/gunicorn.conf.py)."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.db import connections

from cipherguard.warmup import before_fork
from tests.helpers import gunicorn

connection = connections["default"]  # the wrapper itself (its class holds the pools), not the proxy

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "deploy" / "gunicorn.conf.py"


def test_the_master_hands_no_database_pool_to_its_workers(postgres_tx):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    pools = type(connection)._connection_pools
    if connection.alias not in pools:
        pytest.fail("the test settings should use Django's connection pool, as production does")
    before_fork()
    assert connection.connection is None
    assert connection.alias not in pools  # its threads would not survive the fork; its sockets would be shared
    with connection.cursor() as cursor:  # the worker's first query opens its own
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    assert connection.alias in pools


def test_before_fork_does_not_open_a_pool_it_then_closes(postgres_tx):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    before_fork()
    pools = type(connection)._connection_pools
    assert connection.alias not in pools
    before_fork()  # a master with nothing open: nothing to do, and no pool opened on the way
    assert connection.alias not in pools


@pytest.mark.parametrize(("value", "preload"), [(None, True), ("false", False), ("0", False), ("true", True)])
def test_workers_share_the_preloaded_app_unless_told_not_to(monkeypatch, tmp_path, value, preload):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    if value is None:
        monkeypatch.delenv("GUNICORN_PRELOAD", raising=False)
    else:
        monkeypatch.setenv("GUNICORN_PRELOAD", value)
    conf = runpy.run_path(str(CONF))
    assert conf["preload_app"] is preload


def test_a_preloading_master_never_imports_onnxruntime():
    """A process forked after importing onnxruntime aborts at exit once it has scored (SIGABRT,
    "std::system_error: Invalid argument"): the master's warm-up must leave it to the workers."""
    code = (
        "import sys, django; django.setup(); from cipherguard.warmup import warm_up; warm_up(process=False); "
        "from django.urls import get_resolver; get_resolver().url_patterns; "
        "print(sorted(m for m in ('onnxruntime', 'sklearn', 'skl2onnx') if m in sys.modules))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "cipherguard.settings"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_preloaded_workers_score_and_exit_cleanly(postgres_tx, alice, active_model, tmp_path):
    """gunicorn as deployed (preloading master, two workers) against this database: transactions
    score, and on SIGTERM every worker exits without an abort."""
    from rest_framework_simplejwt.tokens import AccessToken

    from tests.fraud.scoring.test_scoring_api import body

    env = {"GUNICORN_PRELOAD": "true", "RATE_LIMIT_ENABLED": "false"}  # 24 requests at once from one client
    with gunicorn(tmp_path, env) as server:
        headers = {"Authorization": f"Bearer {AccessToken.for_user(alice)}", "Content-Type": "application/json"}

        def score(i: int) -> int:
            payload = json.dumps(body(transaction_id=f"preload-{i}")).encode()
            request = urllib.request.Request(f"{server.base}/api/v1/transactions/", payload, headers)  # noqa: S310
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
                return response.status

        with ThreadPoolExecutor(4) as pool:  # both workers score
            statuses = list(pool.map(score, range(24)))
    code, log_path = server.process.returncode, server.log
    log = log_path.read_text()
    assert statuses == [201] * 24
    assert code == 0, log[-3000:]
    assert "terminate called" not in log and "SIGABRT" not in log, log[-3000:]
