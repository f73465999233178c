"""Admins change thresholds and activate models in the Django admin, through the services."""

from __future__ import annotations

from fraud.models import DecisionThresholds, ModelStatus
from fraud.rules.selectors import thresholds_row
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


def test_an_admin_writes_a_rule_and_sees_what_is_wrong_with_a_bad_condition(client, dave):
    from audit.models import AuditEvent
    from fraud.models import Rule, RuleStatus

    client.login(username=dave.username, password=PASSWORD)
    form = {"name": "big abroad", "description": "", "action": "review", "priority": "10"}
    bad = client.post("/admin/fraud/rule/add/", {**form, "condition": "amount > 5000 and country = 'NG'"})
    assert bad.status_code == 200 and "unexpected character" in bad.content.decode()
    assert not Rule.objects.exists()

    good = client.post("/admin/fraud/rule/add/", {**form, "condition": "amount > 5000 and country == 'NG'"})
    assert good.status_code == 302
    rule = Rule.objects.get()
    assert (rule.version, rule.status, rule.created_by) == (1, RuleStatus.DRAFT, dave)
    client.post("/admin/fraud/rule/", {"action": "activate", "_selected_action": [rule.pk]})
    rule.refresh_from_db()
    assert rule.status == RuleStatus.ACTIVE
    assert AuditEvent.objects.filter(event_type__in=["rule.saved", "rule.activated"]).count() == 2


def test_an_admin_blocks_a_card_without_the_number_being_stored(client, dave, alice):
    from fraud.models import ListEntry

    client.login(username=dave.username, password=PASSWORD)
    response = client.post("/admin/fraud/listentry/add/", {
        "kind": "card", "value": "4111111111111111", "action": "block", "owner": alice.pk, "reason": "stolen"})  # fmt: skip
    assert response.status_code == 302, response.content.decode()[-2000:]
    entry = ListEntry.objects.get()
    assert entry.display == "411111…1111" and "4111111111111111" not in entry.value
    refused = client.post("/admin/fraud/listentry/add/", {
        "kind": "country", "value": "Narnia", "action": "block", "reason": "x"})  # fmt: skip
    assert refused.status_code == 200 and "ISO 3166-1" in refused.content.decode()
    assert ListEntry.objects.count() == 1


def test_the_list_form_says_an_entry_is_already_live_and_stores_no_second_one(client, dave):
    from fraud.models import ListEntry

    client.login(username=dave.username, password=PASSWORD)
    entry = {"kind": "country", "value": "KP", "action": "block", "reason": "sanctions"}
    assert client.post("/admin/fraud/listentry/add/", entry).status_code == 302
    again = client.post("/admin/fraud/listentry/add/", entry)
    assert again.status_code == 200 and "KP is already on the block list." in again.content.decode()
    assert ListEntry.objects.count() == 1


def test_the_rule_form_shows_the_services_refusals_at_their_fields(client, dave):
    from fraud.models import Rule

    client.login(username=dave.username, password=PASSWORD)
    form = {"name": "r", "description": "", "action": "review", "condition": "amount > 1"}
    page = client.post("/admin/fraud/rule/add/", {**form, "priority": "5000"}).content.decode()
    assert "Use a whole number from -1000 to 1000." in page
    assert not Rule.objects.exists()


def test_the_admin_is_branded_and_every_page_has_the_icon(client, dave, carol):
    client.login(username=dave.username, password=PASSWORD)
    page = client.get("/admin/").content.decode()
    assert "CipherGuard administration" in page and "Django administration" not in page
    assert "<title>Users, clients, thresholds, models and the audit trail | CipherGuard admin</title>" in page
    assert 'rel="icon" href="/static/favicon.svg"' in page
    client.logout()
    client.login(username=carol.username, password=PASSWORD)
    assert 'rel="icon" href="/static/favicon.svg"' in client.get("/console/").content.decode()
    assert 'rel="icon" href="/static/favicon.svg"' in client.get("/console/nothing-here/").content.decode()
    response = client.get("/favicon.ico")
    assert response.status_code == 302 and response["Location"] == "/static/favicon.svg"
    from django.contrib.staticfiles import finders

    assert finders.find("favicon.svg")  # served from static/, no CDN


def _field_errors(page: str, field: str) -> list[str]:
    """The error sentences the admin shows under one field (an empty name: the form's own)."""
    import re

    list_id = f'id="id_{field}_error"' if field else 'class="errorlist nonfield"'
    found = re.search(rf"<ul [^>]*{list_id}[^>]*>(.*?)</ul>", page, re.S)
    return re.findall(r"<li>(.*?)</li>", found.group(1)) if found else []


