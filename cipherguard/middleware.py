"""Small request/response policies that apply to every view."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.db import OperationalError
from django.http import HttpRequest, HttpResponse

from cipherguard import context
from cipherguard.views import database_unavailable, is_database_unavailable


class RequestContextMiddleware:
    """A correlation id per request (``X-Request-ID`` in, or a new one) and the origin IP, for
    audit events and logs; the id is echoed back in the response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        rid = context.new_request_id(request.headers.get("X-Request-ID"))
        request.request_id = rid  # type: ignore[attr-defined]
        tokens = (context.request_id.set(rid), context.origin_ip.set(request.META.get("REMOTE_ADDR") or None))
        try:
            response = self.get_response(request)
        finally:
            context.request_id.reset(tokens[0])
            context.origin_ip.reset(tokens[1])
        response["X-Request-ID"] = rid
        return response


class ApiNoStoreMiddleware:
    """API responses carry fraud data: no browser or proxy may keep a copy."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path.startswith("/api/"):
            response["Cache-Control"] = "no-store"
        return response


class DatabaseUnavailableMiddleware:
    """A view that meets a database it cannot reach (refused, dropped, pool exhausted, statement
    timed out) answers 503 with ``Retry-After`` at once: the client retries, nothing is half
    done (the view's transaction never committed), and no 500 reaches the client. Errors raised
    outside a view (in another middleware) are turned into the same 503 by ``server_error``.

    After such a failure the process answers 503 straight away for ``DB_BREAKER_SECONDS``
    instead of letting each request wait out the pool's timeout: sync workers stay free to
    answer ``/readyz`` and the requests that need no database, and a client hears "retry" in
    milliseconds, not seconds. Process endpoints are never short-circuited."""

    EXEMPT = ("/healthz", "/readyz", "/metrics")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        self.open_until = 0.0
        self.last_error: BaseException | None = None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if time.monotonic() < self.open_until and not request.path.startswith(self.EXEMPT):
            return database_unavailable(request, self.last_error or OperationalError("database unavailable"))
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if is_database_unavailable(exception):
            self.open_until = time.monotonic() + settings.DB_BREAKER_SECONDS
            self.last_error = exception
            return database_unavailable(request, exception)
        return None
