"""Forged, expired and misdirected tokens are refused; tokens only travel in the header."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from django.conf import settings
from rest_framework.test import APIClient

from tests.factories import PASSWORD

LIST = "/api/v1/transactions/"


def claims(user, **overrides):
    now = int(time.time())
    base = {
        "token_type": "access",
        "user_id": str(user.pk),
        "jti": "j" * 32,
        "iat": now,
        "exp": now + 300,
        "aud": "cipherguard-api",
        "iss": "cipherguard",
    }
    return {**base, **overrides}


def call(token: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.get(LIST).status_code


def sign(payload: dict, key: str | None = None) -> str:
    return jwt.encode(payload, key or settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS256")


def test_a_well_formed_token_works(alice, active_model):
    assert call(sign(claims(alice))) == 200  # the control: the forgeries below differ in one thing


@pytest.mark.parametrize(
    "change",
    [
        {"exp": int(time.time()) - 10},
        {"aud": "someone-else"},
        {"iss": "not-cipherguard"},
        {"token_type": "refresh"},
    ],
    ids=["expired", "wrong-audience", "wrong-issuer", "refresh-as-access"],
)
def test_a_misdirected_or_expired_token_is_refused(alice, active_model, change):
    assert call(sign(claims(alice, **change))) == 401


def test_a_token_signed_with_another_key_is_refused(alice, active_model):
    assert call(sign(claims(alice), key="x" * 64)) == 401


def test_an_unsigned_alg_none_token_is_refused(alice, active_model):
    def b64(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    assert call(f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims(alice))}.") == 401


def test_tokens_in_the_query_string_or_a_cookie_are_ignored(alice, active_model):
    access = (
        APIClient()
        .post("/api/v1/auth/token/", {"username": alice.username, "password": PASSWORD}, format="json")
        .json()["access"]
    )
    client = APIClient()
    assert client.get(f"{LIST}?access_token={access}").status_code in {400, 401}
    client.cookies["access"] = access
    assert client.get(LIST).status_code == 401
