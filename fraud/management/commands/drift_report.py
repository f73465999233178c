from __future__ import annotations

from datetime import date, timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from fraud.modelops.services.drift import drift_report_compute


class Command(BaseCommand):
    help = "Compute the drift report (PSI of score and features against training data) for a day (default: yesterday, UTC)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--day", help="YYYY-MM-DD")

    def handle(self, *args: object, **opts: object) -> None:
        try:
            day = date.fromisoformat(str(opts["day"])) if opts["day"] else timezone.now().date() - timedelta(days=1)
        except ValueError:
            raise CommandError("--day must look like 2026-11-26") from None
        reports = drift_report_compute(day=day)
        if not reports:
            self.stdout.write(f"nothing scored on {day} by a model with reference distributions")
        for r in reports:
            worst = sorted(r.feature_psi.items(), key=lambda kv: -kv[1])[:3]
            self.stdout.write(
                f"{day} {r.model_version.version}: n={r.n} score PSI {r.score_psi:.4f}; top features {worst}"
            )
