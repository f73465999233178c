"""Generator, training, ONNX export and model activation."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError

from fraud.features import definitions as fx
from fraud.modelops.generator import SCENARIOS, generate
from fraud.modelops.services.lifecycle import model_version_activate, training_windows
from fraud.modelops.training import ONNX_TOLERANCE
from fraud.models import ModelStatus, ModelVersion, Transaction
from fraud.scoring.runtime import runtime
from fraud.scoring.scorer import ArtifactIntegrityError, OnnxScorer, calibrate
from tests.factories import ModelVersionFactory


def test_the_generator_gives_the_same_data_for_the_same_arguments():
    args = {"start": datetime(2026, 1, 1, tzinfo=UTC), "days": 20, "customers": 80, "merchants": 15, "seed": 11}
    a, b = generate(**args), generate(**args)
    assert a.transaction_id == b.transaction_id and a.amount == b.amount and a.scenario == b.scenario
    assert generate(**{**args, "seed": 12}).amount != a.amount


def test_the_generator_mixes_every_fraud_scenario_at_a_realistic_rate(small_history):
    counts = Counter(s for s in small_history.scenario if s)
    assert set(counts) == set(SCENARIOS)
    assert 0.003 <= small_history.fraud_rate <= 0.015
    assert small_history.ts_us == sorted(small_history.ts_us)
    assert all(
        lt > ts
        for lt, ts, s in zip(small_history.label_time_us, small_history.ts_us, small_history.scenario, strict=True)
        if s
    )


def test_a_foreign_cash_out_is_in_the_local_currency_and_every_other_payment_in_its_countrys(small_history):
    from fraud.modelops.generator import CURRENCY, LOCAL_CURRENCY, WHOLE_UNIT_CURRENCIES
    from fraud.transactions.validation import currency_codes

    g = small_history
    cash_outs = [i for i, s in enumerate(g.scenario) if s == "foreign_cash_out"]
    assert cash_outs and all(g.currency[i] == LOCAL_CURRENCY[g.country[i]] for i in cash_outs)
    others = [i for i, s in enumerate(g.scenario) if s != "foreign_cash_out"]
    assert all(g.currency[i] == CURRENCY.get(g.country[i], "EUR") for i in others)
    assert set(g.currency) <= currency_codes()
    # A currency without a minor unit gets whole amounts, as the scoring API requires.
    assert all(g.amount[i] == round(g.amount[i]) for i in range(len(g)) if g.currency[i] in WHOLE_UNIT_CURRENCIES)


def test_onnx_and_scikit_learn_probabilities_agree_on_the_validation_set(trained_artifact, scorer):
    onnx_scores = scorer.predict(trained_artifact.x_validation)
    assert len(onnx_scores) > 1000
    assert np.max(np.abs(onnx_scores - trained_artifact.sklearn_validation_scores)) <= ONNX_TOLERANCE
    assert trained_artifact.onnx_max_abs_diff <= ONNX_TOLERANCE


def test_scores_with_reasons_match_plain_scores_and_each_group_neutralised(trained_artifact, scorer):
    from fraud.scoring.scorer import REASON_MIN_DELTA

    x = trained_artifact.x_validation[:200]
    scores, deltas = scorer.score_with_reasons(x)
    np.testing.assert_allclose(scores, scorer.predict(x), atol=1e-7)
    assert deltas.shape == (200, len(scorer.groups))
    explained = scores >= REASON_MIN_DELTA
    assert 0 < explained.sum() < 200  # both kinds of row are in the sample
    # Each contribution is the score minus the score with that group's features neutral, computed
    # here one copy at a time; rows below the minimum (which cannot have a reason) get none.
    index = {name: i for i, name in enumerate(fx.FEATURE_NAMES)}
    for g, group in enumerate(scorer.groups):
        neutral = x.copy()
        for feature in group.features:
            neutral[:, index[feature]] = scorer.neutral[index[feature]]
        expected = np.where(explained, scores - scorer.predict(neutral), 0.0)
        np.testing.assert_allclose(deltas[:, g], expected, atol=1e-6)


def test_a_tampered_artifact_is_refused(trained_artifact):
    tampered = trained_artifact.artifact[:-1] + bytes([trained_artifact.artifact[-1] ^ 1])
    with pytest.raises(ArtifactIntegrityError):
        OnnxScorer(
            tampered,
            expected_sha256=trained_artifact.sha256,
            feature_names=list(fx.FEATURE_NAMES),
            neutral_values=trained_artifact.neutral_values,
        )


def test_training_windows_never_put_the_future_before_the_past():
    first = datetime(2026, 1, 1, tzinfo=UTC)
    as_of = datetime(2026, 4, 1, tzinfo=UTC)
    w = training_windows(first=first, as_of=as_of, validation_days=14, label_delay_days=7)
    assert w.train_start < w.train_end
    assert w.train_end + timedelta(days=7) == w.validation_start
    assert w.validation_end + timedelta(days=7) == as_of
    with pytest.raises(ValueError, match="not enough history"):
        training_windows(first=first, as_of=first + timedelta(days=30), validation_days=14, label_delay_days=7)


def test_train_model_stores_an_activatable_model_with_validation_metrics(alice, django_capture_on_commit_callbacks):
    call_command(
        "generate_transactions",
        days=60,
        customers=250,
        merchants=30,
        seed=5,
        start=datetime(2026, 1, 1, tzinfo=UTC),
        owner=alice.username,
        stdout=StringIO(),
    )
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("train_model", "--activate", stdout=out)

    report = json.loads(out.getvalue())
    version = ModelVersion.objects.get(version=report["version"])
    assert version.status == ModelStatus.ACTIVE
    assert version.validation_start >= version.train_end
    assert version.metrics["onnx_max_abs_diff"] <= ONNX_TOLERANCE
    validation = version.metrics["validation"]
    assert (
        validation["n_fraud"] > 0 and 0.5 < validation["auc_roc"] <= 1.0 and 0 < validation["average_precision"] <= 1.0
    )
    model, _ = runtime.current()
    assert model.version == version.version
    # Calibrated on the validation window; the runtime serves the calibrated probability, and the
    # ONNX check above compared the model's own output with scikit-learn's.
    assert version.metrics["calibration"]["fitted"] and version.calibration["a"] > 0
    assert version.calibration["n_fraud"] == validation["n_fraud"]
    rows = np.random.default_rng(0).uniform(0, 5, (50, len(fx.FEATURE_NAMES))).astype(np.float32)
    np.testing.assert_allclose(model.scorer.predict(rows), calibrate(model.scorer.raw(rows), version.calibration))
    assert not np.allclose(model.scorer.predict(rows), model.scorer.raw(rows))


def test_train_model_explains_what_is_missing_on_an_empty_database(db):
    with pytest.raises(CommandError, match="no transactions"):
        call_command("train_model", stdout=StringIO())


def test_generate_transactions_writes_the_same_history_once(alice):
    args = {
        "days": 10,
        "customers": 20,
        "merchants": 5,
        "seed": 1,
        "start": datetime(2026, 1, 1, tzinfo=UTC),
        "owner": alice.username,
    }
    call_command("generate_transactions", **args, stdout=StringIO())
    n = Transaction.objects.count()
    call_command("generate_transactions", **args, stdout=StringIO())
    assert n > 0 and Transaction.objects.count() == n


def test_activating_a_model_retires_the_previous_one(db):
    first = model_version_activate(version=ModelVersionFactory())
    second = model_version_activate(version=ModelVersionFactory())
    first.refresh_from_db()
    assert (first.status, second.status) == (ModelStatus.RETIRED, ModelStatus.ACTIVE)
    assert ModelVersion.objects.filter(status=ModelStatus.ACTIVE).count() == 1


def test_the_database_refuses_a_second_active_model(db):
    ModelVersionFactory(status=ModelStatus.ACTIVE)
    with pytest.raises(IntegrityError):
        ModelVersionFactory(status=ModelStatus.ACTIVE)
