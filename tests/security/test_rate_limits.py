"""Rate limits: 429 with Retry-After and an audit event; quotas per client; a decided behaviour
per endpoint when the counter store is down."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.response import Response
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from audit.models import AuditEvent
from tests.factories import PASSWORD
from tests.fraud.scoring.test_scoring_api import URL, body
from tests.test_settings import load

TOKEN, REFRESH = "/api/v1/auth/token/", "/api/v1/auth/token/refresh/"

NOW = 1_800_000_000.0  # inside one hour, one minute and one second window (see the fixture)


@pytest.fixture(autouse=True)
def limits_on(settings, monkeypatch):
    settings.RATE_LIMIT_ENABLED = True
    settings.RATELIMIT_ENABLE = True
    # Fixed windows are aligned on the clock: freeze it so a window cannot close mid-test.
    monkeypatch.setattr("django_ratelimit.core.time.time", lambda: NOW + 0.25)


def test_an_api_client_over_its_quota_gets_429_with_retry_after_and_one_audit_event(alice_api, alice, active_model):
    alice.api_requests_per_hour = 3
    alice.save(update_fields=["api_requests_per_hour"])
    codes = [alice_api.post(URL, body(transaction_id=f"q-{i}"), format="json").status_code for i in range(5)]
    assert codes == [201, 201, 201, 429, 429]
    refused = alice_api.post(URL, body(transaction_id="q-9"), format="json")
    assert int(refused["Retry-After"]) > 0 and refused["Content-Type"] == "application/problem+json"
    events = AuditEvent.objects.filter(event_type="rate_limit.exceeded")
    assert events.count() == 1 and events.get().actor == alice and events.get().after["limit"] == "api-hour"


def test_admins_raise_a_clients_quota(alice_api, bob_api, alice, bob, active_model):
    for user, quota in ((alice, 2), (bob, 50)):
        user.api_requests_per_hour = quota
        user.save(update_fields=["api_requests_per_hour"])
    assert [alice_api.get(URL).status_code for _ in range(3)] == [200, 200, 429]
    assert [bob_api.get(URL).status_code for _ in range(3)] == [200, 200, 200]


def test_bursts_are_cut_per_second(alice_api, settings, active_model):
    settings.RATE_LIMIT_BURST_PER_SECOND = 2
    assert [alice_api.get(URL).status_code for _ in range(3)] == [200, 200, 429]


def sign_in(client: APIClient, user) -> Response:
    return client.post(TOKEN, {"username": user.username, "password": PASSWORD}, format="json")


def assert_refused_with_retry_after(response) -> None:
    assert response.status_code == 429 and response["Content-Type"] == "application/problem+json"
    assert int(response["Retry-After"]) > 0


def test_token_requests_are_limited_per_ip(alice, settings):
    settings.RATE_LIMIT_TOKEN_PER_MINUTE = 2
    client = APIClient()
    responses = [sign_in(client, alice) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert_refused_with_retry_after(responses[2])


def test_refreshes_over_their_own_limit_leave_sign_in_from_the_same_address_working(alice, settings):
    """Sign-in and refresh each have their own per-IP budget."""
    settings.RATE_LIMIT_PER_MINUTE = 2  # the budget they shared; now the console's alone
    settings.RATE_LIMIT_TOKEN_PER_MINUTE = 2
    settings.RATE_LIMIT_REFRESH_PER_MINUTE = 3
    client = APIClient()
    refresh, codes = sign_in(client, alice).json()["refresh"], []
    for _ in range(4):
        response = client.post(REFRESH, {"refresh": refresh}, format="json")
        codes.append(response.status_code)
        refresh = response.json().get("refresh", refresh)
    assert codes == [200, 200, 200, 429]
    assert_refused_with_retry_after(response)
    event = AuditEvent.objects.get(event_type="rate_limit.exceeded")
    assert event.after["limit"] == "token-refresh" and event.after["allowed"] == 3
    assert sign_in(client, alice).status_code == 200


def test_sign_ins_over_their_limit_leave_refresh_from_the_same_address_working(alice, settings):
    settings.RATE_LIMIT_TOKEN_PER_MINUTE = 2
    settings.RATE_LIMIT_REFRESH_PER_MINUTE = 2
    client = APIClient()
    responses = [sign_in(client, alice) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert_refused_with_retry_after(responses[2])
    assert AuditEvent.objects.get(event_type="rate_limit.exceeded").after["limit"] == "token-ip"
    refreshed = client.post(REFRESH, {"refresh": responses[0].json()["refresh"]}, format="json")
    assert refreshed.status_code == 200 and "access" in refreshed.json()


def test_clients_behind_one_address_each_have_their_own_refresh_budget(alice, bob, settings):
    """Refreshes count per address and account, the account read from a token that verifies;
    tokens that do not verify (garbage, a forged signature) share the address's own budget, so
    they can neither open fresh budgets nor use up a real client's."""
    settings.RATE_LIMIT_REFRESH_PER_MINUTE = 1
    client = APIClient()  # every request from 127.0.0.1: one NAT
    alices, bobs = str(RefreshToken.for_user(alice)), str(RefreshToken.for_user(bob))
    forged = f"{alices.rsplit('.', 1)[0]}.{bobs.rsplit('.', 1)[1]}"  # alice's claims, a signature that fails

    def refresh(token: str) -> int:
        return client.post(REFRESH, {"refresh": token}, format="json").status_code

    assert [refresh("not-a-token"), refresh(forged)] == [401, 429]
    first = client.post(REFRESH, {"refresh": alices}, format="json")
    assert first.status_code == 200
    assert refresh(first.json()["refresh"]) == 429  # alice's budget is used up ...
    assert refresh(bobs) == 200  # ... and bob's is his own
    assert sign_in(client, alice).status_code == 200  # sign-in's too


