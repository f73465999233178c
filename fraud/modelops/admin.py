"""Django admin for model versions: activation and rollback, shadow scoring, and the figures to
decide with. Models come from training, never from a form."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.loader import render_to_string

from fraud.modelops import selectors
from fraud.modelops.services.lifecycle import model_version_activate, model_version_set_shadow
from fraud.models import ModelStatus, ModelVersion


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = (
        "version",
        "status",
        "shadow",
        "algorithm",
        "validation_auc",
        "validation_ap",
        "active_ap_same_window",
        "created_at",
        "activated_at",
    )
    list_filter = ("status", "shadow", "algorithm")
    exclude = ("artifact",)
    actions = ["activate", "start_shadow", "stop_shadow"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in ModelVersion._meta.fields if f.name != "artifact"] + ["shadow_comparison"]

    @admin.display(description="Active model's AP, same window")
    def active_ap_same_window(self, obj: ModelVersion) -> str:
        value = obj.metrics.get("active_on_same_window", {}).get("average_precision")
        return f"{value:.4f}" if value is not None else "—"

    @admin.display(description="Shadow scores beside the live model")
    def shadow_comparison(self, obj: ModelVersion) -> str:
        return render_to_string("admin/fraud/shadow_comparison.html", selectors.shadow_comparison(version_id=obj.pk))

    @admin.action(description="Run the selected model in shadow (scores stored, never used)")
    def start_shadow(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one model.", messages.ERROR)
            return
        try:
            version = model_version_set_shadow(version=queryset.get(), on=True, actor=request.user)
        except ValueError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"{version.version} now scores live traffic in shadow.", messages.SUCCESS)

    @admin.action(description="Stop shadow scoring")
    def stop_shadow(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        for version in queryset.filter(shadow=True):
            model_version_set_shadow(version=version, on=False, actor=request.user)
        self.message_user(request, "Shadow scoring stopped.", messages.SUCCESS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # models come from training, never from a form

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="AUC ROC")
    def validation_auc(self, obj: ModelVersion) -> str:
        value = obj.metrics.get("validation", {}).get("auc_roc")
        return f"{value:.4f}" if value is not None else "—"

    @admin.display(description="Average Precision")
    def validation_ap(self, obj: ModelVersion) -> str:
        value = obj.metrics.get("validation", {}).get("average_precision")
        return f"{value:.4f}" if value is not None else "—"

    @admin.action(description="Activate, or roll back to, the selected model (retires the current one)")
    def activate(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one model to activate.", messages.ERROR)
            return
        version = queryset.get()
        if version.status == ModelStatus.ACTIVE:
            self.message_user(request, f"{version.version} is already active.", messages.WARNING)
            return
        model_version_activate(version=version, actor=request.user)
        self.message_user(request, f"{version.version} is now the active model.", messages.SUCCESS)
