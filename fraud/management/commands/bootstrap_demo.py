from __future__ import annotations

import json
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Role, User
from accounts.services import user_create
from fraud.features import definitions as fx
from fraud.modelops.generator import default_start
from fraud.modelops.services.history import history_generate, history_replay
from fraud.modelops.services.lifecycle import model_train
from fraud.models import Case, ModelStatus, ModelVersion, Transaction

DEMO_USERS = (("demo-admin", Role.ADMIN), ("demo-analyst", Role.ANALYST), ("demo-client", Role.API_CLIENT))
DEMO_HISTORY = {"days": 60, "customers": 1500, "merchants": 250, "seed": 42}


def demo_history(*, client: User) -> QuerySet[Transaction]:
    """The demo client's generated history (the generator's ids are ``G<seed>-<row>``)."""
    return Transaction.objects.owned_by(client.pk).filter(transaction_id__startswith=f"G{DEMO_HISTORY['seed']}-")


def demo_history_start(*, client: User, now: datetime) -> datetime:
    """The UTC midnight the demo history starts on: on a first run, ``days`` before today (so
    the history ends yesterday); afterwards, the day the first run chose, read back from the
    history it stored.

    Never recomputed from a later "today": the generator gives the same ids for any start but
    moves their timestamps with it, so a replay anchored on a later day would send the stored
    ids with other bodies (IdempotencyConflictError)."""
    first = demo_history(client=client).order_by("timestamp").values_list("timestamp", flat=True).first()
    if first is None:
        return default_start(DEMO_HISTORY["days"], now=now)
    # The earliest row falls on the start day itself: every customer pays 0.3-3 times a day
    # (Poisson), so a first day without a single payment has a chance of e^(-1.6 x customers).
    return first.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


class Command(BaseCommand):
    help = "First-run setup for `make run`: demo users, demo history and an active model. Safe to repeat: nothing that exists is regenerated."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="where the server will listen")

    def handle(self, *args: object, **opts: object) -> None:
        base = str(opts["base_url"]).rstrip("/")
        credentials_file = Path(settings.VAR_DIR) / "demo-credentials.json"
        known = json.loads(credentials_file.read_text()) if credentials_file.exists() else {}
        for username, role in DEMO_USERS:
            if not User.objects.filter(username=username).exists():
                password = secrets.token_urlsafe(15)
                user_create(username=username, password=password, role=role)
                known[username] = password
                self.stdout.write(f"created {role} {username}")
        credentials_file.write_text(json.dumps(known, indent=2))
        os.chmod(credentials_file, 0o600)  # demo passwords: readable by this user only

        client = User.objects.get(username="demo-client")
        # History up to yesterday is loaded in bulk (labelled); yesterday's traffic is then
        # scored through the live path, so the console opens on real cases. "Yesterday" is the
        # first run's: later runs, on any day, keep the dates it chose.
        start = demo_history_start(client=client, now=timezone.now())
        replay_from = start + timedelta(days=DEMO_HISTORY["days"] - 1)
        if not Transaction.objects.filter(owner=client).exists():
            self.stdout.write(f"generating {DEMO_HISTORY['days']} days of demo history (once; about a minute)…")
            written = history_generate(owner=client, start=start, until=replay_from, **DEMO_HISTORY)
            self.stdout.write(f"wrote {written} transactions")
        active = ModelVersion.objects.filter(status=ModelStatus.ACTIVE).first()
        if active is None or active.feature_names != list(fx.FEATURE_NAMES):  # none yet, or an older feature set
            self.stdout.write("training the demo model (once)…")
            version = model_train(activate=True)
            v = version.metrics["validation"]
            self.stdout.write(
                f"activated {version.version}: AUC ROC {v['auc_roc']:.3f}, Average Precision {v['average_precision']:.3f}"
            )
        # Replayed once: the bulk load stops before ``replay_from``, so a row from then on means the
        # replay has run. (Not "no case yet": a replay can open none, and a later day's re-run
        # would then replay again.)
        if not demo_history(client=client).filter(timestamp__gte=replay_from).exists():
            self.stdout.write("scoring yesterday's demo traffic through the API path (once)…")
            scored = history_replay(owner=client, start=start, since=replay_from, **DEMO_HISTORY)
            self.stdout.write(f"scored {scored} transactions, {Case.objects.count()} cases opened for analysts")

        self.stdout.write(self.style.SUCCESS("\nCipherGuard is ready. Demo users:"))
        for username, role in DEMO_USERS:
            self.stdout.write(
                f"  {role:<10} {username:<13} password: {known.get(username, '(set earlier, not by make run)')}"
            )
        when = (timezone.now() - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        password = known.get("demo-client", "<password>")
        self.stdout.write(
            f"\nTry it (admin: {base}/admin/, API docs: {base}/api/v1/docs/):\n\n"
            f"  TOKEN=$(curl -s -X POST {base}/api/v1/auth/token/ -H 'Content-Type: application/json' \\\n"
            f'    -d \'{{"username": "demo-client", "password": "{password}"}}\' | python3 -c \'import sys, json; print(json.load(sys.stdin)["access"])\')\n'
            f'  curl -s -X POST {base}/api/v1/transactions/ -H "Authorization: Bearer $TOKEN" \\\n'
            f"    -H 'Content-Type: application/json' \\\n"
            f'    -d \'{{"transaction_id": "demo-{secrets.token_hex(4)}", "customer_id": "C000042", "merchant_id": "M00007", '
            f'"amount": "1850.00", "currency": "EUR", "country": "NG", "channel": "online", "timestamp": "{when}"}}\'\n'
        )
