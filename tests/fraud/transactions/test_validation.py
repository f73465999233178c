"""Bad input gets a 400 problem+json naming the field, and nothing is stored."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from fraud.models import Transaction
from tests.fraud.scoring.test_scoring_api import URL, body

FUTURE = (timezone.now() + timedelta(days=1)).isoformat()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", "0"),
        ("amount", "-5"),
        ("amount", "abc"),
        ("amount", "٤٢"),  # Arabic-Indic digits: Decimal() would accept them
        ("amount", "4２"),  # a full-width digit
        ("amount", True),
        ("amount", 1e-05),
        ("amount", "1e3"),
        ("amount", "10.123"),  # EUR has 2 decimal places
        ("amount", "99999999"),  # above FRAUD_MAX_AMOUNT
        ("amount", None),
        ("currency", "eur"),
        ("currency", "EUX"),
        ("currency", "XXX"),
        ("currency", 978),
        ("country", "fr"),
        ("country", "UK"),
        ("country", "ZZ"),
        ("timestamp", "2026-01-01T10:00:00"),  # no timezone
        ("timestamp", "yesterday"),
        ("timestamp", "2026-13-01T10:00:00Z"),
        ("timestamp", "٢٠٢٦-01-01T10:00:00Z"),
        pytest.param("timestamp", FUTURE, id="timestamp-a-day-ahead"),  # a fixed id: workers collect at different times
        ("timestamp", "1999-12-31T23:59:59Z"),
        ("transaction_id", ""),
        ("transaction_id", "x" * 65),
        ("transaction_id", "<script>alert(1)</script>"),
        ("transaction_id", "tx 1"),
        ("transaction_id", "tx-é"),
        ("customer_id", 12345),
        ("merchant_id", "../etc/passwd"),
        ("channel", "carrier-pigeon"),
        ("ip_address", 3232235777),  # 192.168.1.1 as a number: the schema says a string
    ],
)
def test_an_invalid_field_is_rejected_by_name(alice_api, active_model, field, value):
    response = alice_api.post(URL, body(**{field: value}), format="json")

    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 400
    assert list(problem["errors"]) == [field]
    assert not Transaction.objects.exists()


@pytest.mark.parametrize(
    "field", ["transaction_id", "customer_id", "merchant_id", "amount", "currency", "country", "timestamp"]
)
def test_a_missing_required_field_is_named(alice_api, active_model, field):
    data = body()
    del data[field]
    response = alice_api.post(URL, data, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_unknown_fields_are_rejected_alongside_other_errors(alice_api, active_model):
    response = alice_api.post(URL, body(fraud_score=0.0, decision="approve", amount="-1"), format="json")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"fraud_score", "decision", "amount"}
    assert not Transaction.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "stored_amount"),
    [
        ({"amount": 12.5}, "12.5"),
        ({"amount": 7}, "7"),
        ({"amount": "1500", "currency": "JPY"}, "1500"),
        ({"amount": "1.234", "currency": "BHD"}, "1.234"),
        ({"amount": "10.500"}, "10.5"),  # trailing zeros are not extra precision
    ],
)
def test_valid_amounts_in_each_currencys_precision_are_accepted(
    alice_api, alice, active_model, overrides, stored_amount
):
    response = alice_api.post(URL, body(**overrides), format="json")
    assert response.status_code == 201, response.content
    stored = Transaction.objects.get(owner=alice)
    assert format(stored.amount.normalize(), "f") == stored_amount


def test_yen_amounts_may_not_have_decimals(alice_api, active_model):
    response = alice_api.post(URL, body(amount="100.5", currency="JPY"), format="json")
    assert response.status_code == 400
    assert "JPY allows at most 0 decimal places." in response.json()["errors"]["amount"]


def test_a_timestamp_with_an_offset_is_stored_as_the_same_instant(alice_api, alice, active_model):
    local = (timezone.now() - timedelta(hours=1)).astimezone(timezone.get_fixed_timezone(120)).replace(microsecond=0)
    response = alice_api.post(URL, body(timestamp=local.isoformat()), format="json")
    assert response.status_code == 201
    assert Transaction.objects.get(owner=alice).timestamp == local


def test_a_non_json_body_is_415(alice_api, active_model):
    response = alice_api.post(URL, "amount=10", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize(
    "raw", ["{not json", "", "[]", '"a string"', "null", "[" * 100_000 + "]" * 100_000, '{"amount": 1e999}']
)
def test_malformed_or_non_object_json_is_400(alice_api, active_model, raw):
    response = alice_api.post(URL, raw, content_type="application/json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert not Transaction.objects.exists()


def test_an_unknown_api_route_is_a_json_404(alice_api):
    response = alice_api.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize(
    "text",
    ["2026-11-27T10:15:00Z", "2026-11-27T12:15:00.5+02:00", "2026-11-27 10:15:00+00:00", "2026-11-27T10:15:00",
     "2026-11-27T10:15:00,5Z", "27/11/2026 10:15", "2026-W48-5T10:15:00Z", "2026-13-01T00:00:00Z", "", 20261127],
)  # fmt: skip
def test_every_input_reads_a_timestamp_the_same_way(text):
    """Transactions (the field and its fast path) and list expiries read timestamps through one
    parser: each accepts a text exactly when the others do (their bounds aside)."""
    from rest_framework import serializers

    from fraud.rules.apis import FutureTimestampField
    from fraud.transactions.validation import AwareTimestampField, TimestampError, fast_timestamp, parse_timestamp

    def accepts(field: serializers.Field) -> bool:
        try:
            field.to_internal_value(text)
        except serializers.ValidationError:
            return False
        return True

    try:
        parse_timestamp(text)
        readable = True
    except TimestampError:
        readable = False
    assert accepts(AwareTimestampField()) == readable == (fast_timestamp(text) is not None)
    assert accepts(FutureTimestampField()) == readable
