"""The temporal protocol on generated data without a database (evaluate_frame), and the
candidates `manage.py model_quality` compares."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fraud import training
from fraud.feature_store import frame_from_generated
from fraud.services.evaluation import Protocol, evaluate_frame
from fraud.simulator import simulate

START = datetime(2026, 1, 1, tzinfo=UTC)
PROTOCOL = Protocol(train_start=START + timedelta(days=42), train_days=7, delay_days=7, test_days=7)


@pytest.fixture(scope="module")
def frame():
    return frame_from_generated(simulate(start=START, days=63, customers=800, terminals=1600, seed=5))


@pytest.mark.parametrize("candidate", ["hgb", "logistic_regression"])
def test_the_protocol_reports_the_three_metrics_for_a_candidate(frame, candidate):
    def fit(x, y, *, seed):
        return training.fit_candidate(candidate, x, y, seed=seed)

    result = evaluate_frame(frame, PROTOCOL, fit=fit, name=candidate)
    assert result["model"] == candidate
    assert result["n_train_fraud"] > 5 and result["n_test_fraud"] > 5
    # Better than chance on every metric: the simulator's fraud is learnable.
    assert result["auc_roc"] > 0.7
    assert result["average_precision"] > 5 * result["n_test_fraud"] / result["n_test"]
    assert 0 < result["card_precision_at_100"] <= 1
    assert len(result["card_precision_daily"]) == 7


def test_a_stored_scorer_is_evaluated_without_training(frame):
    result = evaluate_frame(frame, PROTOCOL, scorer=lambda x: x[:, 0], name="amount only")
    assert result["model"] == "amount only" and "auc_roc" in result


def test_unknown_candidates_are_refused():
    with pytest.raises(ValueError, match="unknown candidate"):
        training.fit_candidate("xgboost", [[0.0]], [0])


def test_calibration_metrics_tell_probabilities_from_ranks():
    import numpy as np

    from fraud.evaluation import calibration_metrics

    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.2, 20_000)
    y = (rng.random(20_000) < p).astype(int)  # outcomes drawn with exactly these probabilities
    calibrated = calibration_metrics(y, p)
    inflated = calibration_metrics(y, np.minimum(1, p * 4))  # same ranking, 4x too high
    assert calibrated["ece"] < 0.01 < inflated["ece"]
    assert calibrated["brier"] < inflated["brier"]
