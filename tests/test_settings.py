"""The settings manifest: environment in, configuration out; production refuses unsafe input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STRONG = {
    "SECRET_KEY": "s" * 50,
    "JWT_SECRET": "j" * 50,
    "ENCRYPTION_KEY": "e" * 44,
    "AUDIT_MAC_KEY": "a" * 44,
    "PAN_FINGERPRINT_KEY": "p" * 44,
    "ALLOWED_HOSTS": "fraud.example.com",
}


def load(env: dict[str, str], expr: str = "'ok'") -> subprocess.CompletedProcess:
    """Import the real settings in a fresh interpreter with exactly this environment."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "REDIS_", "DJANGO_", "ENVIRONMENT", "DEBUG"))
    }
    clean |= {
        "DJANGO_SETTINGS_MODULE": "cipherguard.settings",
        "CIPHERGUARD_VAR_DIR": str(ROOT / "var" / "settings-test"),
    }
    code = f"import django; django.setup(); from django.conf import settings as s; print(repr(({expr})))"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=clean | env, capture_output=True, text=True, timeout=60
    )


def test_development_defaults_run_on_sqlite_with_an_in_process_cache():
    result = load({}, "s.DATABASES['default']['ENGINE'], s.CACHES['default']['BACKEND'], s.DEBUG")
    assert result.returncode == 0, result.stderr
    assert "sqlite3" in result.stdout and "LocMemCache" in result.stdout and "True" in result.stdout


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({}, "SECRET_KEY is missing"),
        ({**STRONG, "JWT_SECRET": ""}, "JWT_SECRET is missing"),
        ({**STRONG, "ENCRYPTION_KEY": ""}, "ENCRYPTION_KEY is missing"),
        ({**STRONG, "SECRET_KEY": "short"}, "SECRET_KEY must be at least 32"),
        ({**STRONG, "DEBUG": "true"}, "DEBUG must be off"),
        ({**STRONG, "JWT_SECRET": "s" * 50}, "JWT_SECRET must differ"),
        ({**STRONG, "ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS is empty"),
    ],
)
def test_production_refuses_to_start_without_real_secrets(env, complaint):
    result = load({"ENVIRONMENT": "production", **env})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and complaint in result.stderr


def test_production_starts_with_real_secrets():
    result = load({"ENVIRONMENT": "production", **STRONG}, "s.DEBUG, s.SESSION_COOKIE_SECURE")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(False, True)"


def test_a_postgres_url_uses_psycopg_with_a_bounded_pool():
    result = load(
        {"DATABASE_URL": "postgres://app:p%40ss@db.internal:6543/fraud", "DB_POOL_SIZE": "7"},
        "s.DATABASES['default']['NAME'], s.DATABASES['default']['PASSWORD'], s.DATABASES['default']['PORT'], s.DATABASES['default']['OPTIONS']['pool']",
    )
    assert result.returncode == 0, result.stderr
    assert "'fraud'" in result.stdout and "'p@ss'" in result.stdout and "'6543'" in result.stdout
    assert "'max_size': 7" in result.stdout and "'timeout': 0.5" in result.stdout


def test_every_database_wait_is_bounded():
    result = load(
        {"DATABASE_URL": "postgres://app@db.internal:5432/fraud"},
        "s.DATABASES['default']['OPTIONS'], s.DATABASES['default']['CONN_HEALTH_CHECKS']",
    )
    assert result.returncode == 0, result.stderr
    for bound in ("'timeout': 0.5", "'connect_timeout': 2", "statement_timeout=30000", "'keepalives': 1"):
        assert bound in result.stdout, bound
    assert result.stdout.strip().endswith("True)")  # pooled connections checked as they are handed out


def test_a_redis_url_uses_django_redis_with_a_bounded_pool():
    result = load({"REDIS_URL": "redis://127.0.0.1:6379/3", "REDIS_MAX_CONNECTIONS": "9"}, "s.CACHES['default']")
    assert result.returncode == 0, result.stderr
    assert "django_redis.cache.RedisCache" in result.stdout and "'max_connections': 9" in result.stdout


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"DB_POOL_SIZE": "many"}, "DB_POOL_SIZE must be an integer"),
        ({"FRAUD_THRESHOLD": "1.5"}, "FRAUD_THRESHOLD must be <= 1.0"),
        ({"FRAUD_THRESHOLD": "0.95"}, "must be below FRAUD_DECLINE_THRESHOLD"),
        ({"DEBUG": "perhaps"}, "DEBUG must be a boolean"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL must start with postgres://"),
        ({"ENVIRONMENT": "staging"}, "ENVIRONMENT must be development, production or test"),
    ],
)
def test_bad_values_are_named(env, complaint):
    result = load(env)
    assert result.returncode != 0
    assert complaint in result.stderr


def test_drf_settings_load_in_any_import_order():
    # A Celery worker's startup checks load DRF's pagination setting before anything imports
    # rest_framework.views; that once failed with a circular import.
    result = load({}, "str(__import__('rest_framework.settings').settings.api_settings.DEFAULT_PAGINATION_CLASS)")
    assert result.returncode == 0, result.stderr
    assert "Pagination" in result.stdout
