"""API plumbing shared by every endpoint: one error shape, pagination, role permissions, strict
input serializers."""

from __future__ import annotations

import codecs
import json
import math
import re
from collections.abc import Callable
from datetime import datetime
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema_field, inline_serializer
from rest_framework import exceptions, permissions, serializers
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem(
    status: int, detail: str, *, errors: dict[str, Any] | None = None, code: str | None = None
) -> dict[str, Any]:
    """The one error body (RFC 7807): ``type``, ``title``, ``status``, ``detail`` and, for
    validation failures, ``errors`` mapping each failing field to its messages."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if code:
        body["code"] = code
    if errors:
        body["errors"] = errors
    return body


def problem_response(status: int, detail: str, **kwargs: Any) -> Response:
    return Response(problem(status, detail, **kwargs), status=status, content_type=PROBLEM_CONTENT_TYPE)


def _flatten(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {str(k): _flatten(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_flatten(v) for v in detail]
    return str(detail)


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    # Imported here, not at the top: rest_framework.views reads DEFAULT_PARSER_CLASSES (which
    # points into this module) when it is first imported, so a top-level import would be circular
    # whenever DRF's settings load this module first (as a Celery worker's startup checks do).
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        if not isinstance(errors, dict):
            errors = {"non_field_errors": errors if isinstance(errors, list) else [errors]}
        body = problem(response.status_code, "The request has invalid fields.", errors=errors, code="invalid")
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        code = exc.get_codes() if isinstance(exc, exceptions.APIException) else None
        if isinstance(detail, dict):  # simplejwt wraps its message in {"detail": ..., "code": ...}
            code = str(detail.get("code", code or "")) or None
            detail = detail.get("detail", "")
        body = problem(
            response.status_code, _what_to_do(exc, str(detail), code), code=code if isinstance(code, str) else None
        )
    response.data = body
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


def _what_to_do(exc: Exception, detail: str, code: Any) -> str:
    """The library's message, and what the client should do about it."""
    if isinstance(exc, exceptions.ParseError):
        return f"The body is not valid JSON ({detail}). Send one JSON document with Content-Type: application/json."
    if code == "token_not_valid":
        return (
            "The access token is not valid or has expired. Get a new one from POST /api/v1/auth/token/ "
            "(or POST /api/v1/auth/token/refresh/ with your refresh token) and send it as "
            "'Authorization: Bearer <token>'."
        )
    return detail


def invalid_field(field: str, message: str) -> exceptions.ValidationError:
    """A 400 naming the field, for inputs checked outside a serializer (path, cursor, JSON)."""
    return exceptions.ValidationError({field: [message]})


# PostgreSQL's bigint: a larger path id would fail in the database, not here.
MAX_ID = 2**63 - 1


def path_int(value: int, field: str) -> int:
    """An integer id from the URL (Django's ``int`` converter takes any number of digits)."""
    if value > MAX_ID:
        raise invalid_field(field, f"Ensure this value is less than or equal to {MAX_ID}.")
    return value


