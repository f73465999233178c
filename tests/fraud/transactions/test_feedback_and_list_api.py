"""Outcomes reported by clients, and the client's own transaction list."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from fraud.models import LabelSource, Transaction
from tests.fraud.scoring.test_scoring_api import URL, body


def test_feedback_records_a_label_with_its_source_and_time(alice_api, alice, active_model):
    alice_api.post(URL, body(transaction_id="cb-1"), format="json")
    before = timezone.now()

    response = alice_api.post(f"{URL}cb-1/feedback/", {"label": "fraud"}, format="json")

    assert response.status_code == 200
    assert response.json()["label"] == "fraud"
    tx = Transaction.objects.get(owner=alice, transaction_id="cb-1")
    assert (tx.label, tx.label_source) == ("fraud", LabelSource.CLIENT)
    assert tx.label_time >= before


def test_feedback_rejects_an_unknown_label_and_an_unknown_transaction(alice_api, active_model):
    alice_api.post(URL, body(transaction_id="cb-2"), format="json")
    bad = alice_api.post(f"{URL}cb-2/feedback/", {"label": "maybe"}, format="json")
    assert bad.status_code == 400 and "label" in bad.json()["errors"]
    assert alice_api.post(f"{URL}nope/feedback/", {"label": "fraud"}, format="json").status_code == 404
    assert Transaction.objects.get(transaction_id="cb-2").label == ""


def test_the_list_filters_by_decision_customer_and_time(alice_api, alice, active_model):
    now = timezone.now().replace(microsecond=0)
    for i in range(6):
        alice_api.post(
            URL,
            body(transaction_id=f"l-{i}", customer_id=f"C{i % 2}", timestamp=(now - timedelta(hours=i)).isoformat()),
            format="json",
        )
    Transaction.objects.filter(transaction_id="l-0").update(decision="decline")

    def ids(query: str) -> list[str]:
        response = alice_api.get(URL + query)
        assert response.status_code == 200, response.content
        return [r["transaction_id"] for r in response.json()["results"]]

    assert ids("") == [f"l-{i}" for i in range(6)]  # newest first
    assert ids("?customer_id=C1") == ["l-1", "l-3", "l-5"]
    assert ids("?decision=decline") == ["l-0"]
    since = (now - timedelta(hours=2)).isoformat().replace("+", "%2B")
    assert ids(f"?since={since}") == ["l-0", "l-1", "l-2"]


def test_the_list_is_paginated_with_a_maximum_page_size(alice_api, alice, active_model):
    for i in range(5):
        alice_api.post(URL, body(transaction_id=f"p-{i}"), format="json")
    first = alice_api.get(URL + "?page_size=2").json()
    assert len(first["results"]) == 2 and first["next"]
    second = alice_api.get(first["next"]).json()
    assert len(second["results"]) == 2
    assert {r["transaction_id"] for r in first["results"]}.isdisjoint(r["transaction_id"] for r in second["results"])
    too_big = alice_api.get(URL + "?page_size=100000")
    assert too_big.status_code == 400 and "page_size" in too_big.json()["errors"]


def test_an_invalid_filter_is_named(alice_api, active_model):
    response = alice_api.get(URL + "?decision=maybe&since=yesterday&colour=blue")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"decision", "since", "colour"}


def test_the_list_costs_a_fixed_number_of_queries(alice_api, active_model, django_assert_num_queries):
    for i in range(8):
        alice_api.post(URL, body(transaction_id=f"q-{i}"), format="json")
    with django_assert_num_queries(2):  # the user (JWT) and one page of transactions with their model
        response = alice_api.get(URL)
    assert len(response.json()["results"]) == 8
