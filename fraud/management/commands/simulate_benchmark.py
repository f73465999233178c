from __future__ import annotations

import csv
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from fraud.management.arguments import utc_date
from fraud.modelops.simulator import BENCHMARK_HEADER, benchmark_csv_rows, simulate


class Command(BaseCommand):
    help = (
        "Write a labelled history from the public card-fraud benchmark's process (fraud.modelops.simulator) as a CSV in "
        "the benchmark's own layout, for `import_transactions` and `evaluate_model`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("output", help="the CSV file to write")
        parser.add_argument("--days", type=int, default=70)
        parser.add_argument("--customers", type=int, default=5000)
        parser.add_argument("--terminals", type=int, default=10000)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--start", type=utc_date, default=utc_date("2026-01-01"), help="first day (UTC)")

    def handle(self, *args: object, **opts: object) -> None:
        for name in ("days", "customers", "terminals"):
            if int(opts[name]) < 1:  # type: ignore[call-overload]
                raise CommandError(f"--{name} must be at least 1")
        generated = simulate(
            start=opts["start"],
            days=int(opts["days"]),  # type: ignore[call-overload]
            customers=int(opts["customers"]),  # type: ignore[call-overload]
            terminals=int(opts["terminals"]),  # type: ignore[call-overload]
            seed=int(opts["seed"]),  # type: ignore[call-overload]
        )
        path = Path(str(opts["output"]))
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(BENCHMARK_HEADER)
            writer.writerows(benchmark_csv_rows(generated, start=opts["start"]))
        fraud = sum(1 for s in generated.scenario if s)
        self.stdout.write(json.dumps({"file": str(path), "rows": len(generated), "fraud": fraud}))
