"""Retraining, champion/challenger, shadow scoring and the evaluation protocol."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command

from audit.models import AuditEvent
from fraud.features import definitions as fx
from fraud.modelops.protocol import card_precision_at_k, not_known_compromised
from fraud.modelops.services.history import history_generate
from fraud.modelops.services.lifecycle import model_retrain, model_version_activate, model_version_set_shadow
from fraud.models import ModelStatus, ModelVersion, Transaction
from tests.factories import ModelVersionFactory
from tests.fraud.scoring.test_scoring_api import URL, body

START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def challenger(db, trained_artifact, dave, django_capture_on_commit_callbacks):
    """A second model running in shadow (the same artifact as the active one: the test is about
    where its scores go, not what they are)."""
    version = ModelVersionFactory(
        artifact=trained_artifact.artifact,
        artifact_sha256=trained_artifact.sha256,
        neutral_values=trained_artifact.neutral_values,
    )
    with django_capture_on_commit_callbacks(execute=True):
        return model_version_set_shadow(version=version, on=True, actor=dave)


@pytest.fixture
def history(alice):
    history_generate(owner=alice, days=60, customers=250, merchants=30, seed=5, start=START)


def test_retraining_records_a_candidate_with_metrics_for_both_models(history, active_model):
    candidate = model_retrain(auto_promote_margin=-1)

    assert candidate.status == ModelStatus.CANDIDATE
    mine, theirs = candidate.metrics["validation"], candidate.metrics["active_on_same_window"]
    assert theirs["version"] == active_model.version
    assert mine["n"] == theirs["n"] and mine["n_fraud"] == theirs["n_fraud"]  # the same held-back rows
    assert {"auc_roc", "average_precision"} <= set(mine) and {"auc_roc", "average_precision"} <= set(theirs)
    active_model.refresh_from_db()
    assert active_model.status == ModelStatus.ACTIVE


@pytest.fixture
def weak_live_model(db, small_history):
    """A live model that learned nothing: trained on the right features with shuffled labels."""

    from fraud.modelops import training
    from fraud.modelops.datasets import frame_from_generated

    frame = frame_from_generated(small_history)
    x = fx.features_offline(frame, frame, label_delay_days=7)
    y = np.random.default_rng(0).permutation((frame.fraud_known_at != fx.NOT_FRAUD).astype(np.int64))
    exported = training.export(training.fit(x, y), x[:500], list(fx.FEATURE_NAMES), training.neutral_values(x))
    version = ModelVersionFactory(
        artifact=exported.artifact, artifact_sha256=exported.sha256, neutral_values=exported.neutral_values
    )
    return model_version_activate(version=version)


def test_a_candidate_that_beats_the_live_model_by_the_margin_is_promoted(
    history, weak_live_model, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        candidate = model_retrain(auto_promote_margin=0.0)
    # The live model learned shuffled labels; the retrained one must win on the same rows.
    assert (
        candidate.metrics["validation"]["average_precision"]
        > candidate.metrics["active_on_same_window"]["average_precision"]
    )
    assert candidate.status == ModelStatus.ACTIVE
    assert AuditEvent.objects.filter(
        event_type="model.activated", object_id=str(candidate.pk), actor__isnull=True
    ).exists()


def test_shadow_scores_are_stored_beside_live_scores_and_decide_nothing(
    alice_api, active_model, challenger, dave, django_capture_on_commit_callbacks
):

    live = alice_api.post(URL, body(transaction_id="s-1"), format="json").json()
    batch = alice_api.post(
        URL + "batch/", {"transactions": [body(transaction_id="s-2", customer_id="C9")]}, format="json"
    ).json()

    for tid, result in (("s-1", live), ("s-2", batch["results"][0])):
        tx = Transaction.objects.get(transaction_id=tid)
        assert tx.shadow_model_id == challenger.pk and tx.shadow_score is not None
        assert tx.model_version_id == active_model.pk
        assert tx.fraud_score == result["fraud_score"] and tx.decision == result["decision"]
        assert "shadow_score" not in result  # clients never see the challenger
    assert AuditEvent.objects.filter(event_type="model.shadow_started", actor=dave).exists()

    with django_capture_on_commit_callbacks(execute=True):
        model_version_set_shadow(version=challenger, on=False, actor=dave)
    alice_api.post(URL, body(transaction_id="s-3", customer_id="C8"), format="json")
    assert Transaction.objects.get(transaction_id="s-3").shadow_model_id is None


def test_the_admin_shows_challenger_and_champion_side_by_side(client, dave, alice_api, active_model, challenger):
    from tests.factories import PASSWORD

    alice_api.post(URL, body(transaction_id="pair-1"), format="json")
    client.login(username=dave.username, password=PASSWORD)
    html = client.get(f"/admin/fraud/modelversion/{challenger.pk}/change/").content.decode()
    assert "1 transactions scored by both" in html and "pair-1" in html


def test_the_active_model_cannot_shadow_itself_and_promotion_ends_shadowing(db, dave):
    live = model_version_activate(version=ModelVersionFactory())
    with pytest.raises(ValueError, match="active model"):
        model_version_set_shadow(version=live, on=True, actor=dave)
    challenger = model_version_set_shadow(version=ModelVersionFactory(), on=True, actor=dave)
    model_version_activate(version=challenger, actor=dave)
    challenger.refresh_from_db()
    assert challenger.status == ModelStatus.ACTIVE and not challenger.shadow
    assert not ModelVersion.objects.filter(shadow=True).exists()


def test_the_test_set_and_card_precision_at_k_on_a_fixture_with_known_answers():
    day = fx.DAY
    train_start, t0 = 86 * day, 100 * day  # 7 days of training, 7 of delay, then the test
    # Before the test: c3 defrauded in training (known), c6 defrauded 3 days before the test
    # (inside the delay: not known yet on day 0 or 1), c7 defrauded before training started.
    ts = np.array([train_start + day, t0 - 3 * day, train_start - day,
                   # Day 0: c1 (fraud) 0.9, c2 (fine) 0.8, c3 (fraud, known) 0.95, c6 0.1.
                   t0 + 1, t0 + 2, t0 + 3, t0 + 4,
                   # Day 1: c1 again (caught on day 0) 0.99, c4 (fraud) 0.5, c5 (fine) 0.7, c7 0.6.
                   t0 + day + 1, t0 + day + 2, t0 + day + 3, t0 + day + 4])  # fmt: skip
    customer = np.array(["c3", "c6", "c7", "c1", "c2", "c3", "c6", "c1", "c4", "c5", "c7"])
    fraud = np.array([1, 1, 1, 1, 0, 1, 0, 1, 1, 0, 0])
    kept = not_known_compromised(
        ts=ts, customer=customer, is_fraud=fraud.astype(bool), train_start=train_start, test_start=t0, delay=7 * day
    )
    assert kept.tolist() == [False, False, False, True, True, False, True, True, True, True, True]

    scores = np.array([0, 0, 0, 0.9, 0.8, 0.95, 0.1, 0.99, 0.5, 0.7, 0.6])
    mean, daily = card_precision_at_k(
        ts=ts[kept], customer=customer[kept], scores=scores[kept], fraud=fraud[kept], test_start=t0, test_days=2, k=2
    )
    # Day 0 top 2 of {c1 0.9 F, c2 0.8, c6 0.1}: 1/2. Day 1 top 2 of {c5 0.7, c7 0.6, c4 0.5 F}: 0/2.
    assert daily == [0.5, 0.0] and mean == 0.25


def test_evaluate_model_follows_the_protocol_and_writes_json(history, tmp_path):
    out = StringIO()
    target = tmp_path / "report.json"
    call_command(
        "evaluate_model",
        "--train-start",
        "2026-01-15",
        "--train-days",
        "14",
        "--delay-days",
        "7",
        "--test-days",
        "7",
        "--k",
        "10",
        "--json",
        str(target),
        stdout=out,
    )
    report = json.loads(target.read_text())
    assert report == json.loads(out.getvalue())
    assert report["protocol"] == {
        "train_start": "2026-01-15T00:00:00+00:00",
        "train_days": 14,
        "delay_days": 7,
        "test_days": 7,
        "k": 10,
    }
    assert report["n_train_fraud"] > 0 and report["n_test_fraud"] > 0
    assert 0.5 < report["auc_roc"] <= 1 and 0 < report["average_precision"] <= 1
    assert 0 <= report["card_precision_at_10"] <= 1 and len(report["card_precision_daily"]) == 7


def test_evaluate_model_can_score_a_stored_version(history, active_model):
    out = StringIO()
    call_command(
        "evaluate_model",
        "--version",
        active_model.version,
        "--train-start",
        "2026-01-15",
        "--train-days",
        "7",
        "--test-days",
        "7",
        stdout=out,
    )
    assert json.loads(out.getvalue())["model"] == active_model.version
