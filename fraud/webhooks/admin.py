"""Django admin for webhooks: admins register their own endpoints (which may subscribe to
model.activated), see every client's endpoints and their health, disable any, and read and
re-send deliveries. Every change goes through fraud.webhooks.services (or the delivery module's
re-send), so it is audited. A signing secret is shown once, on the page that answers the create
or the rotation, and stored nowhere else in plain text (not in a message, which would sit in a
cookie or the session until read)."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from cipherguard.admin_display import EMPTY, ReadOnlyAdmin, truncated, two_lines, when
from fraud.models import WebhookAttempt, WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint, WebhookEventType
from fraud.webhooks.delivery import ResendError, event_body, webhook_delivery_resend
from fraud.webhooks.selectors import HEALTH_ORDERING, webhook_endpoints_health
from fraud.webhooks.services import (
    EndpointError,
    EndpointWithSecret,
    event_types_check,
    url_check,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_update,
)

# What an admin edits on its own endpoint; on another owner's, only ``enabled``.
OWN_FIELDS = ("url", "description", "event_types", "enabled")
SHOWN_FIELDS = ("owner", "health", "previous_secret_expires_at", "created_at", "updated_at", "deliveries")


class WebhookEndpointForm(forms.ModelForm):
    event_types = forms.MultipleChoiceField(
        choices=WebhookEventType.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="model.activated is the platform's own event: only admins' endpoints receive it",
    )
    owner: Any = None  # set per request by WebhookEndpointAdmin.get_form

    class Meta:
        model = WebhookEndpoint
        fields = OWN_FIELDS

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:  # a field the form itself refused (an empty URL): said once, by the form
            return data
        owner = self.instance.owner if self.instance.pk else self.owner
        try:
            if "url" in self.changed_data:
                url_check(data["url"])
            if "event_types" in self.changed_data:
                data["event_types"] = event_types_check(data["event_types"], owner=owner)
        except EndpointError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, exc.message)
        limit = settings.WEBHOOK_MAX_ENDPOINTS
        if not self.instance.pk and WebhookEndpoint.objects.filter(owner=owner).count() >= limit:
            # Said here, on the form; the service holds the limit under a lock against concurrent creates.
            self.add_error(None, f"You have {limit} endpoints, the most allowed: delete one first.")
        return data


class WebhookEndpointEnabledForm(forms.ModelForm):
    """Another owner's endpoint: an admin may turn sending off (or on again), nothing else."""

    class Meta:
        model = WebhookEndpoint
        fields = ("enabled",)


def _own(request: HttpRequest, obj: WebhookEndpoint | None) -> bool:
    return obj is not None and obj.owner_id == request.user.pk


def health_summary(obj: WebhookEndpoint) -> SafeString:
    if not obj.enabled:
        return two_lines("Disabled", truncated(obj.disabled_reason, 40) if obj.disabled_reason else None)
    if obj.failing_since is not None:
        return two_lines("Failing", format_html("since {}", when(obj.failing_since)))
    return two_lines("Enabled", None)


