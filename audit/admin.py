"""The audit log, read-only, for admins. Looking at it is itself audited."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from audit.models import ActorType, AuditEvent
from audit.services import audit_record
from cipherguard.admin_display import EMPTY, ReadOnlyAdmin, truncated, two_lines, when


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin, admin.ModelAdmin):
    # Short columns, so a page of events fits a laptop's width beside the admin's sidebars: long
    # labels, object ids and IPv6 addresses are cut (whole in the title), and what is rarely
    # scanned for is on the event's page.
    list_display = ("seq", "moment", "actor_and_origin", "event", "subject", "ok")
    list_filter = (
        "event_type",
        "actor_type",
        ("actor", admin.RelatedOnlyFieldListFilter),
        "success",
        "object_type",
        ("occurred_at", admin.DateFieldListFilter),
    )
    search_fields = ("actor_label", "object_id", "request_id", "event_type")
    date_hierarchy = "occurred_at"
    show_full_result_count = False
    list_per_page = 50

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in AuditEvent._meta.fields]

    @admin.display(description="When", ordering="occurred_at")
    def moment(self, obj: AuditEvent) -> SafeString | str:
        return when(obj.occurred_at, seconds=True)

    @admin.display(description="Actor, from", ordering="actor_label")
    def actor_and_origin(self, obj: AuditEvent) -> SafeString:
        detail = [obj.get_actor_type_display()] if obj.actor_type != ActorType.USER else []
        if obj.origin_ip:
            detail.append(truncated(obj.origin_ip, 18))
        return two_lines(truncated(obj.actor_label, 22), format_html_join(" · ", "{}", ((d,) for d in detail)))

    @admin.display(description="Event", ordering="event_type")
    def event(self, obj: AuditEvent) -> SafeString:
        # A long dotted type ("api_client.credentials_rotated") may wrap after its dot.
        return format_html_join(format_html("{}<wbr>", "."), "{}", ((part,) for part in obj.event_type.split(".")))

    @admin.display(description="Object", ordering="object_type")
    def subject(self, obj: AuditEvent) -> SafeString | str:
        if not obj.object_type and not obj.object_id:
            return EMPTY
        return two_lines(obj.object_type or EMPTY, truncated(obj.object_id, 18) if obj.object_id else None)

    @admin.display(description="OK", boolean=True, ordering="success")
    def ok(self, obj: AuditEvent) -> bool:
        return obj.success

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        if response.status_code == 200:
            audit_record(event_type="audit.viewed", actor=request.user, after={"filters": dict(request.GET.items())})
        return response

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().change_view(request, object_id, form_url, extra_context)
        if response.status_code == 200:
            audit_record(
                event_type="audit.viewed", actor=request.user, object_type="audit.auditevent", object_id=object_id
            )
        return response
