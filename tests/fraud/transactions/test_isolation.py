"""A client never sees, changes or collides with another client's transactions."""

from __future__ import annotations

from fraud.models import Transaction
from tests.fraud.scoring.test_scoring_api import URL, body


def test_another_clients_transaction_is_not_found(alice_api, bob_api, active_model):
    assert alice_api.post(URL, body(transaction_id="secret"), format="json").status_code == 201

    assert bob_api.get(f"{URL}secret/").status_code == 404
    assert bob_api.post(f"{URL}secret/feedback/", {"label": "fraud"}, format="json").status_code == 404
    assert bob_api.get(URL).json()["results"] == []
    assert Transaction.objects.get(transaction_id="secret").label == ""


def test_two_clients_may_use_the_same_transaction_id(alice_api, bob_api, alice, bob, active_model):
    assert alice_api.post(URL, body(transaction_id="shared", amount="10.00"), format="json").status_code == 201
    assert bob_api.post(URL, body(transaction_id="shared", amount="20.00"), format="json").status_code == 201

    assert Transaction.objects.filter(transaction_id="shared").count() == 2
    assert alice_api.get(f"{URL}shared/").json()["amount"] == "10.00"
    assert bob_api.get(f"{URL}shared/").json()["amount"] == "20.00"


def test_the_owner_sees_its_own_transaction(alice_api, active_model):
    alice_api.post(URL, body(transaction_id="mine"), format="json")
    response = alice_api.get(f"{URL}mine/")
    assert response.status_code == 200
    assert response.json()["transaction_id"] == "mine"
