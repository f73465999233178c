"""`make run`'s first-run setup: demo users, history and an active model, once."""

from __future__ import annotations

import json
import stat
from datetime import UTC, date, datetime
from io import StringIO

import time_machine
from django.core.management import call_command
from django.db.models import Max, Min

from accounts.models import User
from fraud.models import Case, DriftReport, ModelStatus, ModelVersion, Transaction


def test_the_first_run_sets_everything_up_and_the_second_changes_nothing(
    db, settings, tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    settings.VAR_DIR = tmp_path
    monkeypatch.setattr(
        "fraud.management.commands.bootstrap_demo.DEMO_HISTORY",
        {"days": 60, "customers": 300, "merchants": 30, "seed": 3},
    )
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("bootstrap_demo", "--base-url", "http://127.0.0.1:8123", stdout=out)

    assert {u.username: u.role for u in User.objects.all()} == {
        "demo-admin": "admin",
        "demo-analyst": "analyst",
        "demo-client": "api_client",
    }
    credentials = json.loads((tmp_path / "demo-credentials.json").read_text())
    assert all(User.objects.get(username=name).check_password(pw) for name, pw in credentials.items())
    assert stat.S_IMODE((tmp_path / "demo-credentials.json").stat().st_mode) == 0o600
    printed = out.getvalue()
    assert credentials["demo-client"] in printed and "http://127.0.0.1:8123/api/v1/transactions/" in printed
    n_tx, n_models = Transaction.objects.count(), ModelVersion.objects.count()
    assert n_tx > 1000 and ModelVersion.objects.filter(status=ModelStatus.ACTIVE).count() == 1
    # One progress line per step, each with its time; the drift page has yesterday's report.
    steps = [line for line in printed.splitlines() if line.endswith(" s)")]
    assert [line.split(":")[0] for line in steps] == [
        "demo users", "demo history", "demo model", "yesterday's traffic", "drift report",
    ]  # fmt: skip
    assert "through the batch scoring path" in printed
    yesterday = Transaction.objects.aggregate(last=Max("timestamp"))["last"].date()
    assert DriftReport.objects.filter(day=yesterday).exists() and f"drift report: {yesterday}" in printed

    again = StringIO()
    call_command("bootstrap_demo", stdout=again)
    assert (Transaction.objects.count(), ModelVersion.objects.count()) == (n_tx, n_models)
    assert "created" not in again.getvalue() and credentials["demo-client"] in again.getvalue()


def test_a_later_days_run_after_a_first_run_that_opened_no_case_changes_nothing(
    db, settings, tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    """The history's dates come from the first run's "today": a run on a later UTC day must not
    replay it from its own today, which would resend the stored ids with new bodies."""
    settings.VAR_DIR = tmp_path
    settings.FRAUD_CASE_DECISIONS = []  # the first run's replay opens no case
    monkeypatch.setattr(
        "fraud.management.commands.bootstrap_demo.DEMO_HISTORY",
        {"days": 60, "customers": 300, "merchants": 30, "seed": 3},
    )
    first_run = time_machine.travel(datetime(2026, 12, 6, 23, 59, tzinfo=UTC), tick=False)
    with first_run, django_capture_on_commit_callbacks(execute=True):
        call_command("bootstrap_demo", stdout=StringIO())
    assert not Case.objects.exists()
    stored = set(Transaction.objects.values_list("transaction_id", "timestamp", "request_hash", "fraud_score"))
    times = Transaction.objects.aggregate(first=Min("timestamp"), last=Max("timestamp"))
    # 60 days ending on the first run's yesterday, whose traffic was scored live.
    assert times["first"].date() == date(2026, 10, 7) and times["last"].date() == date(2026, 12, 5)
    assert Transaction.objects.filter(timestamp__date=date(2026, 12, 5), fraud_score__isnull=False).exists()
    n_models = ModelVersion.objects.count()

    for later in (
        datetime(2026, 12, 7, 0, 1, tzinfo=UTC),  # two minutes on, a new UTC day
        datetime(2026, 12, 8, 12, 0, tzinfo=UTC),
        datetime(2027, 3, 1, 9, 30, tzinfo=UTC),  # after the whole history
    ):
        again = StringIO()
        with time_machine.travel(later, tick=False), django_capture_on_commit_callbacks(execute=True):
            call_command("bootstrap_demo", stdout=again)
        assert "generated" not in again.getvalue() and "replayed" not in again.getvalue()
        assert "demo history: already done" in again.getvalue()
        assert set(Transaction.objects.values_list("transaction_id", "timestamp", "request_hash", "fraud_score")) == (
            stored
        )
        assert ModelVersion.objects.count() == n_models and not Case.objects.exists()
