"""The read replica, against a real streaming replica of the test database.

A second PostgreSQL server is seeded with ``pg_basebackup`` and streams from the test server
(tests/pg_replica.py). Pausing its WAL replay makes it stale on purpose: a page that shows the
stale state read the replica, one that shows the fresh state read the primary.
"""

from __future__ import annotations

import contextlib
import copy
import time

import psycopg
import pytest
from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext

from cipherguard.replica import REPLICA, health
from tests.conftest import _unavailable
from tests.factories import CaseFactory
from tests.fraud.scoring.test_scoring_api import body
from tests.pg_replica import Replica, ReplicaUnavailableError, start_replica

# The replica alias is attached by the module fixture; these tests may use it.
pytestmark = pytest.mark.django_db(transaction=True, databases=["default", REPLICA])


def _primary_dsn() -> dict[str, object]:
    db = connection.settings_dict
    return {"host": db["HOST"] or "127.0.0.1", "port": int(db["PORT"] or 5432), "user": db["USER"] or "postgres"}


@pytest.fixture(scope="module")
def replica_server(django_db_setup, django_db_blocker):
    """The replica, attached as the ``replica`` database (a test mirror of ``default``: Django
    neither creates nor empties it, the primary's changes arrive by replication)."""
    if connection.vendor != "postgresql":
        _unavailable("needs PostgreSQL (set DATABASE_URL=postgres://...)")
    try:
        server = start_replica(_primary_dsn())
    except ReplicaUnavailableError as exc:
        _unavailable(f"no streaming replica on this machine: {exc}")
    conf = copy.deepcopy(connections.settings["default"])
    conf.update(HOST="127.0.0.1", PORT=str(server.port))
    conf["OPTIONS"]["pool"]["timeout"] = 2
    conf["TEST"] = {**conf.get("TEST", {}), "MIRROR": "default"}
    connections.settings[REPLICA] = conf
    yield server
    with contextlib.suppress(Exception):
        connections[REPLICA].close_pool()
    del connections[REPLICA]
    del connections.settings[REPLICA]
    server.remove()


@pytest.fixture
def primary(postgres_tx):
    with psycopg.connect(**_primary_dsn(), dbname=connection.settings_dict["NAME"], autocommit=True) as conn:
        yield conn


@pytest.fixture
def replica(replica_server: Replica, primary, settings):
    """The replica for one test, probed on every use."""
    settings.DATABASE_REPLICA_CHECK_SECONDS = 0
    settings.DATABASE_REPLICA_MAX_LAG_SECONDS = 3600
    health.reset()
    yield replica_server
    with replica_server.connect() as conn:
        if conn.execute("SELECT pg_is_wal_replay_paused()").fetchone()[0]:
            conn.execute("SELECT pg_wal_replay_resume()")
    connections[REPLICA].close_pool()  # connections opened during the test go with it
    health.reset()


def pause_replay(replica: Replica, primary: psycopg.Connection) -> None:
    replica.wait_caught_up(primary)
    with replica.connect() as conn:
        conn.execute("SELECT pg_wal_replay_pause()")


@pytest.fixture
def carol_client(carol) -> Client:
    client = Client()
    client.force_login(carol)
    return client


def test_analytics_pages_read_the_replica_until_it_lags(replica, primary, carol_client, alice, settings):
    CaseFactory(transaction__owner=alice, transaction__customer_id="written-before-the-pause")
    pause_replay(replica, primary)
    CaseFactory(transaction__owner=alice, transaction__customer_id="written-after-the-pause")

    with CaptureQueriesContext(connections[REPLICA]) as on_replica:
        page = carol_client.get("/console/").content.decode()
    assert "written-before-the-pause" in page
    assert "written-after-the-pause" not in page  # the replica has not replayed it: read there
    assert len(on_replica) > 0

    # Replay stays paused, so the replica falls ever further behind: past the allowed lag, the
    # same page reads the primary.
    settings.DATABASE_REPLICA_MAX_LAG_SECONDS = 0.5
    time.sleep(1.0)
    with CaptureQueriesContext(connections[REPLICA]) as on_replica:
        page = carol_client.get("/console/").content.decode()
    assert "written-after-the-pause" in page
    assert len(on_replica) == 0
    assert health.reason.startswith("lagging")


def test_dashboard_drift_and_metrics_read_the_replica(replica, carol_client):
    for url in ("/console/dashboard/", "/console/drift/", "/metrics"):
        with CaptureQueriesContext(connections[REPLICA]) as on_replica:
            assert carol_client.get(url).status_code == 200
        assert len(on_replica) > 0, url


def test_scoring_never_reads_the_replica(replica, alice_api, active_model):
    with CaptureQueriesContext(connections[REPLICA]) as on_replica:
        assert alice_api.post("/api/v1/transactions/", body(transaction_id="r-1"), format="json").status_code == 201
        assert alice_api.get("/api/v1/transactions/r-1/").status_code == 200
    assert len(on_replica) == 0


def test_after_a_change_the_user_reads_the_primary(replica, primary, carol_client, dave, alice):
    case = CaseFactory(transaction__owner=alice)
    pause_replay(replica, primary)
    CaseFactory(transaction__owner=alice, transaction__customer_id="fresh-case")

    response = carol_client.post(f"/console/cases/{case.pk}/note/", {"body": "checked with the customer"})
    assert response.status_code == 302
    assert "fresh-case" in carol_client.get("/console/").content.decode()  # her own session: primary

    other = Client()
    other.force_login(dave)  # changed nothing: still served from the (stale) replica
    assert "fresh-case" not in other.get("/console/").content.decode()


def test_a_replica_that_is_down_is_skipped(replica, carol_client, alice):
    CaseFactory(transaction__owner=alice, transaction__customer_id="while-the-replica-is-down")
    replica.stop()
    try:
        response = carol_client.get("/console/")
        assert response.status_code == 200
        assert "while-the-replica-is-down" in response.content.decode()
        assert health.reason.startswith("unreachable")
    finally:
        replica.start()


def test_a_replica_failing_mid_request_is_retried_on_the_primary(replica, carol_client, alice, settings):
    settings.DATABASE_REPLICA_CHECK_SECONDS = 3600  # the probe said "usable" and is not asked again
    assert carol_client.get("/console/").status_code == 200  # pooled connections to the replica now open
    CaseFactory(transaction__owner=alice, transaction__customer_id="after-the-crash")
    replica.stop()
    try:
        response = carol_client.get("/console/")
        assert response.status_code == 200
        assert "after-the-crash" in response.content.decode()
        assert health.usable is False and health.reason.startswith("query failed")
    finally:
        replica.start()


def test_an_object_written_to_the_primary_is_reread_there(replica, primary, alice):
    """Inside analytics reads, refreshing an object just written (e.g. a new model version) must
    not look for it on a replica that has not replayed it."""
    from cipherguard.replica import analytics_reads

    pause_replay(replica, primary)
    case = CaseFactory(transaction__owner=alice)
    with analytics_reads() as on_replica:
        assert on_replica
        case.refresh_from_db()  # DoesNotExist if it went to the paused replica
        assert case.transaction.owner_id == alice.pk
