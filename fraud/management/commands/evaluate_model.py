from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import User
from fraud.management.arguments import utc_date
from fraud.modelops.services.evaluation import Protocol, model_evaluate
from fraud.models import ModelVersion


class Command(BaseCommand):
    help = "Temporal protocol: train N days, skip D (labels unknown), test T days. AUC ROC, Average Precision, Card Precision@k."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: object) -> CommandParser:
        # The protocol's `--version V` names a model; it replaces Django's own --version flag.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--version", help="evaluate this stored model instead of training one on the training window"
        )
        parser.add_argument("--train-start", type=utc_date, required=True)
        parser.add_argument("--train-days", type=int, default=7)
        parser.add_argument("--delay-days", type=int, default=7)
        parser.add_argument("--test-days", type=int, default=7)
        parser.add_argument("--k", type=int, default=100)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--json", dest="json_file", help="also write the report to this file")
        parser.add_argument("--owner", help="only this API client's history (default: every client's)")

    def handle(self, *args: object, **opts: object) -> None:
        for name in ("train_days", "test_days", "k"):
            if int(opts[name]) < 1:  # type: ignore[call-overload]
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1")
        if int(opts["delay_days"]) < 0:  # type: ignore[call-overload]
            raise CommandError("--delay-days must be 0 or more")
        version = None
        if opts["version"]:
            version = ModelVersion.objects.filter(version=opts["version"]).first()
            if version is None:
                raise CommandError(f"no model version {opts['version']!r}")
        owner = None
        if opts["owner"]:
            owner = User.objects.filter(username=opts["owner"]).first()
            if owner is None:
                raise CommandError(f"no user {opts['owner']!r}")
        protocol = Protocol(
            train_start=opts["train_start"],  # type: ignore[arg-type]
            train_days=int(opts["train_days"]),  # type: ignore[call-overload]
            delay_days=int(opts["delay_days"]),  # type: ignore[call-overload]
            test_days=int(opts["test_days"]),  # type: ignore[call-overload]
            k=int(opts["k"]),  # type: ignore[call-overload]
        )
        try:
            report = model_evaluate(protocol=protocol, version=version, seed=int(opts["seed"]), owner=owner)  # type: ignore[call-overload]
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        text = json.dumps(report, indent=2)
        if opts["json_file"]:
            Path(str(opts["json_file"])).write_text(text + "\n")
        self.stdout.write(text)
