"""Shared fixtures: personas, a trained model, API clients, and service requirements.

Personas (every permission test reads the same way):
- ``alice``: an API client (a payment processor);
- ``bob``: a second API client who must never see Alice's data;
- ``carol``: a fraud analyst;
- ``dave``: an admin.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from django.db import connection
from rest_framework.test import APIClient

from accounts.models import Role
from fraud.modelops.generator import generate
from fraud.modelops.services.lifecycle import model_version_activate
from fraud.scoring.runtime import runtime
from tests.factories import PASSWORD, ModelVersionFactory, UserFactory
from tests.helpers import TrainedArtifact, train_small_model

REQUIRE_SERVICES = os.environ.get("CIPHERGUARD_REQUIRE_SERVICES") == "1"


def _unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"CIPHERGUARD_REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


def required_binary(name: str, install: str) -> str:
    """The path of a command-line tool a test runs; skips (fails under CI) when it is missing."""
    import shutil

    path = shutil.which(name)
    if path is None:
        _unavailable(f"needs {name} ({install}; .ci/run installs it)")
    return path


@pytest.fixture
def postgres(db: None) -> None:
    """Use in tests that prove concurrency or constraints: SQLite cannot show those."""
    if connection.vendor != "postgresql":
        _unavailable("needs PostgreSQL (set DATABASE_URL=postgres://...)")


@pytest.fixture
def postgres_tx(transactional_db: None) -> None:
    if connection.vendor != "postgresql":
        _unavailable("needs PostgreSQL (set DATABASE_URL=postgres://...)")


@pytest.fixture(autouse=True)
def _audit_append_only(request: pytest.FixtureRequest):
    """The production append-only triggers, in every test that touches the database. Installed
    per test (inside its transaction, or dropped again before a transactional test's flush)
    because the flush between transactional tests would otherwise be refused."""
    from audit.db import drop_triggers, install_triggers

    names = set(request.fixturenames)
    if "transactional_db" in names or "live_server" in names:
        request.getfixturevalue("transactional_db")
        install_triggers(connection)
        yield
        drop_triggers(connection)
    elif "db" in names:
        request.getfixturevalue("db")
        install_triggers(connection)
        yield
    else:
        yield


@pytest.fixture(autouse=True)
def _fresh_runtime() -> None:
    """Each test starts with no model and thresholds cached in this process, and an empty
    cache (Redis in CI: a dedicated database, shared by every test)."""
    from django.core.cache import cache

    runtime.invalidate()
    cache.clear()


# --- Data and model ------------------------------------------------------------------------------

SMALL_HISTORY = {"start": datetime(2026, 3, 1, tzinfo=UTC), "days": 45, "customers": 300, "merchants": 40, "seed": 7}


@pytest.fixture(scope="session")
def small_history():
    return generate(**SMALL_HISTORY)


@pytest.fixture(scope="session")
def trained_artifact(small_history) -> TrainedArtifact:
    return train_small_model(small_history, split=datetime(2026, 4, 1, tzinfo=UTC))


@pytest.fixture(scope="session")
def scorer(trained_artifact: TrainedArtifact):
    """The small trained model as the runtime loads it (stateless, so shared by the session)."""
    from fraud.features import definitions as fx
    from fraud.scoring.scorer import OnnxScorer

    return OnnxScorer(
        trained_artifact.artifact,
        expected_sha256=trained_artifact.sha256,
        feature_names=list(fx.FEATURE_NAMES),
        neutral_values=trained_artifact.neutral_values,
    )


@pytest.fixture
def active_model(db: None, trained_artifact: TrainedArtifact):
    version = ModelVersionFactory(
        artifact=trained_artifact.artifact,
        artifact_sha256=trained_artifact.sha256,
        neutral_values=trained_artifact.neutral_values,
    )
    return model_version_activate(version=version)


# --- Personas ------------------------------------------------------------------------------------


@pytest.fixture
def alice(db: None):
    return UserFactory(username="alice-client", role=Role.API_CLIENT)


@pytest.fixture
def bob(db: None):
    return UserFactory(username="bob-client", role=Role.API_CLIENT)


@pytest.fixture
def carol(db: None):
    return UserFactory(username="carol-analyst", role=Role.ANALYST)


@pytest.fixture
def dave(db: None):
    return UserFactory(username="dave-admin", role=Role.ADMIN, is_staff=True, is_superuser=True)


def jwt_client(username: str) -> APIClient:
    """An API client authenticated the way real clients are: a token from the token endpoint."""
    client = APIClient()
    response = client.post("/api/v1/auth/token/", {"username": username, "password": PASSWORD}, format="json")
    assert response.status_code == 200, response.content
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}")
    return client


@pytest.fixture
def alice_api(alice) -> APIClient:
    return jwt_client(alice.username)


@pytest.fixture
def bob_api(bob) -> APIClient:
    return jwt_client(bob.username)


@pytest.fixture
def redis_cache():
    """The configured cache, which must be Redis (django-redis) for this test."""
    from django.conf import settings
    from django.core.cache import cache

    if not settings.REDIS_URL:
        _unavailable("needs Redis (set REDIS_URL=redis://...)")
    return cache
