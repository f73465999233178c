"""Start-up work done before a web worker takes its first request (deploy/gunicorn.conf.py)."""

from __future__ import annotations

import logging

from django.db import close_old_connections, connections
from django.urls import get_resolver

from cipherguard.hooks import app_hooks

logger = logging.getLogger(__name__)


def _run(*hook_names: str) -> None:
    try:
        for name in hook_names:
            for hook in app_hooks(name):
                hook()
    finally:
        close_old_connections()
        for conn in connections.all(initialized_only=True):
            conn.close()  # back to the pool


def warm_up(*, process: bool = True) -> None:
    """Import the URLconf and every view, and do the apps' warm-up; with ``process``, also their
    per-process warm-up (loading the active model's ONNX session), which a preloading master
    leaves to each worker (``warm_up_process``). A database that is not there yet is fine: the
    first request then does it."""
    get_resolver().url_patterns  # noqa: B018 - importing every view is the point
    _run(*(("warm_up", "warm_up_process") if process else ("warm_up",)))


def warm_up_process() -> None:
    """The apps' per-process warm-up alone: in a worker forked from a warmed master."""
    _run("warm_up_process")


def before_fork() -> None:
    """What a preloading master must not hand to its workers: the database connection pool runs
    threads, which a fork does not copy, and its sockets would be shared by every worker. Closed
    here, each worker opens its own on its first query. (Redis clients check the process id and
    reconnect after a fork by themselves.)"""
    for conn in connections.all(initialized_only=True):
        conn.close()
        # Only a pool that exists: asking for `conn.pool` (close_pool does) would open one.
        if conn.alias in getattr(type(conn), "_connection_pools", {}):
            conn.close_pool()
