"""Headers, cookies, body limits and Django's deployment checks."""

from __future__ import annotations

import secrets

from django.test import Client

from tests.factories import PASSWORD
from tests.fraud.scoring.test_scoring_api import URL, body
from tests.test_settings import load


def test_pages_carry_a_strict_content_security_policy_and_the_usual_headers(client, db):
    response = client.get("/console/login/")
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_the_docs_ui_needs_no_inline_script(client, db):
    html = client.get("/api/v1/docs/").content.decode()
    assert "<script>" not in html.replace(" ", "")  # every script is loaded from a URL


def test_console_sessions_expire_after_fifteen_idle_minutes(carol):
    client = Client()
    client.login(username=carol.username, password=PASSWORD)
    client.get("/console/")
    assert client.session.get_expiry_age() == 15 * 60
    assert client.cookies["sessionid"]["httponly"]


def test_an_oversized_json_body_is_413_and_stores_nothing(alice_api, active_model, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    response = alice_api.post(URL, {**body(), "transaction_id": "big"} | {"x": "y" * 4000}, format="json")
    assert response.status_code == 413
    assert response["Content-Type"] == "application/problem+json"


def strong_secrets() -> dict[str, str]:
    names = ("SECRET_KEY", "JWT_SECRET", "ENCRYPTION_KEY", "AUDIT_MAC_KEY", "PAN_FINGERPRINT_KEY")
    return {name: secrets.token_urlsafe(48) for name in names}


def test_the_deployment_checklist_passes_under_production_settings():
    env = {"ENVIRONMENT": "production", **strong_secrets(), "ALLOWED_HOSTS": "fraud.example.com"}
    code = (
        "from django.core.management import call_command; call_command('check', '--deploy', '--fail-level', 'WARNING')"
    )
    result = load(env, f"exec({code!r}) or 'ok'")
    assert result.returncode == 0, result.stderr + result.stdout


def test_in_production_the_schema_and_docs_need_a_signed_in_user():
    env = {"ENVIRONMENT": "production", **strong_secrets(), "ALLOWED_HOSTS": "testserver"}
    expr = (
        "[__import__('django.test', fromlist=['Client']).Client().get(p, secure=True).status_code"
        " for p in ('/api/v1/schema/', '/api/v1/docs/')]"
    )
    result = load(env, expr)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[401, 401]" or result.stdout.strip() == "[403, 403]"
