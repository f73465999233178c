from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.backup import BackupError, backup_create


class Command(BaseCommand):
    help = (
        "Back up the whole database into one file: a manifest (migrations, row counts per table, the audit "
        "chain head, tool versions) and a consistent dump (pg_dump custom format in one exported snapshot on "
        "PostgreSQL; SQLite's online backup otherwise). Restore with `manage.py restore FILE`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--output", required=True, help="the backup file to write (replaced atomically; needs ~2x the dump free)"
        )
        parser.add_argument(
            "--encrypt",
            action="store_true",
            help="seal the file with BACKUP_ENCRYPTION_KEY (AES-256-GCM); restoring then needs the same key",
        )

    def handle(self, *args: object, **opts: object) -> None:
        try:
            summary = backup_create(output=Path(str(opts["output"])), encrypt=bool(opts["encrypt"]))
        except BackupError as exc:
            raise CommandError(f"backup failed: {exc}") from None
        self.stdout.write(json.dumps(summary))
