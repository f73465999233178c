"""Who may reach what in the console and the admin: role × URL × method, against one table."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.factories import PASSWORD, CaseFactory

# Expected status per role. "login" = redirect to a login page; "ok-redirect" = the action ran
# and redirected back to the console.
EXPECTED = {
    # (method, url):                              anonymous   api_client  analyst        admin
    ("GET", "/console/"): ("login", 403, 200, 200),
    ("GET", "/console/dashboard/"): ("login", 403, 200, 200),
    ("GET", "/console/cases/{case}/"): ("login", 403, 200, 200),
    ("POST", "/console/take-next/"): ("login", 403, "ok-redirect", "ok-redirect"),
    ("POST", "/console/bulk/"): ("login", 403, "ok-redirect", "ok-redirect"),
    ("POST", "/console/cases/{case}/assign/"): ("login", 403, "ok-redirect", "ok-redirect"),
    ("POST", "/console/cases/{case}/note/"): ("login", 403, "ok-redirect", "ok-redirect"),
    ("POST", "/console/cases/{case}/escalate/"): ("login", 403, "ok-redirect", "ok-redirect"),
    ("POST", "/console/cases/{case}/close/"): ("login", 403, "ok-redirect", "ok-redirect"),
    ("POST", "/console/cases/{case}/close-group/"): ("login", 403, "ok-redirect", "ok-redirect"),
    ("GET", "/console/batches/"): ("login", 403, 200, 200),
    ("POST", "/console/batches/"): ("login", 403, 200, 200),  # no file: the form comes back with its error
    ("GET", "/console/batches/{batch}/"): ("login", 403, 200, 200),
    ("GET", "/console/batches/{batch}/results.csv"): ("login", 403, 200, 200),
    ("GET", "/console/drift/"): ("login", 403, 200, 200),
    # Every client's webhook endpoints: admins only (clients read theirs through the API).
    ("GET", "/console/webhooks/"): ("login", 403, 403, 200),
    ("GET", "/console/take-next/"): (405, 405, 405, 405),
    ("POST", "/console/"): (405, 405, 405, 405),
    ("GET", "/admin/"): ("login", "login", "login", 200),
    ("GET", "/admin/audit/auditevent/"): ("login", "login", "login", 200),
    # The thresholds are one row: their list opens straight on its form.
    ("GET", "/admin/fraud/decisionthresholds/"): ("login", "login", "login", "thresholds-form"),
    ("GET", "/admin/accounts/user/"): ("login", "login", "login", 200),
    ("GET", "/admin/fraud/webhookendpoint/"): ("login", "login", "login", 200),
    ("GET", "/admin/fraud/webhookdelivery/"): ("login", "login", "login", 200),
}
ROLES = ["anonymous", "api_client", "analyst", "admin"]
CASES = [
    (method, url, role, expected[i]) for (method, url), expected in EXPECTED.items() for i, role in enumerate(ROLES)
]


@pytest.mark.parametrize(("method", "url", "role", "expected"), CASES, ids=[f"{m} {u} as {r}" for m, u, r, _ in CASES])
def test_role_access(db, method, url, role, expected, alice, carol, dave):
    from fraud.batches.services import batch_create_from_items

    case = CaseFactory()
    batch = batch_create_from_items(owner=alice, items=[{"transaction_id": "x"}])
    client = Client()
    user = {"api_client": alice, "analyst": carol, "admin": dave}.get(role)
    if user:
        client.login(username=user.username, password=PASSWORD)
    data = {
        "assignee": str(carol.pk),
        "body": "a note",
        "outcome": "legitimate",
        "action": "assign",
        "cases": [str(case.pk)],
    }
    target = url.format(case=case.pk, batch=batch.pk)
    response = client.get(target) if method == "GET" else client.post(target, data)

    if expected == "login":
        assert response.status_code == 302 and "login" in response["Location"]
    elif expected == "thresholds-form":
        assert response.status_code == 302
        assert re.fullmatch(r"/admin/fraud/decisionthresholds/\d+/change/", response["Location"])
        assert client.get(response["Location"]).status_code == 200
    elif expected == "ok-redirect":
        assert response.status_code == 302 and response["Location"].startswith("/console/")
    else:
        assert response.status_code == expected


def test_console_forms_need_a_csrf_token(db, carol):
    case = CaseFactory()
    client = Client(enforce_csrf_checks=True)
    client.login(username=carol.username, password=PASSWORD)
    assert client.post(f"/console/cases/{case.pk}/close/", {"outcome": "legitimate"}).status_code == 403
    case.refresh_from_db()
    assert case.status == "open"


def test_an_unknown_case_is_404(db, carol):
    client = Client()
    client.login(username=carol.username, password=PASSWORD)
    assert client.get("/console/cases/999999/").status_code == 404
    assert client.post("/console/cases/999999/close/", {"outcome": "legitimate"}).status_code == 404