def secret_page(request: HttpRequest, shown: list[EndpointWithSecret], *, title: str) -> TemplateResponse:
    """The one page a signing secret is ever on, rendered in the answer to the change that made it."""
    context = {
        **admin.site.each_context(request),
        "title": title,
        "opts": WebhookEndpoint._meta,
        "shown": [
            (s.endpoint, s.secret, reverse("admin:fraud_webhookendpoint_change", args=[s.endpoint.pk])) for s in shown
        ],
        "overlap_hours": settings.WEBHOOK_SECRET_OVERLAP_HOURS,
    }
    return TemplateResponse(request, "admin/fraud/webhook_secret.html", context)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    # Short columns, so the list fits a laptop's width beside the admin's sidebar; a long URL or
    # reason is cut, whole in the title. No filter sidebar: the disabled and the failing come
    # first, and the room goes to the URL.
    list_display = ("endpoint", "owner_name", "events", "state", "backlog_count", "last_delivery")
    ordering = HEALTH_ORDERING
    search_fields = ("url", "description", "owner__username")
    form = WebhookEndpointForm
    actions = ["rotate_secret", "disable"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookEndpoint]:
        return webhook_endpoints_health()

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return ("url", "description", "event_types")
        if _own(request, obj):
            return (*OWN_FIELDS, *SHOWN_FIELDS)
        return ("url", "description", "subscribed", "enabled", *SHOWN_FIELDS)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        if _own(request, obj):
            return SHOWN_FIELDS
        return ("url", "description", "subscribed", *SHOWN_FIELDS)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is not None and not _own(request, obj):
            kwargs["form"] = WebhookEndpointEnabledForm
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"owner": request.user})

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # An admin deletes its own endpoints (one at a time, through the service); a client's are
        # the client's to delete: an admin disables them.
        return _own(request, obj) and super().has_delete_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form: Any, change: bool) -> None:
        data = form.cleaned_data
        try:
            if not change:
                created = webhook_endpoint_create(
                    owner=request.user, url=data["url"], event_types=data["event_types"],
                    description=data.get("description", ""), actor=request.user,
                )  # fmt: skip
                obj.pk = created.endpoint.pk
                obj._shown_once = created  # for response_add: this request's object only, never stored
                return
            changes = {name: data[name] for name in form.changed_data if name in OWN_FIELDS}
            if changes:
                webhook_endpoint_update(endpoint=obj, actor=request.user, **changes)
        except EndpointError as exc:  # lost a race the form checked for (the endpoint limit)
            self.message_user(request, f"Not saved. {exc.message}", messages.ERROR)

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        return super().log_addition(request, obj, message) if obj.pk else None

    def response_add(self, request: HttpRequest, obj: WebhookEndpoint, post_url_continue: Any = None) -> HttpResponse:
        created = getattr(obj, "_shown_once", None)
        if created is None:
            return HttpResponseRedirect(reverse("admin:fraud_webhookendpoint_changelist"))
        return secret_page(request, [created], title="Endpoint added: copy its signing secret")

    def delete_model(self, request: HttpRequest, obj: WebhookEndpoint) -> None:
        webhook_endpoint_delete(endpoint=obj, actor=request.user)

    @admin.display(description="Endpoint", ordering="url")
    def endpoint(self, obj: WebhookEndpoint) -> SafeString:
        return two_lines(truncated(obj.url, 48), truncated(obj.description, 48) if obj.description else None)

    @admin.display(description="Owner", ordering="owner__username")
    def owner_name(self, obj: WebhookEndpoint) -> SafeString | str:
        return truncated(obj.owner.get_username(), 18)

    @admin.display(description="Events")
    def events(self, obj: WebhookEndpoint) -> SafeString:
        return format_html_join("", '<span class="cg-line">{}</span>', ((t,) for t in obj.event_types))

    @admin.display(description="Events")
    def subscribed(self, obj: WebhookEndpoint) -> SafeString:
        return self.events(obj)

    @admin.display(description="Health", ordering="enabled")
    def state(self, obj: WebhookEndpoint) -> SafeString:
        return health_summary(obj)

    @admin.display(description="Health")
    def health(self, obj: WebhookEndpoint) -> SafeString:
        if not obj.enabled:
            return format_html(
                "Disabled {}: {}", when(obj.disabled_at) if obj.disabled_at else "", obj.disabled_reason or EMPTY
            )
        return health_summary(obj)

    @admin.display(description="Waiting", ordering="backlog")
    def backlog_count(self, obj: WebhookEndpoint) -> int:
        return getattr(obj, "backlog", 0)

    @admin.display(description="Last delivery", ordering="last_delivery_at")
    def last_delivery(self, obj: WebhookEndpoint) -> SafeString | str:
        at = getattr(obj, "last_delivery_at", None)
        if at is None:
            return EMPTY
        return two_lines(when(at), obj.last_delivery_status)

    @admin.display(description="Delivery log")
    def deliveries(self, obj: WebhookEndpoint) -> SafeString:
        url = reverse("admin:fraud_webhookdelivery_changelist")
        return format_html('<a href="{}?endpoint__id__exact={}">Deliveries and their attempts</a>', url, obj.pk)

    @admin.action(description="Rotate the signing secret (your own endpoints; shown once)")
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> HttpResponse | None:
        others = queryset.exclude(owner=request.user).count()
        if others:
            # A client's receiver would start failing, and an admin would hold the client's secret:
            # clients rotate theirs through the API.
            self.message_user(request, "Only your own endpoints' secrets can be rotated here.", messages.ERROR)
            return None
        rotated = [webhook_endpoint_rotate_secret(endpoint=e, actor=request.user) for e in queryset]
        return secret_page(request, rotated, title="Secret rotated: copy the new signing secret")

    @admin.action(description="Disable the selected endpoints (nothing more is sent)")
    def disable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset.filter(enabled=True):
            webhook_endpoint_update(endpoint=endpoint, actor=request.user, enabled=False)
        self.message_user(request, "Disabled.", messages.SUCCESS)


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ("number", "attempted_at", "status_code", "error", "duration_ms", "response_excerpt")
    readonly_fields = fields
    ordering = ("number",)
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin, admin.ModelAdmin):
    """The delivery log, read-only: what was sent where, every attempt, and a re-send."""

    list_display = ("delivery", "endpoint_url", "state", "tries", "created", "settled")
    list_select_related = ("event", "endpoint", "endpoint__owner")
    list_filter = ("status", "event__type")
    search_fields = ("=event__event_id", "endpoint__url")
    fields = ("event_id", "event_type", "endpoint_link", "status", "attempts", "next_attempt_at", "delivered_at",
              "last_error", "created_at", "payload")  # fmt: skip
    readonly_fields = fields
    inlines = [WebhookAttemptInline]
    actions = ["resend"]

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        # The endpoint's page links to its deliveries; listing every endpoint in the sidebar would not fit.
        return lookup == "endpoint__id__exact" or super().lookup_allowed(lookup, value, request)

    @admin.display(description="Delivery", ordering="created_at")
    def delivery(self, obj: WebhookDelivery) -> SafeString:
        return two_lines(obj.event.type, f"#{obj.pk}")

    @admin.display(description="Endpoint", ordering="endpoint__url")
    def endpoint_url(self, obj: WebhookDelivery) -> SafeString:
        return two_lines(truncated(obj.endpoint.url, 30), truncated(obj.endpoint.owner.get_username(), 22))

    @admin.display(description="Status", ordering="status")
    def state(self, obj: WebhookDelivery) -> SafeString:
        return two_lines(obj.get_status_display(), truncated(obj.last_error, 30) if obj.last_error else None)

    @admin.display(description="Tries", ordering="attempts")
    def tries(self, obj: WebhookDelivery) -> int:
        return obj.attempts

    @admin.display(description="Made", ordering="created_at")
    def created(self, obj: WebhookDelivery) -> SafeString | str:
        return when(obj.created_at, seconds=True)

    @admin.display(description="Sent / next")
    def settled(self, obj: WebhookDelivery) -> SafeString | str:
        if obj.delivered_at is not None:
            return when(obj.delivered_at, seconds=True)
        if obj.status == WebhookDeliveryStatus.PENDING and obj.next_attempt_at is not None:
            return two_lines("next", when(obj.next_attempt_at, seconds=True))
        return EMPTY

    @admin.display(description="Event id")
    def event_id(self, obj: WebhookDelivery) -> str:
        return str(obj.event.event_id)

    @admin.display(description="Event type")
    def event_type(self, obj: WebhookDelivery) -> str:
        return obj.event.type

    @admin.display(description="Endpoint")
    def endpoint_link(self, obj: WebhookDelivery) -> SafeString:
        url = reverse("admin:fraud_webhookendpoint_change", args=[obj.endpoint_id])
        return format_html('<a href="{}">{}</a> ({})', url, obj.endpoint.url, obj.endpoint.owner.get_username())

    @admin.display(description="Body posted")
    def payload(self, obj: WebhookDelivery) -> SafeString:
        pretty = json.dumps(json.loads(event_body(obj.event)), indent=2, ensure_ascii=False)
        return format_html('<pre class="cg-block">{}</pre>', pretty)

    @admin.action(description="Re-send the selected deliveries (same event id)")
    def resend(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        sent, refused = 0, []
        for delivery in queryset.select_related("event", "endpoint"):
            try:
                webhook_delivery_resend(delivery=delivery, actor=request.user)
                sent += 1
            except ResendError as exc:
                refused.append(f"#{delivery.pk}: {exc}")
        if sent:
            self.message_user(request, f"{sent} queued to be sent again.", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not re-sent: " + " ".join(refused), messages.WARNING)