def test_the_thresholds_form_says_in_a_sentence_what_is_wrong_with_the_pair(client, dave):
    row = thresholds_row()
    client.login(username=dave.username, password=PASSWORD)
    url = f"/admin/fraud/decisionthresholds/{row.pk}/change/"

    page = client.post(url, {"review_threshold": "0.9", "decline_threshold": "0.8"}).content.decode()
    assert _field_errors(page, "review_threshold") == [
        "The review threshold must be lower than the decline threshold (0.9 ≥ 0.8)."
    ]
    assert "thresholds_ordered_in_unit_interval" not in page and "Constraint" not in page
    # The heading names the pair in force, not the one refused.
    assert f"<h2>{row}</h2>" in page and "review ≥ 0.9," not in page

    page = client.post(url, {"review_threshold": "0.2", "decline_threshold": "1.5"}).content.decode()
    assert _field_errors(page, "decline_threshold") == ["Thresholds are probabilities: between 0 and 1."]
    assert _field_errors(page, "review_threshold") == []


def test_a_threshold_the_form_cannot_read_is_not_compared_with_the_stored_one(client, dave):
    row = thresholds_row()
    client.login(username=dave.username, password=PASSWORD)
    url = f"/admin/fraud/decisionthresholds/{row.pk}/change/"
    # The stored review threshold is above 0.05: comparing it with the new decline would blame a
    # value the admin did not type.
    assert row.review_threshold > 0.05
    page = client.post(url, {"review_threshold": "0,5", "decline_threshold": "0.05"}).content.decode()
    assert _field_errors(page, "review_threshold") == ["Enter a number."]
    assert "must be lower" not in page and "Constraint" not in page


def test_the_thresholds_open_on_their_form(client, dave):
    row = thresholds_row()
    client.login(username=dave.username, password=PASSWORD)
    response = client.get("/admin/fraud/decisionthresholds/")
    assert response.status_code == 302
    assert response["Location"] == f"/admin/fraud/decisionthresholds/{row.pk}/change/"


def test_a_good_pair_is_saved_through_the_service_and_audited(client, dave):
    from audit.models import AuditEvent

    row = thresholds_row()
    before = (row.review_threshold, row.decline_threshold)
    client.login(username=dave.username, password=PASSWORD)
    response = client.post(
        f"/admin/fraud/decisionthresholds/{row.pk}/change/", {"review_threshold": "0.35", "decline_threshold": "0.85"}
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(event_type="thresholds.changed")
    assert (event.actor, event.object_id) == (dave, str(row.pk))
    assert event.before == {"review": before[0], "decline": before[1]}
    assert event.after == {"review": 0.35, "decline": 0.85}


def test_the_list_form_says_a_constraint_as_a_sentence_and_each_refusal_once(client, dave):
    from fraud.models import ListEntry

    client.login(username=dave.username, password=PASSWORD)
    page = client.post(
        "/admin/fraud/listentry/add/", {"kind": "", "value": "x", "action": "block", "overriding": "on", "reason": "r"}
    ).content.decode()
    assert _field_errors(page, "") == [
        "Only an allow entry can override block entries: untick overriding, or choose allow."
    ]
    assert _field_errors(page, "kind") == ["This field is required."]

    page = client.post(
        "/admin/fraud/listentry/add/", {"kind": "customer", "value": "C1", "action": "block", "reason": ""}
    ).content.decode()
    assert _field_errors(page, "") == [
        "A card, customer or merchant entry belongs to an API client: choose it as the owner."
    ]
    assert _field_errors(page, "reason") == ["This field is required."]
    assert "Constraint" not in page
    assert not ListEntry.objects.exists()


def test_a_transactions_page_names_its_model_without_reading_the_artifact(client, dave):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.factories import TransactionFactory

    version = ModelVersionFactory(version="fb-20260312-031457-907311", artifact=b"\0" * 1024)
    tx = TransactionFactory(model_version=version, fraud_score=0.91, decision="decline")
    client.login(username=dave.username, password=PASSWORD)
    with CaptureQueriesContext(connection) as queries:
        page = client.get(f"/admin/fraud/transaction/{tx.pk}/change/").content.decode()
    assert "fb-20260312-031457-907311" in page
    selected = [q["sql"].split(" FROM ")[0] for q in queries.captured_queries]
    assert not any('."artifact"' in columns for columns in selected)
