"""Batch scoring: one result per item, in order; a bad item does not sink the others."""

from __future__ import annotations

from fraud import features as fx
from fraud.models import Transaction
from tests.fraud.test_scoring_api import URL, body
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
