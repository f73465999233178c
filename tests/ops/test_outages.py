"""A database that cannot be reached is a 503 with Retry-After, never a 500 and never a wait;
readiness answers within its deadline whatever the services do."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
from django.db import DataError, OperationalError

from tests.fraud.scoring.test_scoring_api import URL, body


def refuse(*args, **kwargs):
    raise OperationalError("connection failed: Connection refused")


def assert_retry_later(response) -> None:
    assert response.status_code == 503, response.content
    assert int(response["Retry-After"]) >= 1
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["status"] == 503


@pytest.mark.django_db
def test_a_view_that_loses_the_database_answers_503_with_retry_after(alice_api, active_model, monkeypatch):
    monkeypatch.setattr("fraud.scoring.apis.transaction_score", refuse)
    monkeypatch.setattr("fraud.scoring.apis.transaction_list_for_client", refuse)
    assert_retry_later(alice_api.post(URL, body(transaction_id="o-1"), format="json"))
    assert_retry_later(alice_api.get(URL))


@pytest.mark.django_db
def test_the_pool_running_dry_is_a_503_too(alice_api, active_model, monkeypatch):
    from psycopg_pool import PoolTimeout

    def exhausted(**kwargs):
        # What Django raises when psycopg's pool hands out no connection in time.
        raise OperationalError("couldn't get a connection after 3.00 sec") from PoolTimeout("timeout")

    monkeypatch.setattr("fraud.scoring.apis.transaction_score", exhausted)
    assert_retry_later(alice_api.post(URL, body(transaction_id="o-2"), format="json"))


@pytest.mark.django_db
def test_a_database_error_that_is_a_bug_stays_a_500(alice_api, active_model, monkeypatch):
    def bug(**kwargs):
        raise DataError("value too long")

    monkeypatch.setattr("fraud.scoring.apis.transaction_score", bug)
    alice_api.raise_request_exception = False
    assert alice_api.post(URL, body(transaction_id="o-3"), format="json").status_code == 500


@pytest.mark.django_db
def test_the_database_lost_outside_a_view_is_a_503_page_for_people(client, db, monkeypatch):
    # The session middleware reads the database before any view runs.
    monkeypatch.setattr("django.contrib.sessions.backends.db.SessionStore.load", refuse)
    client.raise_request_exception = False
    client.cookies["sessionid"] = "x" * 32
    response = client.get("/console/")
    assert response.status_code == 503 and response["Retry-After"]
    assert b"briefly unavailable" in response.content and response["Content-Type"].startswith("text/html")


@pytest.mark.django_db
def test_readiness_answers_within_its_deadline_when_the_database_hangs(client, active_model, monkeypatch):
    import cipherguard.views as views

    release = threading.Event()

    def hangs() -> str:
        release.wait(10)  # a stopped server holds a connect for its whole timeout
        return "ok"

    # The threaded path, as on PostgreSQL (SQLite's local file is checked inline).
    monkeypatch.setattr(views, "connection", SimpleNamespace(vendor="postgresql"))
    monkeypatch.setattr(views, "_database_check", hangs)
    try:
        response = client.get("/readyz")
        # Had it waited for the check, the check would have said "ok" (the event is set below).
        assert response.status_code == 503
        assert response.json()["checks"] == {"database": "unavailable", "cache": "ok", "model": "unknown"}
    finally:
        release.set()


@pytest.fixture
def breaker(settings):
    from cipherguard.dbhealth import breaker

    settings.DB_BREAKER_PROBE_SECONDS = 0.05
    breaker.reset()
    yield breaker
    breaker.reset()


@pytest.mark.django_db
def test_an_outage_answers_503_at_once_until_a_probe_finds_the_database_back(
    alice_api, active_model, monkeypatch, breaker
):
    import cipherguard.dbhealth as dbhealth

    calls: list[int] = []
    back = threading.Event()

    def refuse_counted(**kwargs):
        calls.append(1)
        refuse()

    monkeypatch.setattr("fraud.scoring.apis.transaction_score", refuse_counted)
    monkeypatch.setattr(dbhealth, "_answers", back.is_set)  # the probe: down until the event is set
    assert_retry_later(alice_api.post(URL, body(transaction_id="b-1"), format="json"))
    assert breaker.is_open
    for i in range(3):
        assert_retry_later(alice_api.post(URL, body(transaction_id=f"b-{i + 2}"), format="json"))
    assert len(calls) == 1  # later requests did not wait for the database
    assert alice_api.get("/healthz").status_code == 200  # process endpoints are never cut short
    assert client_readyz(alice_api)["database"] == "unavailable"

    back.set()
    for _ in range(100):  # the probe runs every 0.05 s here
        if not breaker.is_open:
            break
        time.sleep(0.05)
    assert not breaker.is_open
    monkeypatch.undo()
    assert alice_api.post(URL, body(transaction_id="b-9"), format="json").status_code == 201


@pytest.mark.django_db
def test_a_statement_timeout_is_a_503_for_its_request_only(alice_api, active_model, monkeypatch, breaker):
    class QueryCanceledError(Exception):  # psycopg.errors.QueryCanceled, by its SQLSTATE
        sqlstate = "57014"

    def slow(**kwargs):
        raise OperationalError("canceling statement due to statement timeout") from QueryCanceledError()

    monkeypatch.setattr("fraud.scoring.apis.transaction_score", slow)
    assert_retry_later(alice_api.post(URL, body(transaction_id="s-1"), format="json"))
    assert not breaker.is_open


def client_readyz(api) -> dict:
    return api.get("/readyz").json()["checks"]
