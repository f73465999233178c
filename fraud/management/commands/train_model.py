from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from fraud.modelops.services.lifecycle import model_train
from fraud.modelops.training import OnnxMismatchError


class Command(BaseCommand):
    help = "Train a model on labelled history (temporal split), export it to ONNX, store it, optionally activate it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--activate", action="store_true", help="make the new model the active one")
        parser.add_argument("--validation-days", type=int, default=14)
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args: object, **opts: object) -> None:
        try:
            version = model_train(
                validation_days=int(opts["validation_days"]),  # type: ignore[call-overload]
                seed=int(opts["seed"]),  # type: ignore[call-overload]
                activate=bool(opts["activate"]),
            )
        except (ValueError, OnnxMismatchError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            json.dumps({"version": version.version, "status": version.status, "metrics": version.metrics}, indent=2)
        )
