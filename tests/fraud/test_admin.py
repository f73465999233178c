"""Admins change thresholds and activate models in the Django admin, through the services."""

from __future__ import annotations

from fraud.models import DecisionThresholds, ModelStatus
from fraud.scoring import thresholds_row
from tests.factories import PASSWORD, ModelVersionFactory


def test_an_admin_changes_thresholds_and_bad_pairs_are_refused(client, dave):
    row = thresholds_row()
    client.login(username=dave.username, password=PASSWORD)
    url = f"/admin/fraud/decisionthresholds/{row.pk}/change/"

    ok = client.post(url, {"review_threshold": "0.4", "decline_threshold": "0.8"})
    assert ok.status_code == 302
    row.refresh_from_db()
    assert (row.review_threshold, row.decline_threshold, row.updated_by) == (0.4, 0.8, dave)

    bad = client.post(url, {"review_threshold": "0.9", "decline_threshold": "0.2"})
    assert bad.status_code == 200  # the form is shown again with the error
    row.refresh_from_db()
    assert (row.review_threshold, row.decline_threshold) == (0.4, 0.8)
    assert DecisionThresholds.objects.count() == 1


def test_an_admin_activates_a_model_from_the_list(client, dave):
    old = ModelVersionFactory(status=ModelStatus.ACTIVE)
    new = ModelVersionFactory()
    client.login(username=dave.username, password=PASSWORD)
    response = client.post("/admin/fraud/modelversion/", {"action": "activate", "_selected_action": [new.pk]})
    assert response.status_code == 302
    old.refresh_from_db()
    new.refresh_from_db()
    assert (old.status, new.status) == (ModelStatus.RETIRED, ModelStatus.ACTIVE)


def test_analysts_and_api_clients_cannot_reach_the_admin(client, carol, alice):
    for user in (carol, alice):
        client.login(username=user.username, password=PASSWORD)
        assert client.get("/admin/fraud/decisionthresholds/").status_code == 302  # to the admin login
