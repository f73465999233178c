from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from accounts.models import User


@admin.register(User)
class CipherGuardUserAdmin(UserAdmin):
    list_display = ("username", "role", "is_active", "last_login", "date_joined")
    list_filter = ("role", "is_active")
    fieldsets = (*UserAdmin.fieldsets, ("CipherGuard", {"fields": ("role",)}))
    add_fieldsets = (*UserAdmin.add_fieldsets, ("CipherGuard", {"fields": ("role",)}))
