"""Endpoint management: create, change, rotate the secret, delete — each audited, in one
transaction with the change. A signing secret leaves these functions only once, in the result
of a creation or a rotation; it is stored sealed (``delivery.secret_box``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Role, User
from audit.services import audit_record
from fraud.models import WebhookDelivery, WebhookEndpoint, WebhookEventType
from fraud.webhooks import addresses
from fraud.webhooks.delivery import allowed_networks, deliveries_delete, secret_box
from fraud.webhooks.events import PLATFORM_EVENTS
from fraud.webhooks.signing import secret_new


class EndpointError(ValueError):
    """A refused endpoint setting, with the field it is about."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def url_check(url: str) -> str:
    """The SSRF guard at save time: scheme, form, and every address the host resolves to now."""
    try:
        dest = addresses.destination_parse(url, https_only=settings.WEBHOOKS_HTTPS_ONLY)
        addresses.destination_resolve(dest, allowed=allowed_networks())
    except addresses.UnsafeDestinationError as exc:
        raise EndpointError("url", str(exc)) from None
    return url


def event_types_check(event_types: Any, *, owner: User) -> list[str]:
    if not isinstance(event_types, list) or not event_types:
        raise EndpointError("event_types", "Must be a non-empty list of event types.")
    unknown = sorted({str(t) for t in event_types} - set(WebhookEventType.values))
    if unknown:
        raise EndpointError("event_types", f"Unknown event types: {', '.join(unknown)}.")
    if owner.role != Role.ADMIN and any(t in PLATFORM_EVENTS for t in event_types):
        raise EndpointError("event_types", "model.activated is for admins' endpoints only.")
    return sorted(set(event_types))


def _state(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": endpoint.event_types,
        "enabled": endpoint.enabled,
    }


@dataclass(frozen=True)
class EndpointWithSecret:
    endpoint: WebhookEndpoint
    secret: str = field(repr=False)  # shown once; never in a repr, a traceback's locals or a log


def webhook_endpoint_create(
    *, owner: User, url: str, event_types: list[str], description: str = "", actor: User | None = None
) -> EndpointWithSecret:
    types = event_types_check(event_types, owner=owner)
    url_check(url)
    secret = secret_new()
    with transaction.atomic():
        # The owner's row is the lock that makes the per-owner limit hold under concurrent creates.
        User.objects.select_for_update().filter(pk=owner.pk).first()
        if WebhookEndpoint.objects.filter(owner=owner).count() >= settings.WEBHOOK_MAX_ENDPOINTS:
            raise EndpointError("url", f"At most {settings.WEBHOOK_MAX_ENDPOINTS} endpoints per client.")
        endpoint = WebhookEndpoint.objects.create(
            owner=owner, url=url, event_types=types, description=description[:200], secret=secret_box().seal(secret)
        )
        audit_record(event_type="webhook.endpoint_created", actor=actor or owner, obj=endpoint, after=_state(endpoint))
    return EndpointWithSecret(endpoint, secret)


def webhook_endpoint_update(*, endpoint: WebhookEndpoint, actor: User, **changes: Any) -> WebhookEndpoint:
    """Change url, event_types, description or enabled. Enabling again clears why it was disabled
    and the failure clock."""
    allowed = {"url", "event_types", "description", "enabled"}
    unknown = set(changes) - allowed
    if unknown:
        raise EndpointError(sorted(unknown)[0], "Cannot be changed.")
    if "url" in changes:
        url_check(changes["url"])
    if "event_types" in changes:
        changes["event_types"] = event_types_check(changes["event_types"], owner=endpoint.owner)
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        before = _state(endpoint)
        fields = set(changes)
        for name, value in changes.items():
            setattr(endpoint, name, value)
        if changes.get("enabled") is True and not before["enabled"]:
            endpoint.disabled_reason, endpoint.disabled_at, endpoint.failing_since = "", None, None
            fields |= {"disabled_reason", "disabled_at", "failing_since"}
        if changes.get("enabled") is False and before["enabled"]:
            endpoint.disabled_reason, endpoint.disabled_at = f"Disabled by {actor.get_username()}.", timezone.now()
            fields |= {"disabled_reason", "disabled_at"}
        endpoint.save(update_fields=[*sorted(fields), "updated_at"])
        audit_record(
            event_type="webhook.endpoint_changed", actor=actor, obj=endpoint, before=before, after=_state(endpoint)
        )
    return endpoint


def webhook_endpoint_rotate_secret(
    *, endpoint: WebhookEndpoint, actor: User, overlap_hours: int | None = None
) -> EndpointWithSecret:
    """A new secret signs from now on; the current one keeps signing too for ``overlap_hours``
    (WEBHOOK_SECRET_OVERLAP_HOURS by default, 0 to drop it at once), so receivers switch at their pace."""
    hours = settings.WEBHOOK_SECRET_OVERLAP_HOURS if overlap_hours is None else overlap_hours
    if not 0 <= hours <= 24 * 7:
        raise EndpointError("overlap_hours", "Must be between 0 and 168 hours.")
    secret = secret_new()
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        endpoint.previous_secret = endpoint.secret if hours else ""
        endpoint.previous_secret_expires_at = timezone.now() + timedelta(hours=hours) if hours else None
        endpoint.secret = secret_box().seal(secret)
        endpoint.save(update_fields=["previous_secret", "previous_secret_expires_at", "secret", "updated_at"])
        audit_record(
            event_type="webhook.secret_rotated",
            actor=actor,
            obj=endpoint,
            after={"previous_secret_valid_until": endpoint.previous_secret_expires_at.isoformat() if hours else None},
        )
    return EndpointWithSecret(endpoint, secret)


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint, actor: User) -> None:
    with transaction.atomic():
        audit_record(event_type="webhook.endpoint_deleted", actor=actor, obj=endpoint, before=_state(endpoint))
        deliveries_delete(WebhookDelivery.objects.filter(endpoint=endpoint))
        endpoint.delete()


def webhook_secrets_reseal() -> dict[str, object]:
    """Seal every endpoint's signing secrets (current and previous) under the current
    ENCRYPTION_KEY, after a rotation that put the old key in ENCRYPTION_OLD_KEYS; the secrets
    themselves do not change, so receivers notice nothing. Raises ``LookupError`` (nothing
    changed) when a secret was sealed under a key that is in neither setting. Safe to repeat."""
    box = secret_box()
    prefix = f"v1:{box.current_id}:"
    sealed_now = Q(secret__startswith=prefix) & (Q(previous_secret="") | Q(previous_secret__startswith=prefix))
    with transaction.atomic():
        # Endpoints are few (WEBHOOK_MAX_ENDPOINTS per client): one transaction, the rows locked
        # against a concurrent secret rotation, which would otherwise be overwritten.
        endpoints = list(WebhookEndpoint.objects.exclude(sealed_now).select_for_update().order_by("pk"))
        for endpoint in endpoints:
            endpoint.secret = box.seal(box.open(endpoint.secret))
            if endpoint.previous_secret:
                endpoint.previous_secret = box.seal(box.open(endpoint.previous_secret))
        WebhookEndpoint.objects.bulk_update(endpoints, ["secret", "previous_secret"])
        audit_record(
            event_type="webhook_secrets.resealed", after={"key_id": box.current_id, "resealed": len(endpoints)}
        )
    current = WebhookEndpoint.objects.count() - len(endpoints)
    return {"key_id": box.current_id, "resealed": len(endpoints), "already_current": current}
