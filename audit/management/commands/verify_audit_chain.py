from __future__ import annotations

import sys

from django.core.management.base import BaseCommand

from audit.selectors import audit_chain_verify


class Command(BaseCommand):
    help = "Verify the audit trail's HMAC chain. Exit 0 when intact; 1 naming the first bad event."

    def handle(self, *args: object, **opts: object) -> None:
        report = audit_chain_verify()
        if report.ok:
            self.stdout.write(
                self.style.SUCCESS(f"audit chain intact: {report.checked} events, head #{report.head_seq}")
            )
            return
        where = f" (first bad event: #{report.first_bad_seq})" if report.first_bad_seq else ""
        self.stderr.write(f"audit chain BROKEN after {report.checked} good events: {report.problem}{where}")
        sys.exit(1)
