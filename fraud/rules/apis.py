"""Allow and block lists through the API: an API client manages entries about its own cards,
customers and merchants (countries and IP ranges, which concern every client, are the admins'
in the Django admin). Every change goes through fraud.rules.services and is audited."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cipherguard.api import (
    IsApiClient,
    SafeJSONParser,
    StrictSerializer,
    page_of,
    paginated,
    path_int,
    path_int_schema,
    problem_response,
    problems,
)
from fraud.models import OWNED_LIST_KINDS, ListAction, ListEntry
from fraud.rules.services import PolicyError, list_entry_add, list_entry_remove, list_import_csv
from fraud.transactions.validation import TimestampError, parse_timestamp

CLIENT_KINDS = [str(k) for k in OWNED_LIST_KINDS]
# Imported in the request, row by row, each row audited on its own (about 3 ms a row on a 2-core
# machine): 128 KB is about 3,000 rows, a few seconds, well inside the server's request timeout.
# Larger files: split them, or import them with `manage.py import_list_entries`.
LIST_IMPORT_MAX_BYTES = 128 * 1024


@extend_schema_field(OpenApiTypes.DATETIME)
class FutureTimestampField(serializers.Field):
    """An ISO 8601 time with an offset, later than now (the list rules bound how much later)."""

    def to_internal_value(self, data: Any) -> datetime:
        try:
            return parse_timestamp(data)
        except TimestampError:
            raise serializers.ValidationError(
                "Must be an ISO 8601 time with an offset, such as 2026-12-31T00:00:00Z."
            ) from None

    def to_representation(self, value: datetime) -> str:
        return value.isoformat()


class ListEntryInputSerializer(StrictSerializer):
    kind = serializers.ChoiceField(choices=CLIENT_KINDS)
    value = serializers.CharField(max_length=64, help_text="a card number (stored only as its fingerprint), or an id")
    action = serializers.ChoiceField(choices=ListAction.choices)
    reason = serializers.CharField(max_length=500)
    overriding = serializers.BooleanField(required=False, default=False)
    expires_at = FutureTimestampField(required=False)


class ListEntryOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    value = serializers.CharField(help_text="a card shows as its first six and last four digits")
    action = serializers.CharField()
    overriding = serializers.BooleanField()
    reason = serializers.CharField()
    expires_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


def entry_data(entry: ListEntry) -> dict[str, Any]:
    return {
        "id": entry.pk,
        "kind": entry.kind,
        "value": entry.display,
        "action": entry.action,
        "overriding": entry.overriding,
        "reason": entry.reason,
        "expires_at": entry.expires_at.isoformat() if entry.expires_at else None,
        "created_at": entry.created_at.isoformat(),
    }


def _refused(exc: PolicyError) -> Response:
    return problem_response(status.HTTP_400_BAD_REQUEST, "Invalid input.", errors={exc.field: [exc.message]})


class ListEntriesApi(APIView):
    permission_classes = [IsApiClient]

    @extend_schema(
        operation_id="lists_list",
        responses={
            200: page_of("ListEntryPage", ListEntryOutputSerializer(many=True)),
            **problems(400, 401, 403),
        },
    )
    def get(self, request: Request) -> Response:
        entries = ListEntry.objects.filter(owner=request.user, removed_at__isnull=True).order_by("-created_at", "-id")
        return paginated(request, self, entries, entry_data, ordering=("-created_at", "-id"))

    @extend_schema(
        operation_id="lists_create",
        request=ListEntryInputSerializer,
        responses={201: ListEntryOutputSerializer, **problems(400, 401, 403, 415)},
        description="Allow or block one of your cards, customers or merchants; every scoring process applies it "
        "within FRAUD_RUNTIME_REFRESH_SECONDS (5 s by default).",
    )
    def post(self, request: Request) -> Response:
        serializer = ListEntryInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            entry = list_entry_add(actor=request.user, owner=request.user, **serializer.validated_data)
        except PolicyError as exc:
            return _refused(exc)
        return Response(entry_data(entry), status=status.HTTP_201_CREATED)


class ListEntryDetailApi(APIView):
    permission_classes = [IsApiClient]

    @extend_schema(
        operation_id="lists_destroy",
        parameters=[path_int_schema("entry_id", "The list entry's id.")],
        responses={204: None, **problems(400, 401, 403, 404)},
    )
    def delete(self, request: Request, entry_id: int) -> Response:
        entry_id = path_int(entry_id, "entry_id")
        entry = ListEntry.objects.filter(pk=entry_id, owner=request.user, removed_at__isnull=True).first()
        if entry is None:
            return problem_response(status.HTTP_404_NOT_FOUND, "No such list entry.")
        list_entry_remove(actor=request.user, entry=entry)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ListImportApi(APIView):
    permission_classes = [IsApiClient]
    parser_classes = [MultiPartParser, SafeJSONParser]

    @extend_schema(
        operation_id="lists_import",
        request={"multipart/form-data": inline_serializer("ListImportInput", {"file": serializers.FileField()})},
        responses={
            200: inline_serializer(
                "ListImportReport",
                {
                    "rows": serializers.IntegerField(),
                    "added": serializers.IntegerField(),
                    "bad": serializers.ListField(child=serializers.DictField()),
                },  # fmt: skip
            ),
            **problems(400, 401, 403, 413, 415),
        },
        description="CSV with kind,value,action,reason[,overriding,expires_at]: entries about your own cards, "
        "customers and merchants. Bad rows are reported by line and field; the others are added.",
    )
    def post(self, request: Request) -> Response:
        upload = request.FILES.get("file")
        if upload is None:
            return problem_response(
                status.HTTP_400_BAD_REQUEST, "Invalid input.", errors={"file": ["Attach a CSV file."]}
            )
        if upload.size > LIST_IMPORT_MAX_BYTES:
            return problem_response(
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                f"The file is larger than {LIST_IMPORT_MAX_BYTES} bytes: split it.",
                errors={"file": [f"At most {LIST_IMPORT_MAX_BYTES} bytes; split larger files."]},
                code="too_large",
            )
        try:
            report = list_import_csv(actor=request.user, file=upload.file, owner=request.user, kinds=CLIENT_KINDS)
        except PolicyError as exc:
            return _refused(exc)
        bad = [{"line": line, "errors": errors} for line, errors in report.bad]
        return Response({"rows": report.rows, "added": report.added, "bad": bad})
