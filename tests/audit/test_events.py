"""What is audited, by whom, in the same transaction as the change — and what never is."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from audit.models import ActorType, AuditEvent
from fraud.modelops.services.lifecycle import model_version_activate
from fraud.models import ModelStatus
from fraud.rules.services import thresholds_update
from tests.factories import PASSWORD, ModelVersionFactory, UserFactory


def events(event_type: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event_type=event_type).order_by("seq"))


def test_console_logins_and_failures_are_recorded_without_the_password(client, carol):
    client.post("/console/login/", {"username": carol.username, "password": "wrong-password-123"})
    client.post("/console/login/", {"username": carol.username, "password": PASSWORD})

    failed, ok = events("auth.login_failed"), events("auth.login")
    assert [e.actor_label for e in failed] == [carol.username] and not failed[0].success
    assert ok[0].actor == carol and ok[0].success and ok[0].origin_ip == "127.0.0.1" and ok[0].request_id
    dumped = json.dumps(list(AuditEvent.objects.values()), default=str)
    assert "wrong-password-123" not in dumped and PASSWORD not in dumped


def test_api_clients_cannot_sign_in_to_the_console(client, alice):
    response = client.post("/console/login/", {"username": alice.username, "password": PASSWORD})
    assert response.status_code == 200 and "This account cannot use the console." in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert [e.success for e in events("auth.login_failed")] == [False]


def test_token_requests_are_recorded(alice):
    api = APIClient()
    api.post("/api/v1/auth/token/", {"username": alice.username, "password": "nope-nope-nope"}, format="json")
    response = api.post("/api/v1/auth/token/", {"username": alice.username, "password": PASSWORD}, format="json")
    assert [e.success for e in events("auth.token_failed")] == [False]
    issued = events("auth.token")
    assert issued[0].actor == alice and issued[0].actor_type == ActorType.API_CLIENT
    assert response.json()["access"] not in json.dumps(list(AuditEvent.objects.values()), default=str)


def test_threshold_changes_record_before_and_after(dave):
    thresholds_update(review=0.3, decline=0.7, actor=dave)
    event = events("thresholds.changed")[0]
    assert (event.actor, event.before, event.after) == (
        dave,
        {"review": 0.5, "decline": 0.9},
        {"review": 0.3, "decline": 0.7},
    )


def test_activations_and_rollbacks_are_recorded(dave):
    first = model_version_activate(version=ModelVersionFactory(), actor=dave)
    model_version_activate(version=ModelVersionFactory(), actor=dave)
    model_version_activate(version=first, actor=dave)
    assert [e.event_type for e in AuditEvent.objects.order_by("seq")] == [
        "model.activated",
        "model.activated",
        "model.rolled_back",
    ]
    first.refresh_from_db()
    assert first.status == ModelStatus.ACTIVE


def test_user_and_role_changes_in_the_admin_are_recorded(client, dave):
    target = UserFactory(username="erin", role="analyst")
    client.login(username=dave.username, password=PASSWORD)
    response = client.post(
        f"/admin/accounts/user/{target.pk}/change/",
        {
            "username": "erin",
            "role": "admin",
            "is_active": "on",
            "first_name": "",
            "last_name": "",
            "email": "",
            "last_login_0": "",
            "last_login_1": "",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    event = events("user.changed")[0]
    assert event.actor == dave and event.before == {"role": "analyst"} and event.after == {"role": "admin"}
    target.refresh_from_db()
    assert target.is_staff  # the admin role brings Django-admin access


def test_api_client_rotation_and_deactivation_are_recorded(client, dave, alice):
    client.login(username=dave.username, password=PASSWORD)
    client.post("/admin/accounts/user/", {"action": "rotate_api_client_credentials", "_selected_action": [alice.pk]})
    client.post("/admin/accounts/user/", {"action": "deactivate_api_clients", "_selected_action": [alice.pk]})
    assert [
        e.event_type
        for e in AuditEvent.objects.filter(object_id=str(alice.pk), event_type__startswith="api_client").order_by("seq")
    ] == [
        "api_client.credentials_rotated",
        "api_client.deactivated",
    ]
    alice.refresh_from_db()
    assert not alice.is_active and not alice.check_password(PASSWORD)


def test_viewing_the_audit_log_is_itself_recorded(client, dave):
    client.login(username=dave.username, password=PASSWORD)
    assert client.get("/admin/audit/auditevent/?event_type=auth.login").status_code == 200
    viewed = events("audit.viewed")
    assert viewed and viewed[-1].actor == dave and viewed[-1].after == {"filters": {"event_type": "auth.login"}}


def test_a_failed_change_leaves_no_audit_event(dave):
    with pytest.raises(ValueError, match="must be lower than the decline threshold"):
        thresholds_update(review=0.9, decline=0.1, actor=dave)
    assert not events("thresholds.changed")
