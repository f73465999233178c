"""Users, roles and API clients in the Django admin. Every change goes through a service that
audits it."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.models import Role, User
from accounts.services import api_client_deactivate, api_client_rotate_credentials, user_save, user_state


@admin.register(User)
class CipherGuardUserAdmin(UserAdmin):
    list_display = ("username", "role", "is_active", "last_login", "date_joined")
    list_filter = ("role", "is_active")
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Profile", {"fields": ("first_name", "last_name", "email")}),
        ("Access", {"fields": ("role", "is_active")}),
        ("API quotas (empty: the defaults)", {"fields": ("api_requests_per_hour", "api_burst_per_second")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("username", "role", "password1", "password2")}),)
    readonly_fields = ("last_login", "date_joined")
    actions = ["deactivate_api_clients", "rotate_api_client_credentials"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # users are deactivated, never deleted: the audit trail points at them

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        before = user_state(User.objects.get(pk=obj.pk)) if change else None
        user_save(user=obj, actor=request.user, before=before)

    @admin.action(description="Deactivate the selected API clients (revokes their tokens)")
    def deactivate_api_clients(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        clients = list(queryset.filter(role=Role.API_CLIENT, is_active=True))
        for client in clients:
            api_client_deactivate(client=client, actor=request.user)
        self.message_user(request, f"Deactivated {len(clients)} API client(s).", messages.SUCCESS)

    @admin.action(description="Rotate the selected API clients' credentials")
    def rotate_api_client_credentials(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for client in queryset.filter(role=Role.API_CLIENT):
            password = api_client_rotate_credentials(client=client, actor=request.user)
            # Shown once, to the admin who rotated it; only its hash is stored.
            self.message_user(request, f"New password for {client.username}: {password}", messages.WARNING)
