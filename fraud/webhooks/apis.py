"""Webhook endpoints through the API: an API client registers where its events are posted, reads
the delivery log, rotates the signing secret and re-sends a delivery. Admins manage theirs in the
Django admin. Every change goes through fraud.webhooks.services and is audited; the signing
secret is in a response only twice: when the endpoint is created and when it is rotated."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cipherguard.api import (
    CursorField,
    IsApiClient,
    StrictSerializer,
    page_of,
    paginated,
    path_int,
    path_int_schema,
    problem_response,
    problems,
)
from fraud.models import WebhookAttempt, WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint, WebhookEventType
from fraud.webhooks.addresses import MAX_URL_LENGTH
from fraud.webhooks.delivery import ResendError, webhook_delivery_resend
from fraud.webhooks.events import PLATFORM_EVENTS
from fraud.webhooks.selectors import (
    webhook_deliveries_for_endpoint,
    webhook_delivery_get,
    webhook_endpoint_get_for_user,
    webhook_endpoints_for_user,
)
from fraud.webhooks.services import (
    EndpointError,
    EndpointWithSecret,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_update,
)

# What an API client may subscribe to: platform events (a model going live) go to admins' endpoints.
CLIENT_EVENT_TYPES = [(value, label) for value, label in WebhookEventType.choices if value not in PLATFORM_EVENTS]
MAX_OVERLAP_HOURS = 24 * 7


def event_types_field(**kwargs: Any) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.ChoiceField(choices=CLIENT_EVENT_TYPES),
        min_length=1,
        max_length=len(CLIENT_EVENT_TYPES),
        help_text="the events to post to this URL",
        **kwargs,
    )


# The example is a documentation address (RFC 5737): refused like any non-public one unless an
# operator allows its network, as CI's schemathesis run does to exercise the endpoint routes.
@extend_schema_field(
    {"type": "string", "maxLength": MAX_URL_LENGTH, "example": "https://203.0.113.10/cipherguard/webhooks"}
)
class WebhookUrlField(serializers.CharField):
    pass


def url_field(**kwargs: Any) -> serializers.CharField:
    return WebhookUrlField(
        max_length=MAX_URL_LENGTH,
        trim_whitespace=False,
        help_text="where events are posted: an https URL whose host resolves only to public addresses",
        **kwargs,
    )


class WebhookEndpointCreateInputSerializer(StrictSerializer):
    url = url_field()
    event_types = event_types_field()
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class WebhookEndpointUpdateInputSerializer(StrictSerializer):
    # No defaults: a field left out is left as it is.
    url = url_field(required=False)
    event_types = event_types_field(required=False)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    enabled = serializers.BooleanField(
        required=False, help_text="true sends again (and clears why it was disabled); false stops sending"
    )


class WebhookSecretRotateInputSerializer(StrictSerializer):
    overlap_hours = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=MAX_OVERLAP_HOURS,
        help_text=f"how long the current secret keeps signing too (default {settings.WEBHOOK_SECRET_OVERLAP_HOURS}; "
        "0 drops it at once)",
    )


class PageFilterSerializer(StrictSerializer):
    json_types = False  # query parameters: text, read by each field

    cursor = CursorField(required=False)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=settings.API_MAX_PAGE_SIZE)


class WebhookDeliveryFilterSerializer(PageFilterSerializer):
    status = serializers.ChoiceField(choices=WebhookDeliveryStatus.choices, required=False)


class WebhookEndpointOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    description = serializers.CharField()
    event_types = serializers.ListField(child=serializers.CharField())
    enabled = serializers.BooleanField()
    disabled_reason = serializers.CharField(
        allow_null=True, help_text="why no more events are sent (a 410 answer, a day of failures, or who disabled it)"
    )
    disabled_at = serializers.DateTimeField(allow_null=True)
    failing_since = serializers.DateTimeField(
        allow_null=True,
        help_text=f"the first failure since the last success; after {settings.WEBHOOK_DISABLE_AFTER_HOURS} hours "
        "of nothing but failures the endpoint is disabled",
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    previous_secret_expires_at = serializers.DateTimeField(
        allow_null=True, help_text="until then, the secret before the last rotation signs every message too"
    )


class WebhookEndpointWithSecretSerializer(WebhookEndpointOutputSerializer):
    secret = serializers.CharField(help_text="the signing secret (whsec_…): shown only in this response, store it now")


class WebhookAttemptOutputSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    attempted_at = serializers.DateTimeField()
    status_code = serializers.IntegerField(allow_null=True, help_text="empty when no answer came (see error)")
    error = serializers.CharField()
    duration_ms = serializers.FloatField()
    response_excerpt = serializers.CharField(help_text="the start of the receiver's answer")


class WebhookDeliveryOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    event_id = serializers.UUIDField(help_text="the webhook-id header: the same on every attempt and re-send")
    event_type = serializers.CharField()
    created_at = serializers.DateTimeField()
    status = serializers.ChoiceField(choices=WebhookDeliveryStatus.choices)
    attempts = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField(allow_null=True)
    attempt_log = WebhookAttemptOutputSerializer(many=True, help_text="every POST made, first to last")


class WebhookEventTypeOutputSerializer(serializers.Serializer):
    type = serializers.CharField()
    description = serializers.CharField()


def _when(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def endpoint_data(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": endpoint.pk,
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": list(endpoint.event_types),
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason or None,
        "disabled_at": _when(endpoint.disabled_at),
        "failing_since": _when(endpoint.failing_since),
        "created_at": _when(endpoint.created_at),
        "updated_at": _when(endpoint.updated_at),
        "previous_secret_expires_at": _when(endpoint.previous_secret_expires_at),
    }


def endpoint_with_secret(created: EndpointWithSecret) -> dict[str, Any]:
    return {**endpoint_data(created.endpoint), "secret": created.secret}


def attempt_data(attempt: WebhookAttempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "attempted_at": attempt.attempted_at.isoformat(),
        "status_code": attempt.status_code,
        "error": attempt.error,
        "duration_ms": attempt.duration_ms,
        "response_excerpt": attempt.response_excerpt,
    }


def delivery_data(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": delivery.pk,
        "event_id": str(delivery.event.event_id),
        "event_type": delivery.event.type,
        "created_at": delivery.created_at.isoformat(),
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": _when(delivery.next_attempt_at),
        "delivered_at": _when(delivery.delivered_at),
        "last_error": delivery.last_error or None,
        "attempt_log": [attempt_data(a) for a in delivery.attempt_log.all()],
    }


NEWEST = ("-created_at", "-id")


def _refused(exc: EndpointError) -> Response:
    return problem_response(status.HTTP_400_BAD_REQUEST, exc.message, errors={exc.field: [exc.message]}, code="invalid")


ENDPOINT_ID = path_int_schema("endpoint_id", "The webhook endpoint's id.")
DELIVERY_ID = path_int_schema("delivery_id", "The delivery's id, from the endpoint's delivery log.")


class WebhookEndpointsApi(APIView):
    permission_classes = [IsApiClient]

    @extend_schema(
        operation_id="webhooks_list",
        parameters=[PageFilterSerializer],
        responses={
            200: page_of("WebhookEndpointPage", WebhookEndpointOutputSerializer(many=True)),
            **problems(400, 401, 403),
        },
    )
    def get(self, request: Request) -> Response:
        PageFilterSerializer(data=request.query_params.dict()).is_valid(raise_exception=True)
        return paginated(request, self, webhook_endpoints_for_user(user=request.user), endpoint_data, ordering=NEWEST)

    @extend_schema(
        operation_id="webhooks_create",
        request=WebhookEndpointCreateInputSerializer,
        responses={201: WebhookEndpointWithSecretSerializer, **problems(400, 401, 403, 415)},
        description="Register a URL to post events to. The answer carries the signing secret, the only time it is "
        "shown. The URL's host must resolve to public addresses only, and a client has at most "
        f"{settings.WEBHOOK_MAX_ENDPOINTS} endpoints.",
    )
    def post(self, request: Request) -> Response:
        serializer = WebhookEndpointCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            created = webhook_endpoint_create(owner=request.user, actor=request.user, **serializer.validated_data)
        except EndpointError as exc:
            return _refused(exc)
        return Response(endpoint_with_secret(created), status=status.HTTP_201_CREATED)


class WebhookEndpointDetailApi(APIView):
    permission_classes = [IsApiClient]

    @extend_schema(
        operation_id="webhooks_retrieve",
        parameters=[ENDPOINT_ID],
        responses={200: WebhookEndpointOutputSerializer, **problems(400, 401, 403, 404)},
    )
    def get(self, request: Request, endpoint_id: int) -> Response:
        endpoint = webhook_endpoint_get_for_user(user=request.user, endpoint_id=path_int(endpoint_id, "endpoint_id"))
        return Response(endpoint_data(endpoint))

    @extend_schema(
        operation_id="webhooks_update",
        parameters=[ENDPOINT_ID],
        request=WebhookEndpointUpdateInputSerializer,
        responses={200: WebhookEndpointOutputSerializer, **problems(400, 401, 403, 404, 415)},
        description="Change the URL, the events, the description, or turn sending off and on. Enabling a disabled "
        "endpoint clears why it was disabled; deliveries given up meanwhile are re-sent one by one (resend).",
    )
    def patch(self, request: Request, endpoint_id: int) -> Response:
        endpoint = webhook_endpoint_get_for_user(user=request.user, endpoint_id=path_int(endpoint_id, "endpoint_id"))
        serializer = WebhookEndpointUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if not serializer.validated_data:  # nothing to change: nothing to audit
            return Response(endpoint_data(endpoint))
        try:
            endpoint = webhook_endpoint_update(endpoint=endpoint, actor=request.user, **serializer.validated_data)
        except EndpointError as exc:
            return _refused(exc)
        return Response(endpoint_data(endpoint))

    @extend_schema(
        operation_id="webhooks_destroy",
        parameters=[ENDPOINT_ID],
        responses={204: None, **problems(400, 401, 403, 404)},
        description="Delete the endpoint and its delivery log; nothing more is sent to it.",
    )
    def delete(self, request: Request, endpoint_id: int) -> Response:
        endpoint = webhook_endpoint_get_for_user(user=request.user, endpoint_id=path_int(endpoint_id, "endpoint_id"))
        webhook_endpoint_delete(endpoint=endpoint, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookSecretRotateApi(APIView):
    permission_classes = [IsApiClient]

    @extend_schema(
        operation_id="webhooks_rotate_secret",
        parameters=[ENDPOINT_ID],
        request=WebhookSecretRotateInputSerializer,
        responses={200: WebhookEndpointWithSecretSerializer, **problems(400, 401, 403, 404, 415)},
        description="A new signing secret, shown only in this answer. Until previous_secret_expires_at every "
        "message is signed with both the new and the current secret, so the receiver can switch at its pace.",
    )
    def post(self, request: Request, endpoint_id: int) -> Response:
        endpoint = webhook_endpoint_get_for_user(user=request.user, endpoint_id=path_int(endpoint_id, "endpoint_id"))
        serializer = WebhookSecretRotateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            rotated = webhook_endpoint_rotate_secret(
                endpoint=endpoint, actor=request.user, overlap_hours=serializer.validated_data.get("overlap_hours")
            )
        except EndpointError as exc:
            return _refused(exc)
        return Response(endpoint_with_secret(rotated))


class WebhookDeliveriesApi(APIView):
    permission_classes = [IsApiClient]

    @extend_schema(
        operation_id="webhooks_deliveries",
        parameters=[ENDPOINT_ID, WebhookDeliveryFilterSerializer],
        responses={
            200: page_of("WebhookDeliveryPage", WebhookDeliveryOutputSerializer(many=True)),
            **problems(400, 401, 403, 404),
        },
        description="The endpoint's delivery log, newest first: each event sent or to be sent, with every attempt.",
    )
    def get(self, request: Request, endpoint_id: int) -> Response:
        endpoint = webhook_endpoint_get_for_user(user=request.user, endpoint_id=path_int(endpoint_id, "endpoint_id"))
        filters = WebhookDeliveryFilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        deliveries = webhook_deliveries_for_endpoint(endpoint=endpoint)
        if "status" in filters.validated_data:
            deliveries = deliveries.filter(status=filters.validated_data["status"])
        return paginated(request, self, deliveries, delivery_data, ordering=NEWEST)


class WebhookDeliveryResendApi(APIView):
    permission_classes = [IsApiClient]

    @extend_schema(
        operation_id="webhooks_resend",
        parameters=[ENDPOINT_ID, DELIVERY_ID],
        request=None,
        responses={202: WebhookDeliveryOutputSerializer, **problems(400, 401, 403, 404, 409)},
        description="Send a delivery again, whatever became of it, with the same event id (webhook-id). 409 when "
        "the endpoint is disabled or the delivery is already waiting to be sent.",
    )
    def post(self, request: Request, endpoint_id: int, delivery_id: int) -> Response:
        endpoint = webhook_endpoint_get_for_user(user=request.user, endpoint_id=path_int(endpoint_id, "endpoint_id"))
        delivery = webhook_delivery_get(endpoint=endpoint, delivery_id=path_int(delivery_id, "delivery_id"))
        try:
            delivery = webhook_delivery_resend(delivery=delivery, actor=request.user)
        except ResendError as exc:
            return problem_response(status.HTTP_409_CONFLICT, str(exc), code="not_resendable")
        return Response(delivery_data(delivery), status=status.HTTP_202_ACCEPTED)


class WebhookEventTypesApi(APIView):
    permission_classes = [IsApiClient]

    @extend_schema(
        operation_id="webhooks_event_types",
        responses={200: WebhookEventTypeOutputSerializer(many=True), **problems(401, 403)},
        description="The event types an endpoint can subscribe to.",
    )
    def get(self, request: Request) -> Response:
        return Response([{"type": value, "description": label} for value, label in CLIENT_EVENT_TYPES])
