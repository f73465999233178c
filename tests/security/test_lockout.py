"""Repeated failures lock a username (console, admin and token requests alike) for 30 minutes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from tests.factories import PASSWORD


@pytest.fixture(autouse=True)
def axes_on(settings):
    settings.AXES_ENABLED = True


def console_login(username: str, password: str) -> int:
    return Client().post("/console/login/", {"username": username, "password": password}).status_code


def token(username: str, password: str) -> int:
    response = APIClient().post("/api/v1/auth/token/", {"username": username, "password": password}, format="json")
    assert response.status_code != 200 or "access" in response.json()
    return response.status_code


def test_ten_failures_lock_the_username_even_for_the_right_password(carol, dave):
    for _ in range(9):
        assert console_login(carol.username, "wrong-password-x") == 200  # the form again, with an error
    assert console_login(carol.username, PASSWORD) == 302  # a success before the limit resets the count
    for _ in range(10):
        console_login(carol.username, "wrong-password-x")
    assert console_login(carol.username, PASSWORD) == 429  # locked, right password or not
    assert console_login(dave.username, PASSWORD) == 302  # per username: others are unaffected


def test_token_requests_count_towards_the_same_lockout(alice):
    for _ in range(10):
        assert token(alice.username, "wrong-password-x") == 401
    assert token(alice.username, PASSWORD) != 200  # locked: the right password gets no token
    assert console_login(alice.username, PASSWORD) == 429


def test_the_lock_lifts_after_thirty_minutes(carol, settings):
    from axes.models import AccessAttempt

    for _ in range(10):
        console_login(carol.username, "wrong-password-x")
    assert console_login(carol.username, PASSWORD) == 429
    assert timedelta(minutes=30) <= settings.AXES_COOLOFF_TIME
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=31))
    assert console_login(carol.username, PASSWORD) == 302
