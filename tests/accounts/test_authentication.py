"""API authentication keeps a client's user row for API_USER_CACHE_SECONDS per process."""

from __future__ import annotations

import pytest

from accounts import authentication

WHOAMI = "/api/v1/auth/whoami/"


@pytest.fixture
def user_cache(settings, monkeypatch):
    settings.API_USER_CACHE_SECONDS = 10.0
    clock = {"now": 1000.0}
    monkeypatch.setattr(authentication.time, "monotonic", lambda: clock["now"])
    authentication.users.clear()
    yield clock
    authentication.users.clear()


def test_a_cached_client_is_authenticated_without_a_query(user_cache, alice_api, django_assert_num_queries):
    assert alice_api.get(WHOAMI).status_code == 200  # reads the row once
    with django_assert_num_queries(0):
        assert alice_api.get(WHOAMI).status_code == 200


def test_a_deactivated_client_is_refused_once_the_cached_row_expires(user_cache, alice_api, alice):
    assert alice_api.get(WHOAMI).status_code == 200
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    user_cache["now"] += 9.9  # within the documented window the cached row still answers
    assert alice_api.get(WHOAMI).status_code == 200
    user_cache["now"] += 0.2
    assert alice_api.get(WHOAMI).status_code == 401


def test_without_a_cache_every_request_reads_the_row(settings, alice_api, alice):
    settings.API_USER_CACHE_SECONDS = 0.0
    assert alice_api.get(WHOAMI).status_code == 200
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    assert alice_api.get(WHOAMI).status_code == 401


def test_the_cache_is_bounded(settings, monkeypatch):
    settings.API_USER_CACHE_SECONDS = 10.0
    monkeypatch.setattr(authentication, "_MAX_USERS", 3)
    cache = authentication._UserCache()
    for i in range(5):
        cache.put(i, f"user-{i}")
    assert [cache.get(i) for i in range(5)] == [None, None, "user-2", "user-3", "user-4"]
