"""Small request/response policies that apply to every view."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from cipherguard import context
from cipherguard.dbhealth import breaker, is_database_unavailable
from cipherguard.views import api_problem, database_unavailable


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


class ApiProblemMiddleware:
    """API errors are ``application/problem+json`` in every mode. With ``DEBUG`` on (``make
    run``), Django answers an unknown path with its technical page, which lists every route, and
    an unhandled error with its debug page; an API client gets the problem document instead. Pages
    for people (the console, the admin) keep Django's debug pages."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            request.path.startswith("/api/")
            and response.status_code >= 400
            and not response.get("Content-Type", "").startswith(("application/problem+json", "application/json"))
        ):
            replaced = api_problem(response.status_code)
            for header in ("Retry-After", "Allow"):
                if header in response:
                    replaced[header] = response[header]
            return replaced
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
    """A view that meets a database it cannot reach answers 503 with ``Retry-After`` at once:
    the client retries, nothing is half done (the view's transaction never committed), and no
    500 reaches the client. It also trips the process's breaker (``cipherguard/dbhealth.py``),
    after which requests get their 503 without waiting for the database until a background
    probe finds it back. Errors raised outside a view (in another middleware) are turned into
    the same 503 by ``views.server_error``. Process endpoints are never cut short."""

    EXEMPT = ("/healthz", "/readyz", "/metrics")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if breaker.is_open and not request.path.startswith(self.EXEMPT):
            return database_unavailable(request)
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if is_database_unavailable(exception):
            return database_unavailable(request, exception)
        return None
