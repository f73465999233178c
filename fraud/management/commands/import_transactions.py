from __future__ import annotations

import json
import shlex
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import User
from fraud.modelops.services.history import ImportFileError, ImportReport, history_import_csv

LISTED_BAD_ROWS = 1000  # on stderr; beyond that a count, so a wholly wrong file does not flood the terminal
SUMMARY_BAD_ROWS = 5  # repeated in the closing error, where they stay visible under a long listing


class Command(BaseCommand):
    help = (
        "Load historical transactions from a CSV (docs/import-format.md). Required columns: transaction_id, "
        "timestamp, customer_id, merchant_id, amount; optional: currency, country, channel, label, label_time. "
        "Bad rows are listed and left out; the command then fails unless --skip-bad is given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument("--owner", default="demo-client", help="username of the API client the history belongs to")
        on_bad = parser.add_mutually_exclusive_group()
        on_bad.add_argument(
            "--skip-bad",
            action="store_true",
            help="exit 0 when some rows are bad: import the others and leave those out (listed on stderr)",
        )
        on_bad.add_argument(
            "--strict",
            action="store_true",
            help="exit 1 when any row is bad; the default, accepted so existing scripts keep working",
        )

    def handle(self, *args: object, **opts: object) -> None:
        username = str(opts["owner"])
        owner = User.objects.filter(username=username).first()
        if owner is None:
            raise CommandError(
                f"no user {username!r} to own the history; create it with: "
                f"python manage.py create_user {shlex.quote(username)} --role api_client"
            )
        path = Path(str(opts["file"]))
        if not path.is_file():
            raise CommandError(f"no such file: {path}")
        try:
            with path.open("rb") as handle:
                report = history_import_csv(owner=owner, file=handle)
        except ImportFileError as exc:
            raise CommandError(str(exc)) from None
        for line, errors in report.bad[:LISTED_BAD_ROWS]:
            self.stderr.write(_bad_row(line, errors))
        if len(report.bad) > LISTED_BAD_ROWS:
            self.stderr.write(f"... and {len(report.bad) - LISTED_BAD_ROWS} more bad rows")
        summary = {
            "rows": report.rows,
            "imported": report.imported,
            "already_present": report.already_present,
            "bad": len(report.bad),
            "bad_by_reason": dict(report.bad_by_reason().most_common()),
        }
        self.stdout.write(json.dumps(summary))
        if not report.bad:
            return
        if opts["skip_bad"]:
            self.stderr.write(f"left out {len(report.bad)} bad rows of {report.rows} (--skip-bad)")
            return
        raise CommandError(_failure(report))


def _bad_row(line: int, errors: dict[str, list[str]]) -> str:
    return f"line {line}: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items())


def _failure(report: ImportReport) -> str:
    reasons = "\n".join(f"  {count:>7}  {reason}" for reason, count in report.bad_by_reason().most_common())
    first = "\n".join(f"  {_bad_row(line, errors)}" for line, errors in report.bad[:SUMMARY_BAD_ROWS])
    return (
        f"{len(report.bad)} of {report.rows} rows are bad and were not imported "
        f"({report.imported} imported, {report.already_present} already present).\n"
        f"Reasons:\n{reasons}\nFirst bad rows:\n{first}\n"
        "Fix them and run the import again (rows already imported are left as they are), "
        "or pass --skip-bad to accept the import without them."
    )
