"""The scoring API contract: what an API client sends and gets back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from fraud.features import definitions as fx
from fraud.modelops.services.history import history_generate
from fraud.models import Decision, Transaction
from fraud.rules.services import thresholds_update
from fraud.scoring.runtime import runtime
from tests.conftest import jwt_client
from tests.factories import TransactionFactory
from tests.helpers import online_features

URL = "/api/v1/transactions/"
# One fixed instant per test run, so a repeated body is byte-for-byte the same request.
WHEN = (timezone.now() - timedelta(minutes=10)).replace(microsecond=0).isoformat()


def body(**overrides):
    data = {
        "transaction_id": "tx-1",
        "customer_id": "C000001",
        "merchant_id": "M00001",
        "amount": "42.50",
        "currency": "EUR",
        "country": "FR",
        "timestamp": WHEN,
        "channel": "pos",
    }
    data.update(overrides)
    return data


def test_it_scores_a_transaction_and_stores_the_result(alice_api, alice, active_model):
    response = alice_api.post(URL, body(), format="json")

    assert response.status_code == 201, response.content
    data = response.json()
    assert set(data) == {
        "transaction_id", "fraud_score", "decision", "decided_by", "reasons", "rules", "model_version", "scored_at"
    }  # fmt: skip
    assert data["decided_by"] == "model" and data["rules"] == []  # no list or rule in play
    assert data["transaction_id"] == "tx-1"
    assert 0.0 <= data["fraud_score"] <= 1.0
    assert data["decision"] in Decision.values
    assert data["model_version"] == active_model.version
    stored = Transaction.objects.get(owner=alice, transaction_id="tx-1")
    assert stored.fraud_score == pytest.approx(data["fraud_score"], abs=1e-6)
    assert stored.decision == data["decision"]
    assert stored.reasons == data["reasons"]
    assert stored.model_version_id == active_model.pk
    assert response["Cache-Control"] == "no-store"


def test_reasons_are_the_score_change_when_each_factor_is_made_ordinary(alice_api, alice, active_model):
    now = timezone.now()
    for i in range(12):  # an ordinary customer: small payments at home, at one shop
        TransactionFactory(
            owner=alice,
            customer_id="C000001",
            merchant_id="M00001",
            amount=Decimal("40"),
            timestamp=now - timedelta(days=i + 1, hours=3),
        )
    response = alice_api.post(
        URL, body(amount="4999.00", country="NG", channel="online", merchant_id="M-new"), format="json"
    )
    data = response.json()

    assert data["reasons"], "a risky-looking transaction should have reasons"
    for reason in data["reasons"]:
        assert set(reason) == {"code", "value", "contribution", "message"}
        assert reason["message"]
    # Recompute each contribution independently: neutralise the group's features and rescore.
    tx = Transaction.objects.get(owner=alice, transaction_id="tx-1")
    row = online_features(tx)
    model, _ = runtime.current()
    base = model.scorer.predict(row)[0]
    assert base == pytest.approx(data["fraud_score"], abs=1e-6)
    groups = {g.code: g for g in model.scorer.groups}
    for reason in data["reasons"]:
        neutralised = row.copy()
        for feature in groups[reason["code"]].features:
            neutralised[0, fx.FEATURE_INDEX[feature]] = model.scorer.neutral[fx.FEATURE_INDEX[feature]]
        assert base - model.scorer.predict(neutralised)[0] == pytest.approx(reason["contribution"], abs=1e-6)
    contributions = [r["contribution"] for r in data["reasons"]]
    assert contributions == sorted(contributions, reverse=True)


def test_a_fraud_pattern_scores_higher_than_the_customers_usual_payment(alice_api, alice, active_model, small_history):
    # Give Alice the session's generated history and score against it, at the end of that history.
    start = datetime(2026, 3, 1, tzinfo=UTC)
    history_generate(owner=alice, days=45, customers=300, merchants=40, seed=7, start=start)
    last = Transaction.objects.filter(owner=alice, label="").order_by("-timestamp").first()
    usual = (
        Transaction.objects.filter(owner=alice, customer_id=last.customer_id)
        .exclude(pk=last.pk)
        .order_by("-timestamp")[0]
    )
    at = last.timestamp + timedelta(minutes=5)
    normal = body(
        transaction_id="n-1",
        customer_id=last.customer_id,
        merchant_id=usual.merchant_id,
        amount=str(usual.amount),
        country=usual.country,
        channel=usual.channel or "pos",
        timestamp=at.isoformat(),
    )
    fraud = body(
        transaction_id="f-1",
        customer_id=last.customer_id,
        merchant_id="M-never-seen",
        amount=str(usual.amount * 25),
        country="NG",
        channel="online",
        timestamp=(at + timedelta(seconds=30)).isoformat(),
    )

    normal_score = alice_api.post(URL, normal, format="json").json()["fraud_score"]
    fraud_response = alice_api.post(URL, fraud, format="json").json()

    assert fraud_response["fraud_score"] > normal_score
    assert fraud_response["decision"] in {Decision.REVIEW, Decision.DECLINE}
    codes = {r["code"] for r in fraud_response["reasons"]}
    assert codes & {"AMOUNT_HIGH_FOR_CUSTOMER", "NEW_MERCHANT_FOR_CUSTOMER", "NEW_COUNTRY_FOR_CUSTOMER", "AMOUNT_LEVEL"}


def test_changed_thresholds_apply_to_the_next_request_without_a_restart(
    alice_api, active_model, django_capture_on_commit_callbacks
):
    def set_thresholds(review: float, decline: float) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            thresholds_update(review=review, decline=decline)

    set_thresholds(0.0, 1.0)
    assert alice_api.post(URL, body(transaction_id="a"), format="json").json()["decision"] == Decision.REVIEW
    set_thresholds(0.0, 1e-9)  # a risky payment: a forest gives a plain one exactly 0
    risky = body(transaction_id="b", amount="9000.00", channel="online", country="NG")
    assert alice_api.post(URL, risky, format="json").json()["decision"] == Decision.DECLINE
    set_thresholds(0.999999, 1.0)
    assert alice_api.post(URL, body(transaction_id="c"), format="json").json()["decision"] == Decision.APPROVE


def test_thresholds_must_be_ordered_within_zero_and_one(db):
    for review, decline in [(0.5, 0.5), (0.9, 0.1), (-0.1, 0.5), (0.5, 1.1)]:
        with pytest.raises(ValueError, match="(?i)threshold"):
            thresholds_update(review=review, decline=decline)


def test_without_an_active_model_scoring_answers_503(alice_api):
    response = alice_api.post(URL, body(), format="json")
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "no_active_model"
    assert not Transaction.objects.exists()


def test_it_needs_a_token(db, active_model):
    from rest_framework.test import APIClient

    response = APIClient().post(URL, body(), format="json")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"


def test_analysts_cannot_use_the_scoring_api(carol, active_model):
    response = jwt_client(carol.username).post(URL, body(), format="json")
    assert response.status_code == 403
    assert not Transaction.objects.exists()


def test_a_scoring_request_costs_a_fixed_number_of_queries(
    transactional_db,  # no test transaction around it: production's autocommit path
    alice_api,
    active_model,
    django_assert_num_queries,
):
    alice_api.post(URL, body(transaction_id="warm"), format="json")  # loads model and thresholds
    # 1 user (JWT; the per-process user cache is off in tests), 1 statement for all history
    # aggregates, 1 insert: an approved transaction opens no case, so it commits on its own.
    with django_assert_num_queries(3):
        response = alice_api.post(URL, body(transaction_id="counted"), format="json")
    assert response.status_code == 201 and response.json()["decision"] == "approve"


V2_FEATURES = list(fx.FEATURE_NAMES[: fx.FEATURE_INDEX["card_n_1d"] + 1])


def test_a_model_of_the_previous_feature_set_keeps_serving_on_its_own_columns(alice_api, alice, small_history):
    """Upgrading the code must not take the live model down: a v2 model (26 features, a subset
    of today's) scores on exactly its columns, with reasons, until a retrained model replaces it."""
    import numpy as np

    from fraud.modelops import training
    from fraud.modelops.datasets import frame_from_generated
    from fraud.modelops.services.lifecycle import model_version_activate
    from tests.factories import ModelVersionFactory

    frame = frame_from_generated(small_history)
    x = fx.features_offline(frame, frame, label_delay_days=7)[:, : len(V2_FEATURES)]
    y = (frame.fraud_known_at != fx.NOT_FRAUD).astype(np.int64)
    model = training.fit(x, y)
    exported = training.export(model, x[:500], V2_FEATURES, training.neutral_values(x))
    version = ModelVersionFactory(
        feature_set_version="v2",
        feature_names=V2_FEATURES,
        artifact=exported.artifact,
        artifact_sha256=exported.sha256,
        neutral_values=exported.neutral_values,
    )
    model_version_activate(version=version)
    for i in range(10):
        TransactionFactory(owner=alice, customer_id="C000001", amount=Decimal("20"),
                           timestamp=timezone.now() - timedelta(days=2, hours=i))  # fmt: skip

    response = alice_api.post(
        URL, body(amount="900.00", merchant_id="M-new", country="NG", channel="online"), format="json"
    )

    assert response.status_code == 201, response.content
    stored = Transaction.objects.get(owner=alice, transaction_id="tx-1")
    row = online_features(stored, label_delay_days=7)[:, : len(V2_FEATURES)]
    expected = float(model.predict_proba(row.astype(np.float32))[:, 1][0])
    assert response.json()["fraud_score"] == pytest.approx(expected, abs=1e-4)
    assert response.json()["model_version"] == version.version
    # The amount group keeps the two of its four features this model has, and explains the score.
    assert "AMOUNT_HIGH_FOR_CUSTOMER" in {r["code"] for r in response.json()["reasons"]}


def test_a_model_needing_features_this_code_does_not_compute_is_refused(alice_api, active_model):
    from fraud.models import ModelVersion

    ModelVersion.objects.filter(pk=active_model.pk).update(
        feature_names=[*fx.FEATURE_NAMES, "a_feature_from_the_future"], feature_set_version="v99"
    )
    runtime.invalidate()

    response = alice_api.post(URL, body(), format="json")

    assert response.status_code == 503
    assert response.json()["code"] == "no_active_model"
    assert not Transaction.objects.exists()


def test_a_model_swap_hands_the_freed_heap_back_once(alice_api, active_model, monkeypatch):
    """Loading a session leaves freed parse buffers in the C heap; the runtime returns them to the
    operating system after a swap (cipherguard.memory), and not on a refresh that swaps nothing."""
    from fraud.scoring import runtime as runtime_module

    calls = []
    monkeypatch.setattr(runtime_module, "return_free_heap", lambda: calls.append(1) or True)
    runtime.invalidate()
    runtime.current()  # first load in this test's runtime, or the same model kept
    calls.clear()
    runtime.invalidate()
    runtime.current()
    assert calls == []  # same model: nothing replaced, nothing to hand back

    runtime_module.runtime._model = None  # as in a fresh worker
    runtime.invalidate()
    runtime.current()
    assert calls == [1]


def test_free_heap_goes_back_where_the_c_library_allows_it():
    import platform

    from cipherguard.memory import return_free_heap

    assert return_free_heap() is (platform.libc_ver()[0] == "glibc")
