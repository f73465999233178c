"""Django admin for the decision setup: thresholds, allow/block lists and rules. Every change
goes through the rules services (validated, audited, applied at once)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from cipherguard.admin_display import EMPTY, truncated, two_lines
from fraud.models import DecisionThresholds, ListEntry, Rule
from fraud.rules.selectors import thresholds_row
from fraud.rules.services import (
    PolicyError,
    list_entry_add,
    list_entry_check,
    list_entry_remove,
    rule_activate,
    rule_check,
    rule_disable,
    rule_save,
    thresholds_update,
)


@admin.register(DecisionThresholds)
class DecisionThresholdsAdmin(admin.ModelAdmin):
    list_display = ("review_threshold", "decline_threshold", "updated_at", "updated_by")
    fields = ("review_threshold", "decline_threshold", "updated_at", "updated_by")
    readonly_fields = ("updated_at", "updated_by")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not DecisionThresholds.objects.exists()

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # One row, the one scoring uses: a list of it is a detour, so the thresholds open on
        # their form (after a save too, which returns here).
        if not self.has_view_or_change_permission(request):
            return super().changelist_view(request, extra_context)
        return redirect("admin:fraud_decisionthresholds_change", thresholds_row().pk)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: DecisionThresholds | None = None,
    ) -> HttpResponse:
        if obj is not None and obj.pk and context["adminform"].form.errors:
            # The form wrote the refused pair onto the row it shows; the page's heading and
            # breadcrumb name the row, which must read as the pair still in force.
            obj.refresh_from_db(fields=["review_threshold", "decline_threshold"])
            context["subtitle"] = str(obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_model(self, request: HttpRequest, obj: DecisionThresholds, form: Any, change: bool) -> None:
        # The service validates the pair and tells every web process to re-read it.
        thresholds_update(review=obj.review_threshold, decline=obj.decline_threshold, actor=request.user)


class ListEntryForm(forms.ModelForm):
    """What an admin types: a card number (never stored), a customer, a CIDR range…"""

    value = forms.CharField(max_length=64, help_text="card number, customer or merchant id, country code, IP or CIDR")

    class Meta:
        model = ListEntry
        fields = ("kind", "value", "action", "overriding", "owner", "reason", "expires_at")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:  # a field the form itself refused (a missing reason): said once, by the form
            return data
        try:
            list_entry_check(
                **{k: data.get(k) for k in ("kind", "value", "action", "reason", "owner", "expires_at")},
                overriding=bool(data.get("overriding")),
                unique=True,
            )
        except PolicyError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, exc.message)
        return data


class RuleForm(forms.ModelForm):
    class Meta:
        model = Rule
        fields = ("name", "description", "condition", "action", "priority", "shadow")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:  # a field the form itself refused (a priority that is not a number)
            return data
        try:
            rule_check(
                # An edit saves the next version of the same name: the field is read-only then.
                name=(data.get("name") or self.instance.name or "").strip(),
                condition=data.get("condition", ""),
                action=data.get("action", ""),
                priority=data.get("priority"),
            )
        except PolicyError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, exc.message)
        return data


@admin.register(ListEntry)
class ListEntryAdmin(admin.ModelAdmin):
    # Short columns, so the list fits a laptop's width beside the admin's sidebars; long values
    # are cut, whole in the title.
    list_display = ("entry", "what", "client", "why", "added", "state")
    list_select_related = ("owner", "created_by")
    list_filter = ("kind", "action", ("removed_at", admin.EmptyFieldListFilter))
    search_fields = ("display", "reason")
    actions = ["remove"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = ListEntryForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # An entry is never edited in place (the audit trail would lose what it was): remove it
        # and add another.
        return [f.name for f in ListEntry._meta.fields] if obj is not None else []

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request)  # the list and its actions only

    def save_model(self, request: HttpRequest, obj: ListEntry, form: Any, change: bool) -> None:
        try:
            saved = list_entry_add(
                actor=request.user,
                kind=form.cleaned_data["kind"],
                value=form.cleaned_data["value"],
                action=form.cleaned_data["action"],
                reason=form.cleaned_data["reason"],
                owner=form.cleaned_data.get("owner"),
                overriding=form.cleaned_data.get("overriding", False),
                expires_at=form.cleaned_data.get("expires_at"),
            )
        except PolicyError as exc:
            self.message_user(request, f"Not added. {exc.field}: {exc.message}", messages.ERROR)
            return
        obj.pk = saved.pk

    @admin.display(description="Entry", ordering="display")
    def entry(self, obj: ListEntry) -> SafeString | str:
        return truncated(obj.display, 22)

    @admin.display(description="What", ordering="kind")
    def what(self, obj: ListEntry) -> SafeString:
        return two_lines(
            f"{obj.get_action_display()} {obj.get_kind_display().lower()}",
            "beats block entries" if obj.overriding else None,
        )

    @admin.display(description="Client", ordering="owner__username")
    def client(self, obj: ListEntry) -> SafeString | str:
        return truncated(obj.owner.get_username(), 16) if obj.owner else "every client"

    @admin.display(description="Reason")
    def why(self, obj: ListEntry) -> SafeString | str:
        return truncated(obj.reason, 36)

    @admin.display(description="Added", ordering="created_at")
    def added(self, obj: ListEntry) -> SafeString:
        by = truncated(obj.created_by.get_username(), 16) if obj.created_by else EMPTY
        return two_lines(by, f"{timezone.localtime(obj.created_at):%Y-%m-%d}")

    @admin.display(description="Status", ordering="removed_at")
    def state(self, obj: ListEntry) -> SafeString:
        if obj.removed_at is not None:
            return two_lines("Removed", f"{timezone.localtime(obj.removed_at):%Y-%m-%d}")
        if obj.expires_at is not None:
            return two_lines("Live", f"until {timezone.localtime(obj.expires_at):%Y-%m-%d}")
        return two_lines("Live", None)

    @admin.action(description="Remove the selected entries (kept, audited)")
    def remove(self, request: HttpRequest, queryset: QuerySet[ListEntry]) -> None:
        for entry in queryset.filter(removed_at__isnull=True):
            list_entry_remove(actor=request.user, entry=entry)
        self.message_user(request, "Removed.", messages.SUCCESS)


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    # Short columns, so the list fits a laptop's width beside the admin's sidebars; a long name or
    # condition is cut, whole in the title.
    list_display = ("rule", "state", "action", "priority", "condition_start", "activated")
    list_select_related = ("activated_by",)
    list_filter = ("status", "action", "shadow")
    search_fields = ("name", "condition")
    form = RuleForm
    fields = ("name", "description", "condition", "action", "priority", "shadow")
    actions = ["activate", "disable"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # A saved version never changes: saving an edit makes the next version (a draft).
        return ["name"] if obj is not None else []

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Rule, form: Any, change: bool) -> None:
        try:
            saved = rule_save(
                actor=request.user,
                name=obj.name,
                condition=obj.condition,
                action=obj.action,
                priority=obj.priority,
                shadow=obj.shadow,
                description=obj.description,
            )
        except PolicyError as exc:
            self.message_user(request, f"Not saved. {exc.field}: {exc.message}", messages.ERROR)
            return
        obj.pk, obj.version = saved.pk, saved.version
        if change:
            self.message_user(request, f"Saved as {saved}: activate it to replace the live version.", messages.INFO)

    @admin.display(description="Rule", ordering="name")
    def rule(self, obj: Rule) -> SafeString:
        return two_lines(truncated(obj.name, 28), f"version {obj.version}")

    @admin.display(description="Status", ordering="status")
    def state(self, obj: Rule) -> SafeString:
        return two_lines(obj.get_status_display(), "shadow: decides nothing" if obj.shadow else None)

    @admin.display(description="Condition")
    def condition_start(self, obj: Rule) -> SafeString:
        return format_html("<code>{}</code>", truncated(obj.condition, 36))

    @admin.display(description="Activated", ordering="activated_at")
    def activated(self, obj: Rule) -> SafeString | str:
        if obj.activated_at is None:
            return EMPTY
        by = obj.activated_by.get_username() if obj.activated_by else ""
        return two_lines(f"{timezone.localtime(obj.activated_at):%Y-%m-%d}", truncated(by, 16) if by else None)

    @admin.action(description="Activate the selected versions (admins only)")
    def activate(self, request: HttpRequest, queryset: QuerySet[Rule]) -> None:
        for rule in queryset:
            try:
                rule_activate(actor=request.user, rule=rule)
            except PolicyError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                return
        self.message_user(request, "Activated.", messages.SUCCESS)

    @admin.action(description="Disable the selected versions")
    def disable(self, request: HttpRequest, queryset: QuerySet[Rule]) -> None:
        for rule in queryset:
            rule_disable(actor=request.user, rule=rule)
        self.message_user(request, "Disabled.", messages.SUCCESS)
