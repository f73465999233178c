from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from fraud.modelops.costs import MAX_ROW_US, MAX_SESSION_MB
from fraud.modelops.services.evaluation import (
    QUALITY_SOURCES,
    ROBUSTNESS_METRICS,
    candidate_costs,
    model_quality,
    model_robustness,
)
from fraud.modelops.training import ALGORITHM, CANDIDATES, TABLE_CANDIDATES


class Command(BaseCommand):
    help = (
        "Detection quality under the temporal protocol (train 7 days, skip 7, test 7) on generated data, "
        "over several seeds: AUC ROC, Average Precision and Card Precision@100, mean ± std. Needs no database."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
        parser.add_argument("--source", choices=[*QUALITY_SOURCES, "all"], default="all")
        parser.add_argument(
            "--candidates", nargs="+", choices=[*CANDIDATES, "all"],
            help=f"models to compare ({ALGORITHM} is what production trains); 'all' for every candidate. "
            f"Default: {ALGORITHM}, or with --family the rows of docs/model.md's table",
        )  # fmt: skip
        parser.add_argument("--json", dest="json_path", help="also write the results to this file")
        parser.add_argument(
            "--family", action="store_true",
            help="the robustness table: every candidate on every process of the simulation family "
            "(fraud.modelops.simulator.FAMILY) and the held-out ones, mean and worst case per metric",
        )  # fmt: skip
        parser.add_argument(
            "--markdown", dest="markdown_path",
            help="with --family: also write the tables as docs/model.md shows them to this file",
        )  # fmt: skip
        parser.add_argument("--customers", type=int, default=5000, help="with --family: customers per process")
        parser.add_argument("--terminals", type=int, default=10000, help="with --family: terminals per process")

    def handle(self, *args: object, **opts: object) -> None:
        if opts["family"]:
            return self.robustness(opts)
        sources = list(QUALITY_SOURCES) if opts["source"] == "all" else [str(opts["source"])]
        candidates = self.candidates(opts, default=(ALGORITHM,))
        report = model_quality(
            seeds=list(opts["seeds"]),  # type: ignore[call-overload]
            sources=sources,
            start=datetime(2026, 1, 1, tzinfo=UTC),
            candidates=candidates,
        )
        self.stdout.write(f"seeds {report['seeds']}; train 7 days from day 42, skip 7, test 7; mean ± std")
        for source, result in report["sources"].items():
            self.stdout.write(f"\n{source}: {result['description']}")
            self.stdout.write(
                f"  {'model':<30} {'AUC ROC':>15} {'Avg Precision':>15} {'Card P@100':>15} {'Brier':>17} {'ECE':>17}"
            )
            for candidate, data in result["candidates"].items():
                cells = [
                    f"{data['summary'][m]['mean']:.3f} ± {data['summary'][m]['std']:.3f}"
                    for m in ("auc_roc", "average_precision", "card_precision_at_100")
                ] + [f"{data['summary'][m]['mean']:.5f} ± {data['summary'][m]['std']:.5f}" for m in ("brier", "ece")]
                self.stdout.write(
                    f"  {candidate:<30} " + " ".join(f"{c:>{17 if i > 2 else 15}}" for i, c in enumerate(cells))
                )
            self.stdout.write("  each fraud scenario's AUC against the legitimate test rows:")
            for candidate, data in result["candidates"].items():
                parts = [
                    f"{key[4:]} {value['mean']:.3f} ± {value['std']:.3f}"
                    for key, value in data["summary"].items()
                    if key.startswith("auc:")
                ]
                self.stdout.write(f"  {candidate:<30} " + "; ".join(parts))
        if opts["json_path"]:
            with open(str(opts["json_path"]), "w") as f:
                json.dump(report, f, indent=2)

    @staticmethod
    def candidates(opts: dict[str, object], *, default: tuple[str, ...]) -> tuple[str, ...]:
        chosen = opts["candidates"]
        if not chosen:
            return default
        return CANDIDATES if "all" in chosen else tuple(chosen)  # type: ignore[operator,arg-type]

    def robustness(self, opts: dict[str, object]) -> None:
        candidates = self.candidates(opts, default=TABLE_CANDIDATES)
        report = model_robustness(
            candidates=candidates,
            seeds=list(opts["seeds"]),  # type: ignore[call-overload]
            start=datetime(2026, 1, 1, tzinfo=UTC),
            customers=int(opts["customers"]),  # type: ignore[call-overload]
            terminals=int(opts["terminals"]),  # type: ignore[call-overload]
            progress=lambda line: self.stderr.write(line),
        )
        names = {"auc_roc": "AUC ROC", "average_precision": "Avg Precision", "card_precision_at_100": "Card P@100"}
        self.stdout.write(
            f"seeds {report['seeds']} on each of {len(report['family'])} processes (chosen on) and "
            f"{len(report['held_out'])} held out (reported only); train 7 days from day 42, skip 7, test 7"
        )
        self.stdout.write(
            f"  {'model':<30} "
            + " ".join(f"{names[m] + ' mean / worst / held-out worst':>42}" for m in ROBUSTNESS_METRICS)
        )
        for candidate, data in report["candidates"].items():
            cells = []
            for metric in ROBUSTNESS_METRICS:
                s = data["summary"][metric]
                cells.append(f"{s['mean']:.3f} / {s['worst']:.3f} / {s.get('held_out_worst', float('nan')):.3f}")
            self.stdout.write(f"  {candidate:<30} " + " ".join(f"{c:>42}" for c in cells))
        self.stdout.write("  per process (AUC / AP / CP@100):")
        for candidate, data in report["candidates"].items():
            for process, cell in data["processes"].items():
                self.stdout.write(
                    f"  {candidate:<30} {process:<24} " + " / ".join(f"{cell[m]:.3f}" for m in ROBUSTNESS_METRICS)
                )
        costs = candidate_costs(
            candidates=candidates,
            start=datetime(2026, 1, 1, tzinfo=UTC),
            customers=int(opts["customers"]),  # type: ignore[call-overload]
            terminals=int(opts["terminals"]),  # type: ignore[call-overload]
        )
        report["costs"] = costs
        self.stdout.write(
            f"  serving costs (a fresh process, one thread; limits: session <= {MAX_SESSION_MB:.0f} MB, "
            f"one row <= {MAX_ROW_US:.0f} us):"
        )
        for candidate, cost in costs.items():
            self.stdout.write(
                f"  {candidate:<30} artifact {cost['artifact_mb']:>6.2f} MB  session {cost['session_mb']:>6.1f} MB  "
                f"one row {cost['row_us']:>6.1f} us  {'within limits' if cost['within_limits'] else 'OVER LIMITS'}"
            )
        if opts["json_path"]:
            with open(str(opts["json_path"]), "w") as f:
                json.dump(report, f, indent=2)
        if opts["markdown_path"]:
            with open(str(opts["markdown_path"]), "w") as f:
                f.write(robustness_markdown(report))


def robustness_markdown(report: dict[str, Any]) -> str:
    """The robustness report as docs/model.md's two tables: mean / worst / held-out worst per
    metric with the serving costs, then Average Precision per process."""
    lines = [
        "| model | AUC ROC mean / worst / held-out worst | Average Precision | Card Precision@100 "
        "| session | one row | within limits |",
        "|---|---|---|---|---|---|---|",
    ]
    for candidate, data in report["candidates"].items():
        cells = [
            f"{s['mean']:.3f} / {s['worst']:.3f} / {s.get('held_out_worst', float('nan')):.3f}"
            for s in (data["summary"][m] for m in ROBUSTNESS_METRICS)
        ]
        cost = report["costs"][candidate]
        lines.append(
            f"| {candidate} | {' | '.join(cells)} | {cost['session_mb']:.1f} MB | {cost['row_us']:.1f} µs "
            f"| {'yes' if cost['within_limits'] else 'no'} |"
        )
    candidates = list(report["candidates"])
    lines += ["", "| process | " + " | ".join(candidates) + " |", "|---" * (len(candidates) + 1) + "|"]
    for process in [*report["family"], *report["held_out"]]:
        values = [report["candidates"][c]["processes"][process]["average_precision"] for c in candidates]
        lines.append(f"| {process} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    return "\n".join(lines) + "\n"
