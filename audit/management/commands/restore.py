from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.backup import BackupError, backup_restore


class Command(BaseCommand):
    help = (
        "Restore a file made by `manage.py backup` into the configured database (DATABASE_URL), then verify it: "
        "every table's row count, the migration state and the audit chain head must equal the backup's "
        "manifest, and the audit chain must verify (with the same AUDIT_MAC_KEY). Encrypted files need "
        "BACKUP_ENCRYPTION_KEY. Exit 0 when verified; 1 with the reason otherwise. Stop every writer first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument(
            "--clean",
            action="store_true",
            help=(
                "allow a non-empty target: DROP every object the backup holds (tables, their data, functions, "
                "triggers) and create it afresh from the backup, in one transaction (PostgreSQL), or overwrite "
                "the whole file (SQLite). DROP, because the audit tables refuse DELETE and TRUNCATE. Tables the "
                "backup does not hold are left in place and fail the verification. Without it, a non-empty "
                "target is refused"
            ),
        )
        parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")

    def handle(self, *args: object, **opts: object) -> None:
        as_json = bool(opts["json"])
        try:
            report = backup_restore(path=Path(str(opts["file"])), clean=bool(opts["clean"]))
        except BackupError as exc:
            if as_json:
                self.stdout.write(json.dumps({"ok": False, "restored": False, "problems": [str(exc)]}))
            raise CommandError(f"nothing restored: {exc}") from None
        if as_json:
            self.stdout.write(json.dumps(report.as_dict()))
        else:
            chain = report.chain
            self.stdout.write(
                f"restored {report.rows} rows in {report.tables} tables into {report.database} "
                f"in {report.seconds:.1f} s (load {report.load_seconds:.1f} s, verify {report.verify_seconds:.1f} s); "
                f"audit chain {'intact' if chain['ok'] else 'BROKEN'}: {chain['events']} events, "
                f"head #{chain['head_seq']}; migrations {report.migrations}"
            )
            if report.pending_migrations:
                self.stdout.write(
                    f"this code has {len(report.pending_migrations)} migrations the backup predates: "
                    "run `manage.py migrate` before starting the service"
                )
        if not report.ok:
            raise CommandError(
                "restored, but it does not match the backup: "
                + "; ".join(report.problems)
                + ". Do not point the service at this database."
            )
