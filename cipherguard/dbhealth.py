"""Is the database reachable? A per-process circuit breaker, so that an outage costs each web
process one wait, not one per request.

The first request that finds the database unreachable (refused, dropped, no pooled connection
in time) trips the breaker. While it is open the process answers every request that would need
the database with 503 + ``Retry-After`` at once, and a background thread, not a client's
request, probes the database every ``DB_BREAKER_PROBE_SECONDS``; the first probe that gets an
answer closes it. So during an outage sync workers stay free (``/readyz`` answers at once) and
recovery follows the database within a probe interval.

A statement that merely ran too long (``statement_timeout``) or waited for a lock is a slow
query, not an outage: it fails its own request (503) without tripping anything."""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connections

logger = logging.getLogger(__name__)

# SQLSTATEs of a statement stopped by the server while the database itself is fine:
# query_canceled (statement_timeout) and lock_not_available (lock_timeout).
_SLOW_NOT_DOWN = {"57014", "55P03"}


def is_database_unavailable(exc: BaseException | None) -> bool:
    """The database could not be reached or did not answer in time: a reason to retry, not a
    bug. Integrity and data errors are not in this family; they are bugs, or inputs that should
    have been refused earlier."""
    while exc is not None:
        if isinstance(exc, OperationalError | InterfaceError):
            return True
        if isinstance(exc, DatabaseError):
            return False
        exc = exc.__cause__
    return False


def _is_outage(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if getattr(cause, "sqlstate", None) in _SLOW_NOT_DOWN:
            return False
        cause = cause.__cause__
    return True


def _answers() -> bool:
    """One probe on its own connection, outside the pool (whose reconnection back-off would
    delay noticing the database is back), bounded by the connect timeout."""
    db = connections["default"]
    try:
        if db.vendor != "postgresql":
            with db.cursor() as cursor:
                cursor.execute("SELECT 1")
            return True
        import psycopg

        params = db.settings_dict
        with psycopg.connect(
            dbname=params["NAME"],
            user=params["USER"] or None,
            password=params["PASSWORD"] or None,
            host=params["HOST"] or None,
            port=params["PORT"] or None,
            connect_timeout=settings.DB_CONNECT_TIMEOUT,
        ) as probe:
            probe.execute("SELECT 1")
        return True
    except Exception as exc:  # any failure of the probe means "still down"
        logger.debug("database probe failed: %s", type(exc).__name__)
        return False


class Breaker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = False
        self._prober: threading.Thread | None = None
        self.opened_at = 0.0

    @property
    def is_open(self) -> bool:
        return self._open

    def trip(self, exc: BaseException) -> None:
        """Called with an error ``is_database_unavailable`` accepted."""
        if not _is_outage(exc) or settings.DB_BREAKER_PROBE_SECONDS <= 0:
            return
        with self._lock:
            if self._open:
                return
            self._open, self.opened_at = True, time.monotonic()
            logger.error(
                "database unreachable (%s: %s): answering 503 until a probe succeeds",
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "",
            )
            self._prober = threading.Thread(target=self._probe_until_back, name="db-breaker", daemon=True)
            self._prober.start()

    def _probe_until_back(self) -> None:
        while True:
            time.sleep(settings.DB_BREAKER_PROBE_SECONDS)
            if _answers():
                break
        # The pool spent the outage retrying with a growing back-off; a new pool connects now.
        db = connections["default"]
        if getattr(db, "pool", None) is not None:
            db.close_pool()
        with self._lock:
            self._open = False
        logger.warning("database reachable again after %.1f s", time.monotonic() - self.opened_at)

    def reset(self) -> None:
        """Closed, as a new process starts (tests)."""
        with self._lock:
            self._open = False


breaker = Breaker()
