"""A repeated transaction_id never makes a second row — also under concurrent retries."""

from __future__ import annotations

import threading
from collections import Counter

from django.db import connection

from fraud.models import Transaction
from tests.conftest import jwt_client
from tests.fraud.scoring.test_scoring_api import URL, body


def test_it_replays_the_stored_result_for_a_repeated_transaction_id(alice_api, alice, active_model):
    first = alice_api.post(URL, body(), format="json")
    again = alice_api.post(URL, body(), format="json")

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == first.json()
    assert Transaction.objects.filter(owner=alice).count() == 1


def test_an_equal_body_in_another_spelling_is_the_same_request(alice_api, alice, active_model):
    data = body(amount="10.00")
    assert alice_api.post(URL, data, format="json").status_code == 201
    assert alice_api.post(URL, {**data, "amount": 10}, format="json").status_code == 200


def test_a_reused_id_with_a_different_body_is_a_conflict_and_changes_nothing(alice_api, alice, active_model):
    first = alice_api.post(URL, body(amount="10.00"), format="json").json()
    response = alice_api.post(URL, body(amount="99.00"), format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_conflict"
    stored = Transaction.objects.get(owner=alice)
    assert format(stored.amount.normalize(), "f") == "10"
    assert stored.fraud_score == first["fraud_score"]


def _race(username: str, bodies: list[dict]) -> list[tuple[int, dict]]:
    """Post each body from its own thread at the same moment."""
    barrier = threading.Barrier(len(bodies))
    results: list[tuple[int, dict]] = [None] * len(bodies)  # type: ignore[list-item]
    clients = [jwt_client(username) for _ in bodies]

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            response = clients[i].post(URL, bodies[i], format="json")
            results[i] = (response.status_code, response.json())
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_concurrent_retries_of_one_transaction_store_exactly_one_row(postgres_tx, alice, active_model):
    results = _race(alice.username, [body(transaction_id="race-1")] * 12)

    statuses = Counter(code for code, _ in results)
    assert statuses == {201: 1, 200: 11}
    assert len({data["fraud_score"] for _, data in results}) == 1
    assert Transaction.objects.filter(owner=alice, transaction_id="race-1").count() == 1


def test_concurrent_different_bodies_with_one_id_have_one_winner(postgres_tx, alice, active_model):
    results = _race(alice.username, [body(transaction_id="race-2", amount=f"{10 + i}.00") for i in range(8)])

    statuses = Counter(code for code, _ in results)
    assert statuses == {201: 1, 409: 7}
    winner = next(data for code, data in results if code == 201)
    assert Transaction.objects.get(owner=alice, transaction_id="race-2").fraud_score == winner["fraud_score"]
