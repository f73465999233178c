from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import User
from fraud.modelops.services.history import ImportFileError, history_import_csv


class Command(BaseCommand):
    help = (
        "Load historical transactions from a CSV (docs/import-format.md). Required columns: transaction_id, "
        "timestamp, customer_id, merchant_id, amount; optional: currency, country, channel, label, label_time."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument("--owner", default="demo-client", help="username of the API client the history belongs to")
        parser.add_argument(
            "--strict", action="store_true", help="exit 1 when any row is bad (they are skipped either way)"
        )

    def handle(self, *args: object, **opts: object) -> None:
        owner = User.objects.filter(username=opts["owner"]).first()
        if owner is None:
            raise CommandError(f"no user {opts['owner']!r}")
        path = Path(str(opts["file"]))
        if not path.is_file():
            raise CommandError(f"no such file: {path}")
        try:
            with path.open("rb") as handle:
                report = history_import_csv(owner=owner, file=handle)
        except ImportFileError as exc:
            raise CommandError(str(exc)) from None
        for line, errors in report.bad[:1000]:
            self.stderr.write(f"line {line}: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        if len(report.bad) > 1000:
            self.stderr.write(f"... and {len(report.bad) - 1000} more bad rows")
        summary = {
            "rows": report.rows,
            "imported": report.imported,
            "already_present": report.already_present,
            "bad": len(report.bad),
        }
        self.stdout.write(json.dumps(summary))
        if opts["strict"] and report.bad:
            raise CommandError(f"{len(report.bad)} bad rows")
