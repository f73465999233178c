"""JWT tokens: obtain, refresh with rotation, and single use of a refresh token."""

from __future__ import annotations

import jwt
from rest_framework.test import APIClient

from tests.factories import PASSWORD

TOKEN, REFRESH = "/api/v1/auth/token/", "/api/v1/auth/token/refresh/"


def test_a_client_gets_an_access_and_a_refresh_token_for_its_password(alice):
    response = APIClient().post(TOKEN, {"username": alice.username, "password": PASSWORD}, format="json")
    assert response.status_code == 200
    access = response.json()["access"]
    claims = jwt.decode(access, options={"verify_signature": False})
    assert claims["aud"] == "cipherguard-api" and claims["iss"] == "cipherguard" and claims["token_type"] == "access"


def test_a_wrong_password_is_401_problem_json(alice):
    response = APIClient().post(TOKEN, {"username": alice.username, "password": "nope"}, format="json")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert "access" not in response.json()


def test_a_refresh_rotates_and_the_old_refresh_token_stops_working(alice):
    client = APIClient()
    first = client.post(TOKEN, {"username": alice.username, "password": PASSWORD}, format="json").json()

    rotated = client.post(REFRESH, {"refresh": first["refresh"]}, format="json")
    assert rotated.status_code == 200
    assert rotated.json()["refresh"] != first["refresh"]

    reused = client.post(REFRESH, {"refresh": first["refresh"]}, format="json")
    assert reused.status_code == 401


def test_an_access_token_signed_with_another_key_is_refused(alice, active_model):
    forged = jwt.encode(
        {
            "user_id": alice.pk,
            "token_type": "access",
            "aud": "cipherguard-api",
            "iss": "cipherguard",
            "exp": 4102444800,
            "jti": "x",
        },
        "an-attacker-key-that-is-not-ours-0123456789",
        algorithm="HS256",
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert client.get("/api/v1/transactions/").status_code == 401


def test_a_deactivated_client_loses_access(alice, alice_api, active_model):
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    assert alice_api.get("/api/v1/transactions/").status_code == 401


def test_twelve_concurrent_refreshes_of_one_token_succeed_exactly_once(postgres_tx, alice):
    import threading

    from django.db import connection

    refresh = (
        APIClient().post(TOKEN, {"username": alice.username, "password": PASSWORD}, format="json").json()["refresh"]
    )
    barrier = threading.Barrier(12)
    codes: list[int] = []

    def attempt() -> None:
        try:
            client = APIClient()
            barrier.wait(timeout=10)
            codes.append(client.post(REFRESH, {"refresh": refresh}, format="json").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(codes) == [200] + [401] * 11


def test_a_refresh_token_cannot_be_used_as_an_access_token(alice, active_model):
    refresh = (
        APIClient().post(TOKEN, {"username": alice.username, "password": PASSWORD}, format="json").json()["refresh"]
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {refresh}")
    assert client.get("/api/v1/transactions/").status_code == 401


def test_a_deactivated_client_cannot_refresh(alice):
    refresh = (
        APIClient().post(TOKEN, {"username": alice.username, "password": PASSWORD}, format="json").json()["refresh"]
    )
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    assert APIClient().post(REFRESH, {"refresh": refresh}, format="json").status_code == 401
