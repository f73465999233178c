"""Read replica: read-only analytics go to ``DATABASE_REPLICA_URL`` when it is healthy.

Only code that opts in reads from the replica — ``with analytics_reads():`` or the
``@replica_reads`` view decorator: the console dashboard and list pages, training, evaluation and
drift reads. Scoring, writes and everything else stay on the primary (the router's default), so
nothing that must see its own write can read a stale copy.

The replica is skipped, and the primary used instead, when:

* no replica is configured;
* it is down or lags more than ``DATABASE_REPLICA_MAX_LAG_SECONDS`` (probed at most every
  ``DATABASE_REPLICA_CHECK_SECONDS`` per process, on a short-lived connection with a one-second
  timeout, so an outage costs one fast failed connect, not a pool timeout per request);
* the signed-in user changed something in the last ``DATABASE_REPLICA_STICKY_SECONDS`` (their
  next pages must show their own change: ``ReplicaStickinessMiddleware``);
* a query on the replica fails mid-request: the decorated view is run again on the primary
  (views that opt in are read-only GETs, so running them twice is safe).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import wraps
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

REPLICA = "replica"
_reading_replica: ContextVar[bool] = ContextVar("cipherguard_reading_replica", default=False)
_pinned_to_primary: ContextVar[bool] = ContextVar("cipherguard_pinned_to_primary", default=False)
STICKY_SESSION_KEY = "_primary_until"

# The SQL the probe runs on the replica: is it a standby, is its WAL receiver streaming, and how
# far behind is replay? Lag is 0 when everything received has been replayed (an idle primary
# would otherwise look ever further behind); otherwise the age of the last replayed commit.
LAG_SQL = """
SELECT pg_is_in_recovery(),
       COALESCE((SELECT status = 'streaming' FROM pg_stat_wal_receiver), false),
       CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 1e9) END
"""


def configured() -> bool:
    # The resolved connection settings, not settings.DATABASES: tests attach a replica at run time.
    return REPLICA in connections.settings


class _Health:
    """The replica's last probe, per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.checked_at = float("-inf")
        self.usable = False
        self.reason = "not checked"

    def reset(self) -> None:
        with self._lock:
            self.checked_at = float("-inf")

    def mark_down(self, reason: str) -> None:
        with self._lock:
            self.usable, self.reason, self.checked_at = False, reason, time.monotonic()

    def check(self) -> bool:
        if time.monotonic() - self.checked_at < settings.DATABASE_REPLICA_CHECK_SECONDS:
            return self.usable
        with self._lock:
            if time.monotonic() - self.checked_at >= settings.DATABASE_REPLICA_CHECK_SECONDS:
                self.usable, self.reason = _probe()
                self.checked_at = time.monotonic()
                if not self.usable:
                    logger.warning("read replica not used: %s", self.reason)
        return self.usable


health = _Health()


def _probe() -> tuple[bool, str]:
    # Here, not at the top: only a configured replica is ever probed, and a SQLite deployment
    # never needs libpq loaded.
    import psycopg

    params = connections.settings[REPLICA]
    try:
        with psycopg.connect(
            dbname=params["NAME"],
            user=params.get("USER") or None,
            password=params.get("PASSWORD") or None,
            host=params.get("HOST") or None,
            port=params.get("PORT") or None,
            connect_timeout=1,
            # A replica that accepts the connection and then hangs must not hold every request
            # behind this probe's lock: the query and the socket give up after a second.
            options="-c statement_timeout=1000",
            tcp_user_timeout=1000,
            autocommit=True,
        ) as conn:
            in_recovery, streaming, lag = conn.execute(LAG_SQL).fetchone()
    except psycopg.Error as exc:
        return False, f"unreachable ({type(exc).__name__})"
    if not in_recovery:
        # A promoted replica is a primary of its own: reading it would split the brain.
        return False, "not a standby (promoted?)"
    if not streaming:
        return False, "not streaming from the primary"
    if float(lag) > settings.DATABASE_REPLICA_MAX_LAG_SECONDS:
        return False, f"lagging {float(lag):.1f} s"
    return True, "ok"


def replica_usable() -> bool:
    return configured() and not _pinned_to_primary.get() and health.check()


@contextmanager
def analytics_reads() -> Iterator[bool]:
    """Reads inside go to the replica when it is usable; yields whether it is."""
    token = _reading_replica.set(replica_usable())
    try:
        yield _reading_replica.get()
    finally:
        _reading_replica.reset(token)


def replica_reads(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A read-only view whose queries may go to the replica; if the replica fails mid-request,
    the view runs again on the primary instead of showing an error page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with analytics_reads() as on_replica:
            if not on_replica:
                return view(request, *args, **kwargs)
            try:
                return view(request, *args, **kwargs)
            except (OperationalError, InterfaceError) as exc:
                health.mark_down(f"query failed ({type(exc).__name__})")
                logger.warning("read replica failed mid-request; answering from the primary")
        return view(request, *args, **kwargs)

    return wrapper


class ReplicaRouter:
    """Reads go to the replica only inside ``analytics_reads``; writes and migrations always to
    the primary."""

    def db_for_read(self, model: type, **hints: Any) -> str | None:
        instance = hints.get("instance")
        if instance is not None and instance._state.db:
            # An object re-read or followed from (refresh_from_db, related lookups) stays on the
            # database it came from: one just written to the primary must not be looked up on a
            # replica that has not replayed it yet.
            return instance._state.db
        return REPLICA if _reading_replica.get() else None

    def db_for_write(self, model: type, **hints: Any) -> str:
        return "default"

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True  # the same data on both

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db != REPLICA


class ReplicaStickinessMiddleware:
    """After a signed-in user changes something (any non-GET request), their requests read the
    primary for ``DATABASE_REPLICA_STICKY_SECONDS``, longer than the replica may lag, so they
    always see their own change."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not configured() or not hasattr(request, "session"):
            return self.get_response(request)
        now = time.time()
        pinned = request.session.get(STICKY_SESSION_KEY, 0) > now
        token = _pinned_to_primary.set(pinned)
        try:
            response = self.get_response(request)
        finally:
            _pinned_to_primary.reset(token)
        user = getattr(request, "user", None)
        if request.method not in ("GET", "HEAD", "OPTIONS") and user is not None and user.is_authenticated:
            request.session[STICKY_SESSION_KEY] = now + settings.DATABASE_REPLICA_STICKY_SECONDS
        return response
