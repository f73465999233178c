"""Lists and rules beside the model: precedence, scoping, expiry, shadow rules, versioning,
auditing, and what the scoring API says about them."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from fraud.models import ListEntry, Rule, RuleStatus, Transaction
from fraud.rules.policy import Policy, compile_rule
from fraud.rules.services import (
    PolicyError,
    list_entry_add,
    list_entry_remove,
    list_import_csv,
    rule_activate,
    rule_disable,
    rule_save,
)
from fraud.scoring.runtime import runtime
from tests.fraud.scoring.test_scoring_api import URL, body
from tests.helpers import at_once

CARD = "4111111111111111"


def score(api, **changes):
    response = api.post(URL, body(**changes), format="json")
    assert response.status_code == 201, response.content
    return response.json()


def live_rule(dave, name="big", condition="amount > 5000", action="review", **kwargs) -> Rule:
    return rule_activate(
        actor=dave, rule=rule_save(actor=dave, name=name, condition=condition, action=action, **kwargs)
    )


@pytest.fixture
def fresh(monkeypatch):
    """Changes reach this process's runtime on commit, as in production. Tests run inside one
    transaction that never commits, so commit hooks run at once here."""
    from django.db import transaction

    monkeypatch.setattr(transaction, "on_commit", lambda fn, *args, **kwargs: fn())


# --- Precedence -----------------------------------------------------------------------------------


def test_block_beats_allow_unless_the_allow_entry_overrides(alice_api, alice, dave, active_model, fresh):
    list_entry_add(actor=dave, kind="customer", value="C000001", action="allow", reason="VIP", owner=alice)
    assert score(alice_api, transaction_id="a")["decided_by"] == "list"
    assert score(alice_api, transaction_id="a2")["decision"] == "approve"

    list_entry_add(actor=dave, kind="country", value="FR", action="block", reason="test block")
    blocked = score(alice_api, transaction_id="b")
    assert (blocked["decision"], blocked["decided_by"]) == ("decline", "list")
    assert {r["name"] for r in blocked["rules"]} == {"allow customer C000001", "block country FR"}

    list_entry_add(actor=dave, kind="merchant", value="M00001", action="allow", reason="own shop", owner=alice,
                   overriding=True)  # fmt: skip
    assert score(alice_api, transaction_id="c")["decision"] == "approve"


def test_lists_beat_rules_and_rules_beat_the_model(alice_api, dave, active_model, fresh):
    live_rule(dave, name="everything declines", condition="amount > 0", action="decline")
    ruled = score(alice_api, transaction_id="r")
    assert (ruled["decision"], ruled["decided_by"]) == ("decline", "rule")
    assert ruled["rules"] == [
        {"kind": "rule", "id": Rule.objects.get().pk, "name": "everything declines v1", "action": "decline",
         "shadow": False}
    ]  # fmt: skip
    list_entry_add(actor=dave, kind="ip", value="203.0.113.0/24", action="allow", reason="office")
    allowed = score(alice_api, transaction_id="l", ip_address="203.0.113.77")
    assert (allowed["decision"], allowed["decided_by"]) == ("approve", "list")
    other_ip = score(alice_api, transaction_id="m", ip_address="198.51.100.1")
    assert other_ip["decided_by"] == "rule"


def test_the_highest_priority_rule_decides_and_at_equal_priority_the_most_severe(dave, db):
    rules = [
        live_rule(dave, name="low", condition="amount > 1", action="decline", priority=1),
        live_rule(dave, name="high", condition="amount > 1", action="approve", priority=5),
        live_rule(dave, name="high too", condition="amount > 1", action="review", priority=5),
    ]
    from fraud.rules.policy import LiveRule

    policy = Policy(rules=[LiveRule(r.pk, r.name, r.version, r.action, r.priority, r.shadow, compile_rule(r.condition))
                           for r in rules])  # fmt: skip
    outcome = policy.decide(owner_id=1, list_values={}, ip="", context={"amount": 10.0}, model_decision="approve",
                            now=timezone.now())  # fmt: skip
    assert (outcome.decision, outcome.decided_by) == ("review", "rule")
    assert [m.name for m in outcome.matches] == ["high too v1", "high v1", "low v1"]


def test_a_shadow_rule_records_its_match_and_decides_nothing(alice_api, dave, active_model, fresh):
    live_rule(dave, name="would decline", condition="amount > 0", action="decline", shadow=True)
    result = score(alice_api)
    assert result["decided_by"] == "model"
    assert result["rules"][0]["shadow"] is True and result["rules"][0]["action"] == "decline"
    assert Transaction.objects.get().rule_matches == result["rules"]


def test_rules_read_features_score_and_the_customers_countries(alice_api, alice, dave, active_model, fresh):
    from tests.factories import TransactionFactory

    for country in ("FR", "DE"):
        TransactionFactory(owner=alice, customer_id="C000001", country=country,
                           timestamp=timezone.now() - timedelta(days=3))  # fmt: skip
    live_rule(dave, name="new country", condition="country not in customer_countries_30d and c_n_30d >= 2",
              action="review")  # fmt: skip
    assert score(alice_api, transaction_id="home", country="FR")["decided_by"] == "model"
    away = score(alice_api, transaction_id="away", country="NG")
    assert (away["decision"], away["decided_by"]) == ("review", "rule")


# --- Scoping and expiry ---------------------------------------------------------------------------


def test_a_clients_entries_never_touch_another_clients_customers(alice_api, bob_api, bob, dave, active_model, fresh):
    list_entry_add(actor=dave, kind="customer", value="C000001", action="block", reason="bob's fraudster", owner=bob)
    assert score(alice_api, transaction_id="x")["decided_by"] == "model"
    assert score(bob_api, transaction_id="x")["decided_by"] == "list"


def test_expired_and_removed_entries_no_longer_match(alice_api, alice, dave, active_model, fresh):
    entry = list_entry_add(actor=dave, kind="country", value="FR", action="block", reason="for an hour",
                           expires_at=timezone.now() + timedelta(hours=1))  # fmt: skip
    assert score(alice_api, transaction_id="1")["decided_by"] == "list"
    ListEntry.objects.filter(pk=entry.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    runtime.invalidate()
    assert score(alice_api, transaction_id="2")["decided_by"] == "model"
    card = list_entry_add(actor=dave, kind="card", value=CARD, action="block", reason="stolen", owner=alice)
    assert score(alice_api, transaction_id="3", card_number=CARD)["decided_by"] == "list"
    list_entry_remove(actor=dave, entry=card)
    assert score(alice_api, transaction_id="4", card_number=CARD)["decided_by"] == "model"


# --- Validation and storage -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": "country", "value": "France"}, "value"),
        ({"kind": "ip", "value": "10.0.0.0/33"}, "value"),
        ({"kind": "card", "value": "4111111111111112"}, "value"),
        ({"kind": "customer", "value": "C1"}, "owner"),  # a client's identifier needs its client
        ({"kind": "country", "value": "FR", "reason": " "}, "reason"),
        ({"kind": "country", "value": "FR", "action": "block", "overriding": True}, "overriding"),
        ({"kind": "nope", "value": "FR"}, "kind"),
        ({"kind": "country", "value": "FR", "expires_at": timezone.now() - timedelta(days=1)}, "expires_at"),
    ],
)
def test_bad_entries_are_refused_naming_the_field(dave, kwargs, field):
    args = {"action": "block", "reason": "why", **kwargs}
    with pytest.raises(PolicyError) as caught:
        list_entry_add(actor=dave, **args)
    assert caught.value.field == field
    assert not ListEntry.objects.exists()


def test_a_card_is_stored_as_its_fingerprint_and_shown_masked(alice, dave):
    entry = list_entry_add(actor=dave, kind="card", value=CARD, action="block", reason="stolen", owner=alice)
    assert CARD not in entry.value and entry.display == "411111…1111"
    event = AuditEvent.objects.get(event_type="list.entry_added")
    assert CARD not in str(event.after) and event.after["value"] == "411111…1111"
    with pytest.raises(PolicyError, match="already on the block list"):
        list_entry_add(actor=dave, kind="card", value=CARD, action="block", reason="again", owner=alice)


def test_csv_import_adds_good_rows_and_reports_bad_ones_by_line(alice, dave):
    data = (
        "kind,value,action,reason,owner,overriding,expires_at\n"
        "country,RU,block,sanctions,,,\n"
        "customer,C9,allow,VIP,alice-client,true,2029-01-01T00:00:00Z\n"
        "ip,not-an-ip,block,bots,,,\n"
        "merchant,M1,block,no owner,,,\n"
    )
    report = list_import_csv(actor=dave, file=io.BytesIO(data.encode()))
    assert (report.rows, report.added) == (4, 2)
    assert report.bad == [(4, {"value": "Use an IP address or a CIDR range, such as 203.0.113.0/24."}),
                          (5, {"owner": "Cards, customers and merchants belong to an API client: name it."})]  # fmt: skip
    assert AuditEvent.objects.filter(event_type="list.entry_added").count() == 2


# --- Rules: versions, activation, audit --------------------------------------------------------------


def test_a_rule_that_cannot_run_is_never_saved_and_the_error_says_where(dave):
    with pytest.raises(PolicyError) as caught:
        rule_save(actor=dave, name="typo", condition="amount > 5000 and contry == 'FR'", action="review")
    assert caught.value.field == "condition" and "unknown field 'contry'" in caught.value.message
    assert "column 19" in caught.value.message
    assert not Rule.objects.exists()


def test_editing_makes_a_new_version_and_activating_it_retires_the_old(dave, carol):
    v1 = live_rule(dave, condition="amount > 5000")
    v2 = rule_save(actor=dave, name="big", condition="amount > 3000", action="review")
    assert (v2.version, v2.status) == (2, RuleStatus.DRAFT)
    with pytest.raises(PolicyError, match="Only an admin"):
        rule_activate(actor=carol, rule=v2)
    rule_activate(actor=dave, rule=v2)
    v1.refresh_from_db()
    v2.refresh_from_db()
    assert (v1.status, v2.status) == (RuleStatus.DISABLED, RuleStatus.ACTIVE)
    rule_disable(actor=dave, rule=v2)
    assert not Rule.objects.filter(status=RuleStatus.ACTIVE).exists()
    events = list(AuditEvent.objects.filter(event_type__startswith="rule.").values_list("event_type", flat=True))
    assert events.count("rule.saved") == 2 and events.count("rule.activated") == 2 and "rule.disabled" in events


# --- The API ----------------------------------------------------------------------------------------


def test_a_client_blocks_its_own_card_through_the_api_and_the_next_payment_is_declined(
    alice_api, bob_api, active_model, fresh
):
    created = alice_api.post("/api/v1/lists/", {"kind": "card", "value": CARD, "action": "block",
                                                "reason": "reported stolen"}, format="json")  # fmt: skip
    assert created.status_code == 201, created.content
    assert created.json()["value"] == "411111…1111" and CARD not in created.content.decode()
    assert score(alice_api, transaction_id="t1", card_number=CARD)["decision"] == "decline"
    assert score(bob_api, transaction_id="t1", card_number=CARD)["decided_by"] == "model"  # not bob's entry

    listed = alice_api.get("/api/v1/lists/").json()["results"]
    assert [e["id"] for e in listed] == [created.json()["id"]]
    assert bob_api.delete(f"/api/v1/lists/{created.json()['id']}/").status_code == 404
    assert alice_api.delete(f"/api/v1/lists/{created.json()['id']}/").status_code == 204
    assert score(alice_api, transaction_id="t2", card_number=CARD)["decided_by"] == "model"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"kind": "country", "value": "FR", "action": "block", "reason": "x"}, "kind"),  # admins' lists
        ({"kind": "card", "value": "4111", "action": "block", "reason": "x"}, "value"),
        ({"kind": "customer", "value": "C1", "action": "block", "reason": "x", "overriding": True}, "overriding"),
        ({"kind": "customer", "value": "C1", "action": "ban", "reason": "x"}, "action"),
        ({"kind": "customer", "value": "C1", "action": "block"}, "reason"),
        ({"kind": "customer", "value": "C1", "action": "block", "reason": "x", "extra": 1}, "extra"),
        # The schema's JSON types, not DRF's coercions: 3457 is not the text "3457", 1 is not true.
        ({"kind": "merchant", "value": "u", "action": "block", "reason": 3457}, "reason"),
        ({"kind": "merchant", "value": 42, "action": "block", "reason": "x"}, "value"),
        ({"kind": "customer", "value": "C1", "action": "allow", "reason": "x", "overriding": 1}, "overriding"),
        ({"kind": "customer", "value": "C1", "action": "allow", "reason": "x", "overriding": "true"}, "overriding"),
    ],
)
def test_bad_list_requests_get_a_400_naming_the_field(alice_api, payload, field):
    response = alice_api.post("/api/v1/lists/", payload, format="json")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == [field]
    assert not ListEntry.objects.exists()


def test_a_client_imports_a_csv_of_its_own_entries(alice_api, alice):
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = "kind,value,action,reason,owner\ncustomer,C7,block,mule,\ncountry,RU,block,not yours,\nmerchant,M2,allow,own,bob-client\n"
    response = alice_api.post("/api/v1/lists/import/", {"file": SimpleUploadedFile("l.csv", data.encode())},
                              format="multipart")  # fmt: skip
    assert response.status_code == 200, response.content
    assert response.json()["added"] == 1
    assert [b["line"] for b in response.json()["bad"]] == [3, 4]
    assert ListEntry.objects.get().owner == alice


def test_the_issues_examples_are_rules_and_read_what_scoring_provides():
    import numpy as np

    from fraud.features import definitions as fx
    from fraud.rules.policy import rule_context

    features = np.zeros(len(fx.FEATURE_NAMES))
    features[fx.FEATURE_INDEX["m_risk_7d"]] = 0.08
    context = rule_context(features=features, amount=6000, currency="EUR", country="NG", channel="online",
                           customer_id="C1", merchant_id="M1", timestamp=timezone.now(), has_card=False, score=0.4)  # fmt: skip
    context["customer_countries_30d"] = frozenset({"FR"})
    for condition in ("amount > 5000 and country not in customer_countries_30d",
                      'score >= 0.3 and channel == "online" and merchant_fraud_rate_7d > 0.05'):  # fmt: skip
        assert compile_rule(condition).evaluate(context) is True
    assert compile_rule("merchant_fraud_rate_7d == m_risk_7d").evaluate(context) is True


def test_an_admin_imports_entries_from_the_command_line(tmp_path, dave, alice):
    import json
    from io import StringIO

    from django.core.management import call_command

    path = tmp_path / "lists.csv"
    path.write_text("kind,value,action,reason,owner\ncountry,KP,block,sanctions,\ncard,4111,block,bad,alice-client\n")
    out, err = StringIO(), StringIO()
    call_command("import_list_entries", str(path), "--actor", dave.username, stdout=out, stderr=err)
    assert json.loads(out.getvalue()) == {"rows": 2, "added": 1, "bad": 1}
    assert "line 3: value: Not a valid card number." in err.getvalue()
    assert AuditEvent.objects.filter(event_type="list.entry_added", actor=dave).count() == 1


# --- Concurrency (PostgreSQL: the constraints decide) -------------------------------------------------


def test_concurrent_saves_of_one_rule_get_distinct_versions(postgres_tx, dave):
    results = at_once(lambda i: rule_save(actor=dave, name="race", condition=f"amount > {i}", action="review"), 6)
    assert all(isinstance(r, Rule) for r in results), results
    assert sorted(Rule.objects.filter(name="race").values_list("version", flat=True)) == [1, 2, 3, 4, 5, 6]


def test_concurrent_identical_entries_store_one(postgres_tx, dave):
    results = at_once(
        lambda i: list_entry_add(actor=dave, kind="country", value="KP", action="block", reason=f"r{i}"), 6
    )
    assert sum(isinstance(r, ListEntry) for r in results) == 1
    assert all(isinstance(r, PolicyError) for r in results if not isinstance(r, ListEntry))
    assert ListEntry.objects.filter(value="KP").count() == 1
    assert AuditEvent.objects.filter(event_type="list.entry_added").count() == 1


def test_concurrent_activations_leave_one_active_version(postgres_tx, dave):
    versions = [rule_save(actor=dave, name="one live", condition=f"amount > {i}", action="review") for i in range(5)]
    results = at_once(lambda i: rule_activate(actor=dave, rule=versions[i]), 5)
    assert all(isinstance(r, Rule) for r in results), results
    assert Rule.objects.filter(name="one live", status=RuleStatus.ACTIVE).count() == 1


# --- Found in review ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expires_at", ["9999-12-31T23:59:59-12:00", "2026-13-01T00:00:00Z", "2026-01-01T00:00:00+99:00", "soon"]
)
def test_absurd_expiry_dates_are_refused_and_never_reach_the_runtime(alice_api, dave, expires_at):
    row = f"country,KP,block,why,,,{expires_at}\n"
    report = list_import_csv(
        actor=dave, file=io.BytesIO(("kind,value,action,reason,owner,overriding,expires_at\n" + row).encode())
    )
    assert report.added == 0 and report.bad[0][1].keys() == {"expires_at"}
    response = alice_api.post("/api/v1/lists/", {"kind": "customer", "value": "C1", "action": "block", "reason": "x",
                                                 "expires_at": expires_at}, format="json")  # fmt: skip
    assert response.status_code == 400 and "expires_at" in response.json()["errors"]
    assert not ListEntry.objects.exists()


def test_a_global_kind_with_an_owner_is_refused_not_widened(dave, alice):
    with pytest.raises(PolicyError) as caught:
        list_entry_add(actor=dave, kind="country", value="FR", action="block", reason="x", owner=alice)
    assert caught.value.field == "owner"


def test_a_client_sets_an_expiry_days_ahead_through_the_api(alice_api):
    later = (timezone.now() + timedelta(days=30)).isoformat()
    response = alice_api.post("/api/v1/lists/", {"kind": "customer", "value": "C1", "action": "block", "reason": "x",
                                                 "expires_at": later}, format="json")  # fmt: skip
    assert response.status_code == 201, response.content


def test_a_list_load_failure_keeps_the_previous_policy(alice_api, alice, dave, active_model, fresh, monkeypatch):
    list_entry_add(actor=dave, kind="country", value="FR", action="block", reason="x")
    assert score(alice_api, transaction_id="1")["decided_by"] == "list"

    def broken(cache):
        raise RuntimeError("database hiccup")

    monkeypatch.setattr("fraud.scoring.runtime.load_policy", broken)
    runtime.invalidate()
    assert score(alice_api, transaction_id="2")["decided_by"] == "list"


def test_a_list_import_too_large_to_finish_within_the_request_is_refused_at_once(alice_api, alice):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from fraud.rules.apis import LIST_IMPORT_MAX_BYTES

    row = "customer,C{},block,a reason long enough to fill the file quickly,\n"
    rows = LIST_IMPORT_MAX_BYTES // len(row.format(0)) + 10
    data = "kind,value,action,reason,owner\n" + "".join(row.format(i) for i in range(rows))
    response = alice_api.post("/api/v1/lists/import/", {"file": SimpleUploadedFile("l.csv", data.encode())},
                              format="multipart")  # fmt: skip
    assert response.status_code == 413 and "file" in response.json()["errors"]
    assert not ListEntry.objects.exists()
