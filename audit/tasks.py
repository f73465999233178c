"""The audit trail's scheduled task (see CELERY_BEAT_SCHEDULE): an interface only. Imported at
start-up by ``AuditConfig.ready`` so that every process knows it by name."""

from __future__ import annotations

from celery import shared_task

from audit import services


@shared_task(name="audit.tasks.audit_checkpoint_write")
def audit_checkpoint_write() -> int:
    """Anchor the audit chain head outside the database; returns the checkpointed sequence."""
    return services.audit_checkpoint_write().seq
