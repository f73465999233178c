"""Every API route × method × role against the committed table in api_access.json, and
object-level isolation between two API clients on every object route."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from fraud.models import BatchJob, Transaction, WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint
from fraud.webhooks.events import webhook_events_record
from fraud.webhooks.services import webhook_endpoint_create
from tests.conftest import jwt_client
from tests.fraud.scoring.test_scoring_api import URL, body

TABLE = json.loads((Path(__file__).parent / "api_access.json").read_text())
CASES = [
    (route["method"], route["path"], role, route["expect"][i])
    for route in TABLE["routes"]
    for i, role in enumerate(TABLE["roles"])
]


WEBHOOK_URL = "http://127.0.0.1:9/hooks"  # never posted to: nothing here sends deliveries


def payload(path: str) -> dict:
    if path.endswith("/webhooks/"):
        return {"url": WEBHOOK_URL, "event_types": ["transaction.flagged"]}
    if path.endswith("/rotate-secret/") or path.endswith("/resend/"):
        return {}
    if path.endswith("/webhooks/{webhook}/"):
        return {"description": "changed"}
    if path.endswith("/feedback/"):
        return {"label": "fraud"}
    if path.endswith("/transactions/batch/"):
        return {"transactions": [body(transaction_id="m-batch")]}
    if path.endswith("/batches/"):
        return {"transactions": [body(transaction_id="m-job")]}
    return body(transaction_id="m-new")


@pytest.fixture
def objects(alice, active_model, settings):
    api = jwt_client(alice.username)
    api.post(URL, body(transaction_id="m-tx"), format="json")
    job = api.post("/api/v1/batches/", {"transactions": [body(transaction_id="m-j0")]}, format="json").json()["id"]
    # The SSRF guard refuses loopback unless an operator allows it.
    settings.WEBHOOKS_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.WEBHOOKS_HTTPS_ONLY = False
    endpoint = webhook_endpoint_create(owner=alice, url=WEBHOOK_URL, event_types=["transaction.flagged"]).endpoint
    with transaction.atomic():
        webhook_events_record(event_type="transaction.flagged", owner=alice, payloads=[{"transaction_id": "m-tx"}])
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=WebhookDeliveryStatus.DELIVERED)  # re-sendable
    return {"tx": "m-tx", "batch": job, "webhook": endpoint.pk, "delivery": delivery.pk}


@pytest.mark.parametrize(("method", "path", "role", "expected"), CASES, ids=[f"{m} {p} as {r}" for m, p, r, _ in CASES])
def test_route_access_matches_the_table(objects, method, path, role, expected, carol, dave):
    users = {"api_client": "alice-client", "analyst": carol.username, "admin": dave.username}
    client = jwt_client(users[role]) if role in users else APIClient()
    response = client.generic(
        method, path.format(**objects), json.dumps(payload(path)), content_type="application/json"
    )
    if expected == "ok":
        assert 200 <= response.status_code < 300, response.content[:300]
    else:
        assert response.status_code == expected, response.content[:300]


def test_every_object_route_hides_other_clients_objects(objects, bob):
    bob_api = jwt_client(bob.username)
    for method, path in [
        ("GET", "/api/v1/transactions/{tx}/"),
        ("POST", "/api/v1/transactions/{tx}/feedback/"),
        ("GET", "/api/v1/batches/{batch}/"),
        ("GET", "/api/v1/batches/{batch}/results/"),
        ("POST", "/api/v1/batches/{batch}/cancel/"),
        ("GET", "/api/v1/webhooks/{webhook}/"),
        ("PATCH", "/api/v1/webhooks/{webhook}/"),
        ("DELETE", "/api/v1/webhooks/{webhook}/"),
        ("POST", "/api/v1/webhooks/{webhook}/rotate-secret/"),
        ("GET", "/api/v1/webhooks/{webhook}/deliveries/"),
        ("POST", "/api/v1/webhooks/{webhook}/deliveries/{delivery}/resend/"),
    ]:
        response = bob_api.generic(
            method, path.format(**objects), json.dumps({"label": "fraud"}), content_type="application/json"
        )
        assert response.status_code == 404, (method, path, response.status_code)
    assert Transaction.objects.get(transaction_id="m-tx").label == ""
    assert BatchJob.objects.get(pk=objects["batch"]).status == "queued"
    endpoint = WebhookEndpoint.objects.get(pk=objects["webhook"])
    assert (endpoint.enabled, endpoint.description, endpoint.previous_secret) == (True, "", "")
    assert WebhookDelivery.objects.get(pk=objects["delivery"]).status == WebhookDeliveryStatus.DELIVERED


def test_writing_read_only_fields_changes_nothing(alice_api, alice, active_model):
    response = alice_api.post(
        URL,
        body(transaction_id="mass", fraud_score=0.0, decision="approve", owner=999, model_version="x"),
        format="json",
    )
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"fraud_score", "decision", "owner", "model_version"}
    assert not Transaction.objects.filter(transaction_id="mass").exists()


def test_api_errors_are_problem_documents_even_with_debug_on(alice_api, settings, monkeypatch):
    """``make run`` serves with DEBUG on: Django's technical 404 (which lists every route) and its
    debug 500 page must not reach an API client."""
    from rest_framework.test import APIClient

    settings.DEBUG = True
    response = alice_api.get("/api/v1/nothing/")
    assert response.status_code == 404 and response["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 404 and "urlpatterns" not in response.content.decode()
    assert APIClient().get("/api/v2/anything").status_code == 404

    response = alice_api.delete("/api/v1/auth/whoami/")
    assert response.status_code == 405 and response["Content-Type"] == "application/problem+json"

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    from accounts import apis

    monkeypatch.setattr(apis.WhoAmIApi, "get", broken)
    client = alice_api
    client.raise_request_exception = False
    response = client.get("/api/v1/auth/whoami/")
    assert response.status_code == 500 and response["Content-Type"] == "application/problem+json"
    assert "a bug" not in response.content.decode() and "Traceback" not in response.content.decode()


def test_malformed_json_and_a_bad_token_say_what_to_do(alice_api):
    from rest_framework.test import APIClient

    response = alice_api.post("/api/v1/transactions/", "{not json", content_type="application/json")
    assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"
    assert (
        "not valid JSON" in response.json()["detail"] and "Content-Type: application/json" in response.json()["detail"]
    )

    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    response = stranger.get("/api/v1/auth/whoami/")
    assert response.status_code == 401 and response.json()["code"] == "token_not_valid"
    assert "POST /api/v1/auth/token/" in response.json()["detail"]
