"""Permission-checked reads of webhook endpoints and their delivery log: an owner only ever
reaches its own endpoints (another's are a 404, never a 403 that would confirm they exist)."""

from __future__ import annotations

from django.db.models import Count, F, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.http import Http404

from accounts.models import User
from fraud.models import WebhookAttempt, WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint


def webhook_endpoints_for_user(*, user: User) -> QuerySet[WebhookEndpoint]:
    """The user's own endpoints, newest first."""
    return WebhookEndpoint.objects.filter(owner=user).order_by("-created_at", "-id")


def webhook_endpoint_get_for_user(*, user: User, endpoint_id: int) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id, owner=user).first()
    if endpoint is None:
        raise Http404("No such webhook endpoint.")
    return endpoint


def webhook_deliveries_for_endpoint(*, endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    """The endpoint's delivery log, newest first, each with its event and its attempts (in the
    order they were made): one query for a page and one for all of its attempts."""
    return (
        WebhookDelivery.objects.filter(endpoint=endpoint)
        .select_related("event")
        .prefetch_related(Prefetch("attempt_log", queryset=WebhookAttempt.objects.order_by("number", "pk")))
        .order_by("-created_at", "-id")
    )


def webhook_delivery_get(*, endpoint: WebhookEndpoint, delivery_id: int) -> WebhookDelivery:
    """One delivery of ``endpoint`` (already fetched for its owner), or 404."""
    delivery = (
        WebhookDelivery.objects.select_related("event", "endpoint").filter(pk=delivery_id, endpoint=endpoint).first()
    )
    if delivery is None:
        raise Http404("No such delivery.")
    return delivery


# The endpoints that need someone first: the disabled, then the failing (longest failing first),
# then the rest, newest first.
HEALTH_ORDERING = ("enabled", F("failing_since").asc(nulls_last=True), "-created_at", "-id")


def webhook_endpoints_health() -> QuerySet[WebhookEndpoint]:
    """Every endpoint with what an operator asks of it: how many deliveries wait (``backlog``),
    and when the latest delivery was made and where it stands (``last_delivery_at``,
    ``last_delivery_status``). For the admins' pages, which see every owner's endpoints."""
    latest = WebhookDelivery.objects.filter(endpoint=OuterRef("pk")).order_by("-created_at", "-id")
    return (
        WebhookEndpoint.objects.select_related("owner")
        .annotate(
            backlog=Count("deliveries", filter=Q(deliveries__status=WebhookDeliveryStatus.PENDING)),
            last_delivery_at=Subquery(latest.values("created_at")[:1]),
            last_delivery_status=Subquery(latest.values("status")[:1]),
        )
        .order_by(*HEALTH_ORDERING)
    )
