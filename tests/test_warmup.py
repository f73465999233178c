"""What a preloading gunicorn master does before it forks its workers (deploy/gunicorn.conf.py)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
from django.db import connections

from cipherguard.warmup import before_fork

connection = connections["default"]  # the wrapper itself (its class holds the pools), not the proxy

CONF = Path(__file__).resolve().parent.parent / "deploy" / "gunicorn.conf.py"


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
