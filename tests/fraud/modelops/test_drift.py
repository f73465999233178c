from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.core.management import call_command

from fraud.features import definitions as fx
from fraud.modelops.psi import psi, reference_bins, shares
from fraud.modelops.services.history import history_generate, history_replay
from fraud.modelops.services.lifecycle import model_train
from fraud.models import DriftReport

START = datetime(2026, 1, 1, tzinfo=UTC)


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    reference = rng.normal(0, 1, 20_000)
    bins = reference_bins(reference)
    assert psi(bins["shares"], shares(rng.normal(0, 1, 20_000), bins["edges"])) < 0.01
    assert psi(bins["shares"], shares(rng.normal(1.5, 1, 20_000), bins["edges"])) > 0.25
    constant = reference_bins(np.zeros(100))  # a constant feature: quantile edges collapse to one
    assert psi(constant["shares"], shares(np.zeros(50), constant["edges"])) < 1e-9
    assert psi(constant["shares"], shares(np.ones(50), constant["edges"])) > 1


def test_a_daily_report_compares_live_traffic_with_the_training_data(alice, django_capture_on_commit_callbacks, capsys):
    args = {"days": 60, "customers": 250, "merchants": 30, "seed": 5, "start": START}
    history_generate(owner=alice, until=START + timedelta(days=59), **args)
    with django_capture_on_commit_callbacks(execute=True):
        version = model_train(activate=True)
    assert set(version.metrics["reference"]["features"]) == set(fx.FEATURE_NAMES)
    scored = history_replay(owner=alice, since=START + timedelta(days=59), **args)
    assert scored > 100

    call_command("drift_report", "--day", "2026-03-01")
    report = DriftReport.objects.get(model_version=version)
    assert report.n == scored
    assert 0 <= report.score_psi < 0.5  # the same generator: no big shift
    assert set(report.feature_psi) == set(fx.FEATURE_NAMES) - {"is_night", "is_weekend"}
    assert f"n={scored}" in capsys.readouterr().out

    call_command("drift_report", "--day", "2026-03-01")  # recomputing replaces, never duplicates
    assert DriftReport.objects.count() == 1


@pytest.mark.parametrize("day", ["2026-02-30", "yesterday"])
def test_a_bad_day_is_refused(db, day):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--day"):
        call_command("drift_report", "--day", day)
