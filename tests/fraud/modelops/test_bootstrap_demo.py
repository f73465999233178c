"""`make run`'s first-run setup: demo users, history and an active model, once."""

from __future__ import annotations

import json
import stat
from io import StringIO

from django.core.management import call_command

from accounts.models import User
from fraud.models import ModelStatus, ModelVersion, Transaction


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

    again = StringIO()
    call_command("bootstrap_demo", stdout=again)
    assert (Transaction.objects.count(), ModelVersion.objects.count()) == (n_tx, n_models)
    assert "created" not in again.getvalue() and credentials["demo-client"] in again.getvalue()
