from __future__ import annotations

import json
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandParser

from fraud.services.evaluation import QUALITY_SOURCES, model_quality


class Command(BaseCommand):
    help = (
        "Detection quality under the temporal protocol (train 7 days, skip 7, test 7) on generated data, "
        "over several seeds: AUC ROC, Average Precision and Card Precision@100, mean ± std. Needs no database."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
        parser.add_argument("--source", choices=[*QUALITY_SOURCES, "all"], default="all")
        parser.add_argument("--json", dest="json_path", help="also write the results to this file")

    def handle(self, *args: object, **opts: object) -> None:
        sources = list(QUALITY_SOURCES) if opts["source"] == "all" else [str(opts["source"])]
        report = model_quality(seeds=list(opts["seeds"]), sources=sources, start=datetime(2026, 1, 1, tzinfo=UTC))  # type: ignore[call-overload]
        for source, result in report["sources"].items():
            self.stdout.write(f"{source}: {result['description']}")
            for metric in ("auc_roc", "average_precision", "card_precision_at_100"):
                summary = result["summary"][metric]
                runs = ", ".join(f"{v:.3f}" for v in summary["values"])
                self.stdout.write(f"  {metric:<24} {summary['mean']:.3f} ± {summary['std']:.3f}   ({runs})")
        if opts["json_path"]:
            with open(str(opts["json_path"]), "w") as f:
                json.dump(report, f, indent=2)
