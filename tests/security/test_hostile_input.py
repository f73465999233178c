"""Inputs an attacker chooses: every one is refused at the edge with a 400 naming the field, and
none reaches the database to fail there as a 500 (PostgreSQL refuses infinities in jsonb, NUL
bytes in text and a non-timestamp compared with a timestamp)."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fraud.batches.test_batch_jobs import BATCHES
from tests.fraud.scoring.test_scoring_api import URL, body

pytestmark = pytest.mark.django_db
HYPOTHESIS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def raw_post(api, url: str, text: str):
    return api.generic("POST", url, text.encode(), content_type="application/json")


def field_errors(response) -> dict:
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    return response.json()["errors"]


@pytest.mark.parametrize("number", ["1e309", "-1e309", "NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("url", [BATCHES, URL, f"{URL}batch/"])
def test_a_number_no_column_can_hold_is_refused_naming_its_field(alice_api, active_model, url, number):
    item = json.dumps(body(transaction_id="inf-1", amount="HERE")).replace('"HERE"', number)
    text = f'{{"transactions": [{item}]}}' if url != URL else item
    assert "amount" in field_errors(raw_post(alice_api, url, text))


def test_a_non_finite_number_in_a_list_is_named_by_the_key_holding_the_list(alice_api, active_model):
    errors = field_errors(raw_post(alice_api, BATCHES, '{"transactions": [1e999]}'))
    assert errors == {"transactions": ["A number must be finite."]}


@pytest.mark.parametrize(
    ("url", "text", "key"),
    [
        (BATCHES, '{"transactions": [], "transactions": [1]}', "transactions"),
        (URL, '{"transaction_id": "d-1", "transaction_id": "d-2"}', "transaction_id"),
        (f"{URL}batch/", '{"transactions": [{"amount": "1.00", "amount": "2.00"}]}', "amount"),
    ],
)
def test_a_duplicate_key_is_refused_naming_the_key(alice_api, active_model, url, text, key):
    errors = field_errors(raw_post(alice_api, url, text))
    assert errors == {key: ["Duplicate key in the JSON object."]}


@pytest.mark.parametrize("path", [f"{URL}a%00b/", f"{URL}a%00b/feedback/", f"{URL}{'x' * 65}/", f"{URL}%C3%A9/"])
def test_a_transaction_id_in_the_path_is_checked_like_one_in_a_body(alice_api, active_model, path):
    if path.endswith("feedback/"):
        response = alice_api.post(path, {"label": "fraud"}, format="json")
    else:
        response = alice_api.get(path)
    assert "transaction_id" in field_errors(response)


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("get", f"{BATCHES}99999999999999999999999/", "job_id"),
        ("get", f"{BATCHES}9223372036854775808/results/", "job_id"),
        ("post", f"{BATCHES}99999999999999999999999/cancel/", "job_id"),
        ("delete", "/api/v1/lists/99999999999999999999999/", "entry_id"),
    ],
)
def test_an_integer_id_beyond_bigint_is_refused_naming_it(alice_api, active_model, method, path, field):
    assert field in field_errors(getattr(alice_api, method)(path))


def cursor(text: str) -> str:
    return quote(base64.b64encode(text.encode()).decode())


@pytest.mark.parametrize(
    "forged",
    [
        cursor("o=99999999999999999999999999&p=x"),
        cursor("p=x"),
        cursor("p=2026-01-01 00:00:00\x00"),
        cursor("r=x&p=2026-01-01"),
        "not-base64!",
        quote(base64.b64encode(b"\xff\xfe").decode()),
    ],
)
@pytest.mark.parametrize("url", [URL, "/api/v1/lists/"])
def test_a_forged_cursor_is_a_400_naming_the_cursor(alice_api, active_model, url, forged):
    assert "cursor" in field_errors(alice_api.get(f"{url}?cursor={forged}"))


def test_a_genuine_cursor_still_pages(alice_api, active_model):
    for i in range(3):
        assert alice_api.post(URL, body(transaction_id=f"p-{i}"), format="json").status_code == 201
    first = alice_api.get(f"{URL}?page_size=2").json()
    second = alice_api.get(first["next"]).json()
    assert len(first["results"]) == 2 and len(second["results"]) == 1


# Property tests: whatever the text, an answer below 500.


@HYPOTHESIS
@given(st.text(min_size=1, max_size=80))
def test_any_transaction_id_in_the_path_is_a_400_or_a_404(alice_api, active_model, text):
    response = alice_api.get(f"{URL}{quote(text, safe='')}/")
    assert response.status_code in {400, 404}, (text, response.content)


@HYPOTHESIS
@given(st.one_of(st.text(max_size=120), st.binary(max_size=120).map(lambda b: base64.b64encode(b).decode())))
def test_any_cursor_is_a_200_or_a_400(alice_api, active_model, text):
    response = alice_api.get(f"{URL}?cursor={quote(text, safe='')}")
    assert response.status_code in {200, 400}, (text, response.content)
    if response.status_code == 400:
        assert set(response.json()["errors"]) == {"cursor"}


@HYPOTHESIS
@given(
    st.dictionaries(
        st.sampled_from(["p", "o", "r", "x"]),
        st.one_of(st.text(max_size=40), st.integers().map(str), st.datetimes().map(str)),
        max_size=3,
    )
)
def test_any_decoded_cursor_is_a_200_or_a_400(alice_api, active_model, tokens):
    from urllib.parse import urlencode

    encoded = base64.b64encode(urlencode(tokens).encode()).decode()
    response = alice_api.get(f"{URL}?cursor={quote(encoded, safe='')}")
    assert response.status_code in {200, 400}, (tokens, response.content)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@HYPOTHESIS
@given(st.dictionaries(st.sampled_from(["transactions", "x"]), JSON, min_size=1, max_size=2))
def test_any_json_body_on_batches_is_answered_below_500(alice_api, active_model, document):
    text = json.dumps(document)  # writes NaN and Infinity literals, which the parser must refuse
    response = raw_post(alice_api, BATCHES, text)
    assert response.status_code in {202, 400, 413}, (text, response.content)
