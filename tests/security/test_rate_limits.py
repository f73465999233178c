"""Rate limits: 429 with Retry-After and an audit event; quotas per client; a decided behaviour
per endpoint when the counter store is down."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from audit.models import AuditEvent
from tests.factories import PASSWORD
from tests.fraud.scoring.test_scoring_api import URL, body

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


def test_token_requests_are_limited_per_ip(alice, settings):
    settings.RATE_LIMIT_PER_MINUTE = 2
    client = APIClient()
    codes = [
        client.post(
            "/api/v1/auth/token/", {"username": alice.username, "password": PASSWORD}, format="json"
        ).status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 429]


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
