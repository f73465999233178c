"""The audit log, read-only, for admins. Looking at it is itself audited."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from audit.models import AuditEvent
from audit.services import audit_record


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = (
        "seq",
        "occurred_at",
        "actor_label",
        "actor_type",
        "event_type",
        "object_type",
        "object_id",
        "success",
        "origin_ip",
    )
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

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

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
