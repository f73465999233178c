from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models


class Role(models.TextChoices):
    API_CLIENT = "api_client", "API client"
    ANALYST = "analyst", "Analyst"
    ADMIN = "admin", "Admin"


class User(AbstractUser):
    """A person or a machine client. The role decides what it may reach: API clients the API only,
    analysts the console, admins the console and the Django admin."""

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANALYST)
    # API quotas; empty means the defaults (RATE_LIMIT_USER_PER_HOUR, RATE_LIMIT_BURST_PER_SECOND).
    # Admins raise them for high-volume clients.
    api_requests_per_hour = models.PositiveIntegerField(null=True, blank=True)
    api_burst_per_second = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(role__in=Role.values), name="user_role_valid"),
        ]

    @property
    def is_api_client(self) -> bool:
        return self.role == Role.API_CLIENT
