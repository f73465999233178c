"""Micro-benchmarks of the scoring hot path (pytest-benchmark). Not part of `make test`: the files
are named bench_*.py and `make bench` runs them with `-o python_files=bench_*.py`. No timing
asserts: the figures go to bench/results/latest.json."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from fraud.features import definitions as fx
from fraud.modelops.datasets import frame_from_generated

BODY = {
    "transaction_id": "bench-1",
    "customer_id": "C000042",
    "merchant_id": "M00007",
    "amount": "42.50",
    "currency": "EUR",
    "country": "FR",
    "timestamp": "2026-11-27T10:00:00Z",
    "channel": "pos",
}


@pytest.fixture(scope="module")
def frame(small_history):
    return frame_from_generated(small_history)


def test_features_offline_1000_rows(benchmark, frame):
    """Vectorised feature computation (the batch and training path) for the last 1,000 rows."""
    targets = fx.Frame(**{name: getattr(frame, name)[-1000:] for name in fx.Frame.__dataclass_fields__})
    result = benchmark(fx.features_offline, frame, targets, label_delay_days=7)
    assert result.shape == (1000, len(fx.FEATURE_NAMES))


def test_features_assemble_one_row(benchmark):
    """Online: the aggregates of one row (from the SQL query) turned into model inputs."""
    aggregates = {name: np.array([3.0]) for name in fx.AGGREGATE_NAMES}
    aggregates["c_prev_ts"] = np.array([float(fx.to_epoch_us(datetime(2026, 11, 27, 9, tzinfo=UTC)))])
    row = benchmark(
        fx.assemble,
        aggregates,
        amount=np.array([42.5]),
        ts_us=np.array([fx.to_epoch_us(datetime(2026, 11, 27, 10, tzinfo=UTC))], dtype=np.int64),
        channel=np.array(["pos"]),
        has_card=np.array([False]),
    )
    assert row.shape == (1, len(fx.FEATURE_NAMES))


@pytest.mark.parametrize("batch", [1, 1000])
def test_inference_with_reasons(benchmark, scorer, frame, batch):
    x = fx.features_offline(frame, frame, label_delay_days=7)[:batch].astype(np.float32)
    scores, deltas = benchmark(scorer.score_with_reasons, x)
    assert scores.shape == (batch,) and deltas.shape == (batch, len(scorer.groups))


@pytest.mark.parametrize("batch", [1, 1000])
def test_inference_score_only(benchmark, scorer, frame, batch):
    x = fx.features_offline(frame, frame, label_delay_days=7)[:batch].astype(np.float32)
    assert benchmark(scorer.predict, x).shape == (batch,)


def test_input_validation_serializer(benchmark, settings):
    """DRF's serializer: the path for invalid input (it names every bad field)."""
    from fraud.transactions.validation import TransactionInputSerializer

    settings.FRAUD_MAX_FUTURE_SKEW_SECONDS = 10**9  # the fixed timestamp above stays valid

    def validate() -> dict:
        serializer = TransactionInputSerializer(data=BODY)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    assert benchmark(validate)["transaction_id"] == "bench-1"


def test_input_validation_fast_path(benchmark, settings):
    """What a well-formed transaction costs (fraud.transactions.validation.validate_transaction)."""
    from fraud.transactions.validation import validate_transaction

    settings.FRAUD_MAX_FUTURE_SKEW_SECONDS = 10**9
    data, errors = benchmark(validate_transaction, BODY)
    assert errors is None and data["transaction_id"] == "bench-1"


def test_response_serialization(benchmark):
    from rest_framework.renderers import JSONRenderer

    payload = {
        "transaction_id": "bench-1",
        "fraud_score": 0.912345,
        "decision": "decline",
        "reasons": [
            {"code": "AMOUNT_HIGH_FOR_CUSTOMER", "text": "Amount far above this customer's usual", "weight": 0.41}
        ],
        "model_version": "fb-20261127-000000-000000",
        "scored_at": "2026-11-27T10:00:00.000000Z",
    }
    assert benchmark(JSONRenderer().render, payload).startswith(b"{")
