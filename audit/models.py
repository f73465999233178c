from __future__ import annotations

from django.conf import settings
from django.db import models


class ActorType(models.TextChoices):
    USER = "user", "User"
    API_CLIENT = "api_client", "API client"
    SYSTEM = "system", "System"


class AuditEvent(models.Model):
    """One entry of the append-only, hash-chained audit trail.

    ``mac`` is HMAC-SHA256 (key from ``AUDIT_MAC_KEY``, never in the database) over the event's
    canonical content and the previous event's ``mac``. Database triggers refuse UPDATE, DELETE
    and TRUNCATE; ``verify_audit_chain`` detects what a table owner could still do around them."""

    seq = models.PositiveBigIntegerField(unique=True)
    occurred_at = models.DateTimeField()
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    actor_label = models.CharField(max_length=150)  # the username at the time, kept if the user is renamed
    event_type = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64, blank=True, default="")
    object_id = models.CharField(max_length=64, blank=True, default="")
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    success = models.BooleanField(default=True)
    origin_ip = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True, default="")
    prev_mac = models.CharField(max_length=64)
    mac = models.CharField(max_length=64)

    class Meta:
        ordering = ["-seq"]
        indexes = [
            models.Index(fields=["object_type", "object_id", "seq"], name="audit_object"),
            models.Index(fields=["actor", "-seq"], name="audit_actor"),
            models.Index(fields=["event_type", "-seq"], name="audit_type"),
            models.Index(fields=["-occurred_at"], name="audit_time"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.event_type} by {self.actor_label}"


class AuditChainHead(models.Model):
    """The chain's last sequence number and MAC, updated in the same transaction as every
    append. Deleting the newest events (or every event) leaves the head pointing past them, so
    verification notices what the chain alone could not."""

    singleton = models.PositiveSmallIntegerField(default=1, unique=True)
    seq = models.PositiveBigIntegerField(default=0)
    mac = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(singleton=1), name="audit_head_single_row")]

    def __str__(self) -> str:
        return f"audit chain head #{self.seq}"
