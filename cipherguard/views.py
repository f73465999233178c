"""Process-level endpoints (health, readiness) and JSON error pages for the API."""

from __future__ import annotations

import hmac
import logging

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import RequestDataTooBig
from django.core.signals import request_finished
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from cipherguard import metrics as metrics_
from cipherguard.api import PROBLEM_CONTENT_TYPE, problem
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


@require_GET
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: database, cache and what the apps check (an active model) are all usable; 503
    otherwise."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready", never a 500
        logger.warning("readiness: database unavailable: %s", type(exc).__name__)
        checks["database"] = "unavailable"
    try:
        cache.set("readyz", "1", timeout=5)
        checks["cache"] = "ok" if cache.get("readyz") == "1" else "unavailable"
    except Exception as exc:
        logger.warning("readiness: cache unavailable: %s", type(exc).__name__)
        checks["cache"] = "unavailable"
    for offer in app_hooks("readiness_checks"):
        for name, check in offer().items():
            if checks["database"] != "ok":
                checks[name] = "unknown"  # every app check reads the database
                continue
            try:
                checks[name] = check()
            except Exception as exc:
                logger.warning("readiness: %s unavailable: %s", name, type(exc).__name__)
                checks[name] = "unavailable"
    ready = all(v != "unavailable" and v != "unknown" for v in checks.values())
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": checks}, status=200 if ready else 503)


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


def _error(request: HttpRequest, status: int, detail: str) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(problem(status, detail), status=status, content_type=PROBLEM_CONTENT_TYPE)
    return render(request, "error.html", {"status": status, "detail": detail}, status=status)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if isinstance(exception, RequestDataTooBig):
        return _error(request, 413, "The request body is too large.")
    return _error(request, 400, "The request could not be understood.")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(request, 403, "You do not have permission to do this.")


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(request, 404, "Nothing here.")


def server_error(request: HttpRequest) -> HttpResponse:
    return _error(request, 500, "Something went wrong on our side. It has been logged.")
