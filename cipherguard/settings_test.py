"""Test overlay: the real settings, made fast and deterministic for pytest."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cipherguard.env import env_str
from cipherguard.settings import *  # noqa: F403

ENVIRONMENT = "test"
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tests change the active model and thresholds through services, which refresh this process at
# once; a long poll interval keeps query counts on the hot path deterministic.
FRAUD_RUNTIME_REFRESH_SECONDS = 3600.0
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# pytest-django empties every table between transactional tests, which append-only triggers
# refuse; tests install the production triggers per test instead (tests/conftest.py).
AUDIT_TRIGGERS = False
# Tasks enqueued by tests go to an in-memory broker unless CI points them at Redis for the tests
# that start a real worker (tests/fraud/test_worker.py).
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "memory://")
CELERY_BROKER_TRANSPORT_OPTIONS = {} if CELERY_BROKER_URL.startswith("memory") else {"visibility_timeout": 60}
# django-axes refuses authenticate() calls without a request, which Django's test Client.login
# makes; the lockout tests turn it back on (tests/security/test_lockout.py).
AXES_ENABLED = False
# Rate limits would trip over the suite's bursts of requests; tests/security/test_rate_limits.py
# turns them on.
RATE_LIMIT_ENABLED = False
# Tests change users and expect the next request to see it; the cache has its own tests.
API_USER_CACHE_SECONDS = 0.0
# A developer's own checkpoints (var/, written by a local beat) describe another database: the
# suite never checks its chains against them. Tests that write checkpoints name their own file.
AUDIT_CHECKPOINT_FILE = Path(tempfile.gettempdir()) / f"cipherguard-test-checkpoints-{os.getpid()}.jsonl"
# The database breaker is process-wide state; tests that mock an outage would leave it open for
# the next test. Its own tests turn it on (tests/ops/test_outages.py).
DB_BREAKER_PROBE_SECONDS = 0.0
