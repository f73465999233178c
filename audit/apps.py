from __future__ import annotations

from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        # Registers the checkpoint task in every process: beat sends it by name. Imported here,
        # not at the top: an AppConfig is imported before the app's models exist.
        from audit import tasks  # noqa: F401