def path_int_schema(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(
        name, {"type": "integer", "minimum": 0, "maximum": MAX_ID}, OpenApiParameter.PATH, description=description
    )


CURSOR_RE = re.compile(r"[A-Za-z0-9+/=]{1,512}")


class Pagination(CursorPagination):
    """Cursor pagination: stable under inserts and no COUNT(*) over large tables.

    A cursor comes back from the client, so it is checked like any input: DRF decodes it but
    hands its position to the database as it is, and a forged one (``p=x`` against a timestamp)
    would fail there."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = settings.API_MAX_PAGE_SIZE
    ordering = ("-timestamp", "-id")

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> Any:
        self._model = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Any) -> Any:
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is not None and not CURSOR_RE.fullmatch(encoded):
            # base64 decoding skips characters outside its alphabet; a cursor is only ours.
            raise invalid_field("cursor", "Invalid cursor.")
        try:
            cursor = super().decode_cursor(request)
        except exceptions.NotFound:
            raise invalid_field("cursor", "Invalid cursor.") from None
        if cursor is not None and cursor.position is not None:
            field = self._model._meta.get_field(self.ordering[0].lstrip("-"))
            try:
                value = field.to_python(cursor.position)
            except (DjangoValidationError, ValueError, TypeError, OverflowError):
                value = None
            # Positions this class hands out carry their offset: a naive time is not one of ours.
            naive = isinstance(value, datetime) and value.tzinfo is None
            if value is None or naive or "\x00" in cursor.position:
                raise invalid_field("cursor", "Invalid cursor.")
        return cursor


def paginated(
    request: Any, view: Any, queryset: Any, render: Callable[[Any], Any], *, ordering: tuple[str, ...] | None = None
) -> Response:
    """One page of ``queryset`` (ordered by ``ordering``, Pagination's by default), each item
    through ``render``, with the next and previous links."""
    paginator = Pagination()
    if ordering is not None:
        paginator.ordering = ordering
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response([render(item) for item in page])


@extend_schema_field(
    {"type": "string", "pattern": f"^{CURSOR_RE.pattern}$", "description": "opaque: a page's next or previous link"}
)
class CursorField(serializers.CharField):
    """The ``cursor`` query parameter of a ``Pagination`` list, as its schema states it."""

    def __init__(self, **kwargs: Any):
        super().__init__(max_length=512, **kwargs)


def page_of(name: str, item: serializers.Serializer) -> serializers.Serializer:
    """The schema of one ``Pagination`` page of ``item`` (``many=True``)."""
    return inline_serializer(
        name,
        {"next": serializers.URLField(allow_null=True), "previous": serializers.URLField(allow_null=True),
         "results": item},
    )  # fmt: skip


# Component names (as drf-spectacular names request bodies) of the strict serializers, whose
# schema says ``additionalProperties: false`` (``strict_request_components``).
STRICT_COMPONENTS: set[str] = set()


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not declare: a typo must not pass silently. The OpenAPI document
    says so too (``additionalProperties: false``)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__name__.removesuffix("Serializer")
        # drf-spectacular names a PATCH body "Patched…Request".
        STRICT_COMPONENTS.update({name, f"{name}Request", f"Patched{name}Request"})

    # A JSON body's values must have the JSON type the schema states. DRF's fields coerce (the
    # number 42 becomes the text "42", 1 or "yes" becomes true): a client sending the wrong type
    # has a bug it should hear about, and the schema would otherwise promise what we do not check.
    # A serializer fed query parameters, which are all text, turns this off.
    json_types = True

    def _type_errors(self, data: dict[Any, Any]) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        for name, field in self.fields.items():
            raw = data.get(name)
            if field.read_only or raw is None:
                continue
            if isinstance(field, serializers.CharField) and not isinstance(raw, str):
                errors[name] = ["Must be a string."]
            elif isinstance(field, serializers.BooleanField) and not isinstance(raw, bool):
                errors[name] = ["Must be true or false."]
            elif isinstance(field, serializers.IntegerField) and (isinstance(raw, bool) or not isinstance(raw, int)):
                errors[name] = ["Must be a whole number."]
        return errors

    def to_internal_value(self, data: Any) -> Any:
        errors: dict[str, list[str]] = {}
        if isinstance(data, dict):
            errors = {name: ["Unknown field."] for name in sorted(set(data) - set(self.fields))}
            if self.json_types:
                errors |= self._type_errors(data)
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
            raise serializers.ValidationError({**detail, **errors}) from None
        if errors:
            raise serializers.ValidationError(errors)
        return value


def strict_request_components(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular post-processing hook: a strict serializer's schema refuses other fields,
    as the serializer does."""
    for name, schema in result.get("components", {}).get("schemas", {}).items():
        if name in STRICT_COMPONENTS and schema.get("type") == "object":
            schema["additionalProperties"] = False
    return result


# gunicorn refuses a request line (method, path and query) over this many bytes with 414, before
# the application sees it (deploy/gunicorn.conf.py, limit_request_line).
MAX_REQUEST_LINE = 4094


def document_uri_too_long(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular post-processing hook: every operation can answer 414 to a path or query
    longer than the server's request-line limit (plain text from gunicorn, not problem+json)."""
    for path in result.get("paths", {}).values():
        for operation in path.values():
            if isinstance(operation, dict) and "responses" in operation:
                operation["responses"].setdefault(
                    "414",
                    {"description": f"URI too long: the request line is over {MAX_REQUEST_LINE} bytes (refused by "
                                    "the web server before the application)."},
                )  # fmt: skip
    return result


def strict_inline(name: str, fields: dict[str, serializers.Field]) -> type[StrictSerializer]:
    """``inline_serializer`` for a request body that refuses undeclared fields."""
    return type(f"{name}Serializer", (StrictSerializer,), dict(fields))


class IsApiClient(permissions.BasePermission):
    """Machine clients only: analysts and admins use the console, not the scoring API."""

    message = "This endpoint is for API clients."

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and getattr(user, "is_api_client", False))


class RequestTooLarge(exceptions.APIException):
    status_code = 413
    default_detail = "The request body is too large."
    default_code = "too_large"


def _non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list):
        return any(_non_finite(v) for v in value)
    return False


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Every JSON object of a request: duplicate keys are refused (Python keeps the last one
    silently, so two parties could read one body differently), and so are numbers no database
    column holds (``1e309`` parses to infinity, which PostgreSQL refuses in jsonb)."""
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise invalid_field(key, "Duplicate key in the JSON object.")
        if _non_finite(value):
            raise invalid_field(key, "A number must be finite.")
        data[key] = value
    return data


class SafeJSONParser(JSONParser):
    """DRF's JSON parser, stricter: a body-size limit (413), a 400 for absurdly nested documents
    (the standard library raises RecursionError on them, which would otherwise be a 500), and a
    400 naming the key for a duplicate key or a number that is not finite."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict[str, Any] | None = None) -> Any:
        # DRF reads the body itself, so Django's DATA_UPLOAD_MAX_MEMORY_SIZE never applies to JSON.
        parser_context = parser_context or {}
        request = parser_context.get("request")
        length = int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else 0
        if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            raise RequestTooLarge()
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        # NaN and Infinity literals parse to floats, so that the key holding one can be named.
        try:
            data = json.load(codecs.getreader(encoding)(stream), object_pairs_hook=_strict_object, parse_constant=float)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - the document is nested too deeply.") from None
        except ValueError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
        if _non_finite(data):
            raise exceptions.ParseError("JSON parse error - a number must be finite.")
        return data


class ProblemSerializer(serializers.Serializer):
    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    code = serializers.CharField(required=False)
    # field → messages; a list field's entries are keyed by their index (nested the same way)
    errors = serializers.DictField(child=serializers.JSONField(), required=False)


COMMON_PROBLEMS = (429,)  # any authenticated API call can meet its client's rate limit


def problems(*codes: int) -> dict[tuple[int, str], OpenApiResponse]:
    """Error responses as they are sent: RFC 7807 bodies with the problem+json media type."""
    return {
        (code, "application/problem+json"): OpenApiResponse(ProblemSerializer, description=HTTPStatus(code).phrase)
        for code in sorted({*codes, *COMMON_PROBLEMS})
    }
