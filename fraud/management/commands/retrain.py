from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from fraud.modelops.services.lifecycle import model_retrain
from fraud.modelops.training import OnnxMismatchError


class Command(BaseCommand):
    help = "Train a candidate on labelled history and compare it with the active model on the same held-back window."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--promote-margin",
            type=float,
            default=None,
            help="promote if AP beats the active model by more than this (default: MODEL_AUTO_PROMOTE_MARGIN; < 0 never)",
        )

    def handle(self, *args: object, **opts: object) -> None:
        try:
            version = model_retrain(seed=int(opts["seed"]), auto_promote_margin=opts["promote_margin"])  # type: ignore[call-overload, arg-type]
        except (ValueError, OnnxMismatchError) as exc:
            raise CommandError(str(exc)) from None
        m = version.metrics
        self.stdout.write(
            json.dumps(
                {
                    "version": version.version,
                    "status": version.status,
                    "candidate": m["validation"],
                    "active": m.get("active_on_same_window"),
                },
                indent=2,
            )
        )
