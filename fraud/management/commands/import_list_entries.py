from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Role, User
from fraud.rules.services import LIST_CSV_COLUMNS, PolicyError, list_import_csv


class Command(BaseCommand):
    help = (
        f"Add allow/block list entries from a CSV ({', '.join(LIST_CSV_COLUMNS)}; the first four required), "
        "each validated and audited as the named admin's change. Bad rows are reported by line and field."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument("--actor", required=True, help="the admin the changes are audited as")

    def handle(self, *args: object, **opts: object) -> None:
        actor = User.objects.filter(username=opts["actor"], role=Role.ADMIN).first()
        if actor is None:
            raise CommandError(f"no admin {opts['actor']!r}")
        path = Path(str(opts["file"]))
        if not path.is_file():
            raise CommandError(f"no such file: {path}")
        try:
            with path.open("rb") as handle:
                report = list_import_csv(actor=actor, file=handle)
        except PolicyError as exc:
            raise CommandError(exc.message) from None
        for line, errors in report.bad:
            self.stderr.write(f"line {line}: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.stdout.write(json.dumps({"rows": report.rows, "added": report.added, "bad": len(report.bad)}))