def test_the_sign_in_limit_defaults_to_the_older_setting_and_refresh_has_its_own():
    read = "s.RATE_LIMIT_TOKEN_PER_MINUTE, s.RATE_LIMIT_REFRESH_PER_MINUTE, s.RATE_LIMIT_PER_MINUTE"
    older = load({"RATE_LIMIT_PER_MINUTE": "17"}, read)
    assert older.returncode == 0, older.stderr
    assert older.stdout.strip() == "(17, 60, 17)"
    both = load(
        {"RATE_LIMIT_PER_MINUTE": "17", "RATE_LIMIT_TOKEN_PER_MINUTE": "5", "RATE_LIMIT_REFRESH_PER_MINUTE": "300"},
        read,
    )
    assert both.stdout.strip() == "(5, 300, 17)", both.stderr


def test_console_sign_in_is_limited_per_ip(carol, settings):
    settings.RATE_LIMIT_PER_MINUTE = 2
    client = Client()
    codes = [
        client.post("/console/login/", {"username": carol.username, "password": "wrong-password-x"}).status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 429]


@pytest.fixture
def redis_down(settings):
    """The rate-limit counters live in a Redis that does not answer."""
    settings.CACHES = {
        **settings.CACHES,
        "ratelimit": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        },
    }
    settings.RATELIMIT_USE_CACHE = "ratelimit"


def test_with_redis_down_token_requests_fail_closed(redis_down, alice):
    response = APIClient().post(
        "/api/v1/auth/token/", {"username": alice.username, "password": PASSWORD}, format="json"
    )
    assert response.status_code == 503 and response["Retry-After"] == "30"
    assert "access" not in response.json()


def test_with_redis_down_console_sign_in_fails_closed(redis_down, carol):
    response = Client().post("/console/login/", {"username": carol.username, "password": PASSWORD})
    assert response.status_code == 503 and "_auth_user_id" not in Client().session


def test_with_redis_down_scoring_fails_open(alice_api, active_model, request):
    request.getfixturevalue("redis_down")  # after the token was issued: sign-in itself fails closed
    assert alice_api.post(URL, body(transaction_id="still-scored"), format="json").status_code == 201
