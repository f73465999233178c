"""The fast validation path accepts exactly what TransactionInputSerializer accepts and returns
exactly what it returns; everything else falls through to the serializer's own errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud.transactions.validation import TransactionInputSerializer, _fast, validate_transaction
from tests.fraud.scoring.test_scoring_api import body

NOW = datetime.now(UTC).replace(microsecond=0)
GOOD = body()

# Values near the edges of every rule, valid and not.
ids = st.one_of(
    st.sampled_from(["tx-1", "a", "A" * 64, "A" * 65, "-x", "x y", "x\u00e9", "", "x.y:z_1-2", "٤٢"]),
    st.integers(),
    st.none(),
    st.text(max_size=70),
)
amounts = st.one_of(
    st.sampled_from(
        [
            "42.50",
            "0",
            "-1",
            "0.001",
            "1.234",
            "100",
            "1000000",
            "1000000.01",
            "1e3",
            "٤٢",
            " 4",
            "4.",
            ".5",
            "12345678901234.5",
            "1.123456789",
        ]
    ),  # fmt: skip
    st.integers(min_value=-5, max_value=2_000_000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
currencies = st.one_of(st.sampled_from(["EUR", "JPY", "BHD", "eur", "XXX", "XTS", "ZZZ", "EURO", ""]), st.integers())
countries = st.one_of(st.sampled_from(["FR", "DE", "fr", "XX", "FRA", "", "GB"]), st.integers())
stamps = st.one_of(
    st.sampled_from(
        [
            GOOD["timestamp"],
            "2026-11-27T10:15:00",
            "2026-11-27T10:15:00+02:00",
            "1999-12-31T23:59:59Z",
            (NOW + timedelta(days=2)).isoformat(),
            "2026-13-01T00:00:00Z",
            "not a date",
            "2026-11-27 10:15:00Z",
            "2026-11-27T10:15:00.123456-05:30",
        ]
    ),  # fmt: skip
    st.integers(),
)
channels = st.one_of(
    st.sampled_from(["pos", "online", "atm", "moto", "recurring", "other", "POS", "", "web"]), st.none(), st.integers()
)
ips = st.one_of(
    st.sampled_from(
        ["203.0.113.5", "10.0.0.1", "256.1.1.1", "01.2.3.4", "1.2.3", " 1.2.3.4", "::1", "2001:db8::1", ""]
    ),
    st.integers(),
)
cards = st.sampled_from(["4111111111111111", "4111111111111112", "4111 1111 1111 1111", "411111", "", 4111111111111111])


@st.composite
def bodies(draw):
    body = dict(GOOD)
    for name, strategy in (("transaction_id", ids), ("customer_id", ids), ("merchant_id", ids), ("amount", amounts),
                           ("currency", currencies), ("country", countries), ("timestamp", stamps),
                           ("channel", channels)):  # fmt: skip
        if draw(st.integers(0, 3)) == 0:
            body[name] = draw(strategy)
    if draw(st.integers(0, 5)) == 0:
        del body[draw(st.sampled_from(sorted(body)))]
    if draw(st.integers(0, 6)) == 0:
        body["card_number"] = draw(cards)
    if draw(st.integers(0, 4)) == 0:
        body["ip_address"] = draw(ips)
    if draw(st.integers(0, 8)) == 0:
        body[draw(st.sampled_from(["cvv", "extra", "Amount"]))] = "1"
    return body


def serializer_result(raw):
    serializer = TransactionInputSerializer(data=raw)
    return dict(serializer.validated_data) if serializer.is_valid() else None


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies())
def test_the_fast_path_never_accepts_more_or_returns_anything_else(raw):
    fast = _fast(raw)
    if fast is not None:
        assert fast == serializer_result(raw)


def test_the_fast_path_takes_the_common_case():
    assert _fast(GOOD) == serializer_result(GOOD)
    assert _fast({**GOOD, "card_number": "4111111111111111"}) == serializer_result(
        {**GOOD, "card_number": "4111111111111111"}
    )
    assert _fast({k: v for k, v in GOOD.items() if k != "channel"}) is not None
    assert _fast({**GOOD, "amount": 42}) == serializer_result({**GOOD, "amount": 42})
    assert _fast({**GOOD, "ip_address": "203.0.113.5"}) == serializer_result({**GOOD, "ip_address": "203.0.113.5"})


@pytest.mark.parametrize(
    ("change", "field"),
    [({"amount": "-3"}, "amount"), ({"currency": "eur"}, "currency"), ({"cvv": "123"}, "cvv"),
     ({"timestamp": "2026-11-27T10:15:00"}, "timestamp"), ({"amount": "1.234"}, "amount")],
)  # fmt: skip
def test_invalid_input_gets_the_serializers_errors_by_field(change, field):
    data, errors = validate_transaction({**GOOD, **change})
    assert data is None and field in errors


# --- Import rows (manage.py import_transactions): the same promise for ImportRowSerializer ------

IMPORT_GOOD = {"transaction_id": "h1", "timestamp": "2026-03-01T10:00:00Z", "customer_id": "C1",
               "merchant_id": "M1", "amount": "12.50"}  # fmt: skip
text_stamps = st.sampled_from(
    ["2026-03-01T10:00:00Z", "2026-03-01T09:00:00Z", "2026-03-08T10:00:00+02:00", "2026-03-01T10:00:00",
     "1999-12-31T23:59:59Z", (NOW + timedelta(days=2)).isoformat(), "nope"]
)  # fmt: skip
labels = st.sampled_from(["1", "0", "fraud", "Legitimate", " FRAUD ", "2", "yes", "  "])


@st.composite
def import_rows(draw):
    row = dict(IMPORT_GOOD)
    text = st.text(max_size=8)
    for name, strategy in (("transaction_id", st.one_of(ids.filter(lambda v: isinstance(v, str)), text)),
                           ("customer_id", text), ("amount", st.sampled_from(["1", "0.001", "5", "-2", "1e3", "12.345"])),
                           ("timestamp", text_stamps), ("currency", st.sampled_from(["EUR", "JPY", "eur", "ZZZ"])),
                           ("country", st.sampled_from(["FR", "fr", "XX", " FR"])),
                           ("channel", st.sampled_from(["pos", "online", "POS", "web"])), ("label", labels),
                           ("label_time", text_stamps)):  # fmt: skip
        if draw(st.integers(0, 2)) == 0:
            row[name] = draw(strategy)
    if draw(st.integers(0, 5)) == 0:
        del row[draw(st.sampled_from(sorted(row)))]
    return row


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(import_rows())
def test_the_import_fast_path_never_accepts_more_or_returns_anything_else(raw):
    from fraud.modelops.services.history import ImportRowSerializer, _fast_row

    fast = _fast_row(raw)
    if fast is not None:
        serializer = ImportRowSerializer(data=raw)
        assert serializer.is_valid(), serializer.errors
        assert fast == dict(serializer.validated_data)


def test_the_import_fast_path_takes_the_common_rows():
    from fraud.modelops.services.history import _fast_row

    assert _fast_row(IMPORT_GOOD) is not None
    assert _fast_row({**IMPORT_GOOD, "label": "1", "label_time": "2026-03-05T00:00:00Z", "country": "FR"}) is not None
