"""Batch scoring: one result per item, in order; a bad item does not sink the others."""

from __future__ import annotations

import pytest

from fraud.features import definitions as fx
from fraud.models import Transaction
from tests.fraud.scoring.test_scoring_api import URL, body
from tests.helpers import online_features

BATCH = "/api/v1/transactions/batch/"


def test_each_item_gets_its_own_result_in_order(alice_api, alice, active_model):
    alice_api.post(URL, body(transaction_id="seen", amount="5.00"), format="json")
    items = [
        body(transaction_id="b-0"),
        body(transaction_id="b-1", amount="-3"),
        body(transaction_id="seen", amount="5.00"),  # a replay
        body(transaction_id="seen", amount="6.00"),  # a conflict
        body(transaction_id="b-4", country="XX", currency="eur"),
        body(transaction_id="b-5"),
    ]
    response = alice_api.post(BATCH, {"transactions": items}, format="json")

    assert response.status_code == 200
    data = response.json()
    assert [r["index"] for r in data["results"]] == list(range(6))
    assert [r["status"] for r in data["results"]] == [201, 400, 200, 409, 400, 201]
    assert data["results"][1]["errors"] == {"amount": ["Must be greater than 0."]}
    assert set(data["results"][4]["errors"]) == {"country", "currency"}
    assert data["results"][0]["transaction_id"] == "b-0" and 0 <= data["results"][0]["fraud_score"] <= 1
    assert (data["scored"], data["failed"]) == (3, 3)
    assert set(Transaction.objects.filter(owner=alice).values_list("transaction_id", flat=True)) == {
        "seen",
        "b-0",
        "b-5",
    }


def test_a_batch_must_be_a_non_empty_list_within_the_limit(alice_api, active_model):
    assert alice_api.post(BATCH, {"transactions": []}, format="json").status_code == 400
    assert alice_api.post(BATCH, {"transactions": "nope"}, format="json").status_code == 400
    assert alice_api.post(BATCH, {"items": [body()]}, format="json").status_code == 400
    too_many = [body(transaction_id=f"x-{i}") for i in range(1001)]
    response = alice_api.post(BATCH, {"transactions": too_many}, format="json")
    assert response.status_code == 400
    assert "transactions" in response.json()["errors"]
    assert not Transaction.objects.exists()


def test_items_of_one_customer_in_a_batch_see_the_earlier_ones(alice_api, alice, active_model):
    items = [body(transaction_id=f"burst-{i}", amount="1.00", customer_id="CT", channel="online") for i in range(5)]
    for i, item in enumerate(items):
        item["timestamp"] = item["timestamp"][:19] + f".{i:06d}+00:00"
    data = alice_api.post(BATCH, {"transactions": items}, format="json").json()
    assert [r["status"] for r in data["results"]] == [201] * 5
    last = Transaction.objects.get(owner=alice, transaction_id="burst-4")
    row = online_features(last)
    assert row[0, fx.FEATURE_INDEX["c_n_1h"]] == 4


def test_batch_scoring_gives_the_same_scores_as_one_by_one_scoring(alice_api, bob_api, alice, bob, active_model):
    from datetime import UTC, datetime, timedelta

    from fraud.modelops.services.history import history_generate

    start = datetime(2026, 3, 1, tzinfo=UTC)
    for owner in (alice, bob):  # identical histories for two clients
        history_generate(owner=owner, days=45, customers=300, merchants=40, seed=7, start=start)
    at = start + timedelta(days=45, hours=1)
    items = [
        body(
            transaction_id=f"cmp-{i}",
            customer_id=f"C{i % 7:06d}",
            merchant_id=f"M{i % 5:05d}",
            amount=f"{10 + 37 * i}.00",
            country="FR" if i % 3 else "NG",
            channel="online" if i % 2 else "pos",
            timestamp=(at + timedelta(minutes=i)).isoformat(),
        )
        for i in range(25)
    ]
    batch = alice_api.post(BATCH, {"transactions": items}, format="json").json()["results"]
    single = [bob_api.post(URL, item, format="json").json() for item in items]  # in time order

    for b, s in zip(batch, single, strict=True):
        assert b["status"] == 201
        assert b["fraud_score"] == pytest.approx(s["fraud_score"], abs=2e-6)
        assert b["decision"] == s["decision"] or abs(b["fraud_score"] - 0.5) < 1e-5
        assert [r["code"] for r in b["reasons"]] == [r["code"] for r in s["reasons"]]
    assert len({r["fraud_score"] for r in batch}) > 5  # varied inputs, varied scores


def test_a_batch_costs_a_fixed_number_of_queries_whatever_its_size(alice_api, active_model, django_assert_num_queries):
    alice_api.post(BATCH, {"transactions": [body(transaction_id="warm")]}, format="json")
    import math

    from django.db import connection

    items = [body(transaction_id=f"n-{i}", customer_id=f"C{i}") for i in range(200)]
    fields = [f for f in Transaction._meta.concrete_fields if not f.primary_key]
    inserts = math.ceil(200 / min(1000, connection.ops.bulk_batch_size(fields, items)))  # SQLite caps parameters
    # The history: one query, or on PostgreSQL with the feature store four (the customers' and
    # cards' rows, the merchants' fraud rows, their day buckets, the rest of each window's volume).
    from django.conf import settings

    history = 4 if connection.vendor == "postgresql" and settings.FRAUD_FEATURE_READ == "store" else 1
    # user, existing ids, history, savepoint + bulk insert statements + release
    with django_assert_num_queries(4 + history + inserts):
        response = alice_api.post(BATCH, {"transactions": items}, format="json")
    assert response.json()["scored"] == 200
