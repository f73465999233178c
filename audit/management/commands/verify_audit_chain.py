from __future__ import annotations

import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.selectors import audit_chain_verify, audit_checkpoints_verify


class Command(BaseCommand):
    help = (
        "Verify the audit trail's HMAC chain, and the chain against checkpoints saved outside the "
        "database. Exit 0 when intact; 1 naming the first bad event, a forged checkpoint or a "
        "truncated tail."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group()
        source.add_argument(
            "--checkpoints",
            metavar="PATH",
            help="Checkpoint file, or an export of the JSON log, to check against "
            "(default: AUDIT_CHECKPOINT_FILE when it exists).",
        )
        source.add_argument(
            "--no-checkpoints",
            action="store_true",
            help="Check the chain alone (for a database that is not the one the checkpoints came from).",
        )

    def handle(self, *args: object, **opts: object) -> None:
        path, note = self._checkpoint_path(opts)
        chain = audit_chain_verify()
        checkpoints = None
        if path is not None:
            with path.open(encoding="utf-8") as lines:
                checkpoints = audit_checkpoints_verify(lines=lines)

        if chain.ok and (checkpoints is None or checkpoints.ok):
            self.stdout.write(self.style.SUCCESS(f"audit chain intact: {chain.checked} events, head #{chain.head_seq}"))
            if checkpoints is not None:
                note = f"{checkpoints.checked} checkpoints in {path} match, up to #{checkpoints.last_seq}"
            self.stdout.write(note)
            return
        if not chain.ok:
            where = f" (first bad event: #{chain.first_bad_seq})" if chain.first_bad_seq else ""
            self.stderr.write(f"audit chain BROKEN after {chain.checked} good events: {chain.problem}{where}")
        if checkpoints is not None:
            for problem in checkpoints.problems:
                self.stderr.write(f"audit chain BROKEN against the checkpoints in {path}: {problem}")
        sys.exit(1)

    def _checkpoint_path(self, opts: dict[str, object]) -> tuple[Path | None, str]:
        if opts["no_checkpoints"]:
            return None, "checkpoints not checked (--no-checkpoints)"
        if opts["checkpoints"]:
            path = Path(str(opts["checkpoints"]))
            if not path.is_file():
                raise CommandError(f"no checkpoint file at {path}")
            return path, ""
        path = Path(settings.AUDIT_CHECKPOINT_FILE)
        if path.is_file():
            return path, ""
        # Said out loud: without checkpoints a deleted tail with a rewound head row goes unseen.
        return None, f"checkpoints not checked: no file at AUDIT_CHECKPOINT_FILE ({path})"
