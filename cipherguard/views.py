"""Process-level endpoints (health, readiness) and JSON error pages for the API."""

from __future__ import annotations

import hmac
import logging
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import RequestDataTooBig
from django.core.signals import request_finished
from django.db import connection, connections
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from cipherguard import metrics as metrics_
from cipherguard.api import PROBLEM_CONTENT_TYPE, problem
from cipherguard.dbhealth import breaker, is_database_unavailable
from cipherguard.hooks import app_hooks

logger = logging.getLogger(__name__)

# Every process publishes its pool use after each request (the gauge sums live processes).
request_finished.connect(metrics_.record_pool_usage, dispatch_uid="cipherguard-pool-metrics")


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Checks nothing else, so a database outage does not get
    every web process restarted."""
    return JsonResponse({"status": "ok"})


# Readiness answers within READY_DEADLINE whatever the services do: the checks run on a small
# pool of threads, and one that has not answered by then counts as unavailable (a stopped
# database can hold a connect for its whole timeout). At most READY_THREADS checks hang at once;
# later probes then find the pool busy and answer "unavailable" without queueing more.
READY_DEADLINE = 0.8
READY_THREADS = 4
_ready_pool = ThreadPoolExecutor(max_workers=READY_THREADS, thread_name_prefix="readyz")
_ready_busy = threading.BoundedSemaphore(READY_THREADS)


def _database_check() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def _cache_check() -> str:
    cache.set("readyz", "1", timeout=5)
    return "ok" if cache.get("readyz") == "1" else "unavailable"


def _apps_check(database: str) -> dict[str, str]:
    """The apps' checks, in the request's own thread (they read what the request can see). They
    run only once the database has answered, so they do not hang on it."""
    checks: dict[str, str] = {}
    for offer in app_hooks("readiness_checks"):
        for name, check in offer().items():
            if database != "ok":
                checks[name] = "unknown"  # every app check reads the database
                continue
            try:
                checks[name] = check()
            except Exception as exc:
                logger.warning("readiness: %s unavailable: %s", name, type(exc).__name__)
                checks[name] = "unavailable"
    return checks


def _in_thread(check: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        try:
            return check()
        finally:
            connections.close_all()  # this thread's connection goes back to the pool
            _ready_busy.release()

    return run


@require_GET
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: database, cache and what the apps check (an active model) are all usable; 503
    otherwise, and an answer within a second either way."""
    deadline = time.monotonic() + READY_DEADLINE
    futures: dict[str, Future[object] | None] = {}
    checks: dict[str, str] = {}
    if breaker.is_open:
        checks["database"] = "unavailable"  # known down; the breaker's probe is already asking
    elif connection.vendor == "sqlite":
        # A local file cannot hang on a network, and a thread would not see a test's database.
        checks["database"] = _guarded("database", _database_check)
    else:
        futures["database"] = _submit(_database_check)
    futures["cache"] = _submit(_cache_check)
    checks.update({name: _outcome(name, future, deadline) for name, future in futures.items()})
    checks.update(_apps_check(checks["database"]))
    ready = all(v not in ("unavailable", "unknown") for v in checks.values())
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": checks}, status=200 if ready else 503)


def _submit(check: Callable[[], object]) -> Future[object] | None:
    """The check on the readiness pool, or None while READY_THREADS earlier checks still hang."""
    return _ready_pool.submit(_in_thread(check)) if _ready_busy.acquire(blocking=False) else None


def _guarded(name: str, check: Callable[[], object]) -> str:
    try:
        return str(check())
    except FutureTimeout:
        logger.warning("readiness: %s did not answer within %.1f s", name, READY_DEADLINE)
    except Exception as exc:  # any failure means "not ready", never a 500
        logger.warning("readiness: %s unavailable: %s", name, type(exc).__name__)
    return "unavailable"


def _outcome(name: str, future: Future[object] | None, deadline: float) -> str:
    if future is None:
        return "unavailable"  # earlier checks of this process are still hanging
    return _guarded(name, lambda: future.result(timeout=max(0.0, deadline - time.monotonic())))


@require_GET
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics of every web process of this server, plus state from the database.

    With ``METRICS_TOKEN`` set, only scrapes presenting it get in; without one the endpoint is
    open only with DEBUG on (development) and does not exist otherwise."""
    token = settings.METRICS_TOKEN
    if token:
        presented = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(presented, f"Bearer {token}".encode()):
            response = HttpResponse("metrics need the scrape token\n", status=401, content_type="text/plain")
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    elif not (settings.DEBUG or settings.ENVIRONMENT == "test"):
        # Without a token it is a developer's endpoint: a staging or demo server reachable from
        # outside must not publish its case backlog and model figures.
        raise Http404
    return HttpResponse(metrics_.exposition(), content_type=CONTENT_TYPE_LATEST)


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


# What a client is told for the errors the project answers itself, as a page or a problem document.
ERROR_DETAIL = {
    400: "The request could not be understood.",
    403: "You do not have permission to do this.",
    404: "Nothing here.",
    405: "This path does not take that method.",
    413: "The request body is too large.",
    500: "Something went wrong on our side. It has been logged.",
}


def api_problem(status: int, detail: str | None = None) -> JsonResponse:
    """The problem document (``cipherguard.api.problem``) as a plain Django response, for errors
    answered outside DRF."""
    body = problem(status, detail or ERROR_DETAIL.get(status, "The request could not be completed."))
    return JsonResponse(body, status=status, content_type=PROBLEM_CONTENT_TYPE)


def _error(request: HttpRequest, status: int, detail: str | None = None) -> HttpResponse:
    if _wants_json(request):
        return api_problem(status, detail)
    detail = detail or ERROR_DETAIL[status]
    return render(request, "error.html", {"status": status, "detail": detail}, status=status)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if isinstance(exception, RequestDataTooBig):
        return _error(request, 413)
    return _error(request, 400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(request, 403)


def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico whatever the page says; it is the static SVG."""
    return redirect(static("favicon.svg"))


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(request, 404)


def database_unavailable(request: HttpRequest, exc: BaseException | None = None) -> HttpResponse:
    """503 + Retry-After: the database is unreachable (``exc``), or known to be (the breaker is
    open). Logged once per outage by the breaker, not once per request."""
    if exc is not None:
        breaker.trip(exc)
        if not breaker.is_open:  # a slow statement, not an outage: worth its own line
            logger.warning("database did not answer: %s", type(exc).__name__)
    response = _error(request, 503, "The service is briefly unavailable. Retry after a few seconds.")
    response["Retry-After"] = str(settings.DB_RETRY_AFTER_SECONDS)
    response._has_been_logged = True  # type: ignore[attr-defined]  # not one Django ERROR line per request
    return response


def server_error(request: HttpRequest) -> HttpResponse:
    exc = sys.exc_info()[1]
    if is_database_unavailable(exc):
        # Raised outside a view, where DatabaseUnavailableMiddleware does not see it.
        return database_unavailable(request, exc)  # type: ignore[arg-type]
    return _error(request, 500)
