"""The events CipherGuard emits, end to end: the change made through the API or a service, the
event recorded in its transaction, delivered to a real receiver, its signature verified and its
payload validated against the JSON Schema that docs/webhooks.md publishes."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from jsonschema import Draft202012Validator

from fraud.batches.services import batch_create_from_items, batch_process_next_chunk
from fraud.cases.services import case_close, case_close_group
from fraud.modelops.services.lifecycle import model_version_activate
from fraud.models import (
    BatchJob,
    BatchStatus,
    Case,
    CaseStatus,
    Transaction,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookEvent,
    WebhookEventType,
)
from fraud.rules.services import list_entry_add, rule_activate, rule_save
from fraud.scoring.runtime import runtime
from fraud.webhooks import events as webhook_events
from fraud.webhooks import payloads
from fraud.webhooks.delivery import event_body, webhook_deliveries_send, webhook_delivery_resend
from fraud.webhooks.services import webhook_endpoint_create
from fraud.webhooks.signing import secret_new, signature
from tests.factories import CaseFactory, ModelVersionFactory, TransactionFactory, trained_metrics
from tests.fraud.scoring.test_scoring_api import URL, body
from tests.fraud.webhooks.receiver import Receiver, running_receiver
from tests.helpers import run_batch_job

BATCH = "/api/v1/transactions/batch/"
BATCHES = "/api/v1/batches/"
CARD = "4111111111111111"
MULE = "C-mule"  # a customer on Alice's block list: every payment of theirs is declined
CLIENT_EVENTS = [t for t in WebhookEventType.values if t not in webhook_events.PLATFORM_EVENTS]
DOCS = Path(__file__).resolve().parents[3] / "docs" / "webhooks.md"


# --- Helpers --------------------------------------------------------------------------------------


def subscribe(owner, receiver: Receiver, event_types: list[str] = CLIENT_EVENTS) -> str:
    """An endpoint of ``owner`` on ``receiver``; returns its signing secret."""
    return webhook_endpoint_create(owner=owner, url=receiver.url, event_types=event_types).secret


def validate(event: dict[str, Any]) -> dict[str, Any]:
    """The body against its published schema (formats checked too: uuid, date-time)."""
    schema = payloads.event_schema(event["type"])
    Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(event)
    return event


def deliver() -> int:
    """Send every pending delivery now, as the worker would; each must arrive (2xx)."""
    pending = WebhookDelivery.objects.filter(status=WebhookDeliveryStatus.PENDING).order_by("pk")
    ids = list(pending.values_list("pk", flat=True))
    outcomes = webhook_deliveries_send(delivery_ids=ids)
    assert [o.status for o in outcomes] == ["delivered"] * len(ids)
    return len(ids)


def received(receiver: Receiver, secret: str) -> list[dict[str, Any]]:
    """What ``receiver`` got: every request's signature verified, every body valid against its
    schema, none holding a card number or a card fingerprint."""
    fingerprints = list(Transaction.objects.exclude(card_fingerprint="").values_list("card_fingerprint", flat=True))
    for request in receiver.requests:
        text = request.body.decode()
        assert CARD not in text
        assert not any(f in text for f in fingerprints)
    return [validate(e) for e in receiver.verified(secret)]


def of_type(events: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["type"] == event_type]


def block(dave, owner, customer_id: str = MULE) -> None:
    list_entry_add(actor=dave, kind="customer", value=customer_id, action="block", reason="mule", owner=owner)
    runtime.invalidate()  # the change reaches this process on commit, which tests never reach


def iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def other_receiver() -> Iterator[Receiver]:
    """A second receiver (Bob's, or an admin's), on another port."""
    yield from running_receiver()


# --- transaction.flagged --------------------------------------------------------------------------


def test_a_flagged_transaction_arrives_signed_and_an_approved_one_emits_nothing(
    alice, alice_api, dave, active_model, receiver
):
    secret = subscribe(alice, receiver)
    block(dave, alice)

    approved = alice_api.post(URL, body(transaction_id="fine-1"), format="json")
    assert approved.status_code == 201 and approved.json()["decision"] == "approve"
    assert not WebhookEvent.objects.exists()

    flagged = alice_api.post(URL, body(transaction_id="bad-1", customer_id=MULE, card_number=CARD), format="json")
    assert flagged.status_code == 201 and flagged.json()["decision"] == "decline"
    replayed = alice_api.post(URL, body(transaction_id="bad-1", customer_id=MULE, card_number=CARD), format="json")
    assert replayed.status_code == 200  # a replay is not a new flag

    assert deliver() == 1
    [event] = received(receiver, secret)
    answer = flagged.json()
    assert event["type"] == "transaction.flagged"
    assert event["id"] == receiver.requests[0].headers["webhook-id"] == str(WebhookEvent.objects.get().event_id)
    data = event["data"]
    assert iso(data.pop("scored_at")) == iso(answer["scored_at"])
    assert data == {
        "transaction_id": "bad-1",
        "customer_id": MULE,
        "merchant_id": "M00001",
        "amount": "42.50",
        "currency": "EUR",
        "country": "FR",
        "channel": "pos",
        "decision": "decline",
        "decided_by": "list",
        "score": answer["fraud_score"],
        "reasons": answer["reasons"],
        "rules": answer["rules"],
        "model_version": active_model.version,
        "source": "api",
        "batch_job_id": None,
    }
    assert [(r["kind"], r["action"]) for r in data["rules"]] == [("list", "decline")]


def test_the_commit_queues_the_deliveries_and_the_task_sends_them(
    alice, alice_api, dave, active_model, receiver, monkeypatch, django_capture_on_commit_callbacks
):
    from fraud.webhooks.tasks import webhook_deliveries_send as send_task

    secret = subscribe(alice, receiver, ["transaction.flagged"])
    block(dave, alice)
    queued: list[list[int]] = []
    monkeypatch.setattr(webhook_events, "deliveries_enqueue", lambda ids: queued.append(list(ids)))

    with django_capture_on_commit_callbacks(execute=True):
        alice_api.post(URL, body(transaction_id="bad-1", customer_id=MULE), format="json")

    assert queued == [list(WebhookDelivery.objects.values_list("pk", flat=True))]
    assert send_task(queued[0]) == 1  # the Celery task's function, as a worker runs it
    [event] = received(receiver, secret)
    assert event["data"]["transaction_id"] == "bad-1"


def test_a_review_outside_the_case_decisions_still_commits_its_event_with_the_transaction(
    alice, alice_api, dave, active_model, receiver, settings
):
    """FRAUD_CASE_DECISIONS may open cases for declines only: a review then has no case, and its
    event must still be written in the transaction's own database transaction."""
    settings.FRAUD_CASE_DECISIONS = ["decline"]
    secret = subscribe(alice, receiver)
    rule = rule_save(actor=dave, name="watch", condition='customer_id == "C-rev"', action="review")
    rule_activate(actor=dave, rule=rule)
    runtime.invalidate()

    response = alice_api.post(URL, body(transaction_id="rev-1", customer_id="C-rev"), format="json")

    assert response.json()["decision"] == "review"
    assert not Case.objects.exists()
    deliver()
    [flagged] = of_type(received(receiver, secret), "transaction.flagged")
    assert (flagged["transaction_id"], flagged["decision"], flagged["decided_by"]) == ("rev-1", "review", "rule")


def test_a_batch_emits_one_event_per_newly_flagged_item_and_none_for_replays(
    alice, alice_api, dave, active_model, receiver
):
    secret = subscribe(alice, receiver, ["transaction.flagged"])
    block(dave, alice)
    earlier = body(transaction_id="bad-0", customer_id=MULE)
    assert alice_api.post(URL, earlier, format="json").status_code == 201
    items = [
        earlier,  # stored before: a replay
        body(transaction_id="bad-1", customer_id=MULE),
        body(transaction_id="fine-1", customer_id="C7"),
        body(transaction_id="bad-2", customer_id=MULE, card_number=CARD),
        body(transaction_id="bad-1", customer_id=MULE),  # repeated within the batch: a replay
    ]

    response = alice_api.post(BATCH, {"transactions": items}, format="json")
    assert [r["status"] for r in response.json()["results"]] == [200, 201, 201, 201, 200]
    again = alice_api.post(BATCH, {"transactions": items}, format="json")
    assert {r["status"] for r in again.json()["results"]} == {200}

    deliver()
    flagged = of_type(received(receiver, secret), "transaction.flagged")
    assert sorted((f["transaction_id"], f["source"]) for f in flagged) == [
        ("bad-0", "api"), ("bad-1", "batch"), ("bad-2", "batch"),
    ]  # fmt: skip
    assert all(f["batch_job_id"] is None for f in flagged)


def test_a_batch_that_falls_back_to_one_by_one_reports_each_flagged_item_once(
    alice, alice_api, dave, active_model, receiver, monkeypatch
):
    """A concurrent request storing one of the ids makes the bulk insert fail as a whole; the
    events it had recorded roll back with it, and the one-by-one path records each once."""
    secret = subscribe(alice, receiver, ["transaction.flagged"])
    block(dave, alice)

    def concurrent_insert(**kwargs: Any) -> None:
        raise IntegrityError("duplicate key value violates unique constraint")

    monkeypatch.setattr("fraud.scoring.services.cases_open_for", concurrent_insert)
    items = [body(transaction_id=f"bad-{i}", customer_id=MULE) for i in range(3)]
    response = alice_api.post(BATCH, {"transactions": items}, format="json")

    assert [r["status"] for r in response.json()["results"]] == [201, 201, 201]
    assert Case.objects.count() == 3
    deliver()
    flagged = of_type(received(receiver, secret), "transaction.flagged")
    assert sorted(f["transaction_id"] for f in flagged) == ["bad-0", "bad-1", "bad-2"]
    assert {f["source"] for f in flagged} == {"batch"}


# --- Batch jobs -----------------------------------------------------------------------------------


def job_item(transaction_id: str, customer_id: str) -> dict[str, Any]:
    return body(transaction_id=transaction_id, customer_id=customer_id)


def test_a_batch_job_emits_its_flags_as_batch_job_and_finishes_with_its_counts(
    alice, alice_api, dave, active_model, receiver, settings
):
    settings.BATCH_CHUNK_SIZE, settings.BATCH_LANES = 2, 1
    secret = subscribe(alice, receiver)
    block(dave, alice)
    assert alice_api.post(URL, job_item("bad-0", MULE), format="json").status_code == 201
    rows = [
        job_item("bad-0", MULE),  # replayed: counted as flagged, no new event
        job_item("bad-1", MULE),
        job_item("fine-1", "C7"),
        {"transaction_id": "broken"},  # refused
        job_item("bad-2", MULE),
    ]
    response = alice_api.post(BATCHES, {"transactions": rows}, format="json")
    assert response.status_code == 202
    job_id = response.json()["id"]

    run_batch_job(job_id)

    job = BatchJob.objects.get(pk=job_id)
    assert job.status == BatchStatus.SUCCEEDED
    deliver()
    events = received(receiver, secret)
    flagged = of_type(events, "transaction.flagged")
    assert sorted((f["transaction_id"], f["source"], f["batch_job_id"]) for f in flagged) == [
        ("bad-0", "api", None), ("bad-1", "batch_job", job_id), ("bad-2", "batch_job", job_id),
    ]  # fmt: skip
    [finished] = of_type(events, "batch_job.finished")
    assert iso(finished.pop("created_at")) == job.created_at
    assert iso(finished.pop("finished_at")) == job.finished_at
    assert finished == {
        "batch_job_id": job_id,
        "status": "succeeded",
        "total": 5,
        "scored": 4,
        "failed": 1,
        "flagged": 3,
        "error": None,
        "results_url": f"/api/v1/batches/{job_id}/results/",
    }
    assert alice_api.get(finished["results_url"]).status_code == 200
    assert [e["type"] for e in events][-1] == "batch_job.finished"  # recorded with the last chunk


def test_a_cancelled_batch_job_finishes_cancelled(alice, alice_api, active_model, receiver):
    secret = subscribe(alice, receiver, ["batch_job.finished"])
    response = alice_api.post(BATCHES, {"transactions": [job_item("j-1", "C1")]}, format="json")
    job_id = response.json()["id"]

    assert alice_api.post(f"{BATCHES}{job_id}/cancel/").json()["status"] == "cancelled"
    assert alice_api.post(f"{BATCHES}{job_id}/cancel/").json()["status"] == "cancelled"  # once only
    assert run_batch_job(job_id) == 1  # the queued task finds it cancelled: nothing more

    deliver()
    [finished] = of_type(received(receiver, secret), "batch_job.finished")
    assert (finished["status"], finished["total"], finished["scored"], finished["flagged"]) == ("cancelled", 1, 0, 0)


def test_a_batch_job_without_an_active_model_finishes_failed_with_the_reason(alice, receiver):
    secret = subscribe(alice, receiver, ["batch_job.finished"])
    job = batch_create_from_items(owner=alice, items=[job_item("j-1", "C1")])

    assert batch_process_next_chunk(job_id=job.pk) is False

    deliver()
    [finished] = of_type(received(receiver, secret), "batch_job.finished")
    assert (finished["status"], finished["scored"]) == ("failed", 0)
    assert "model" in finished["error"].lower()


# --- Cases and labels -----------------------------------------------------------------------------


def case_of(owner, customer_id: str = "C1", **kwargs: Any) -> Case:
    tx = TransactionFactory(owner=owner, customer_id=customer_id, fraud_score=0.8, decision="review", **kwargs)
    return CaseFactory(transaction=tx)


def test_closing_a_case_emits_case_closed_and_transaction_labelled_without_the_analyst(alice, carol, receiver):
    secret = subscribe(alice, receiver)
    case = case_of(alice)

    case_close(case=case, actor=carol, outcome="confirmed_fraud", note="called the cardholder")

    deliver()
    events = received(receiver, secret)
    assert [e["type"] for e in events] == ["case.closed", "transaction.labelled"]
    case.refresh_from_db()
    closed, labelled = events[0]["data"], events[1]["data"]
    assert iso(closed.pop("closed_at")) == case.closed_at
    assert closed == {
        "case_id": case.pk,
        "transaction_id": case.transaction.transaction_id,
        "outcome": "confirmed_fraud",
        "label": "fraud",
        "closed_with": [],
    }
    assert iso(labelled.pop("labelled_at")) == Transaction.objects.get(pk=case.transaction_id).label_time
    assert labelled == {"transaction_id": case.transaction.transaction_id, "label": "fraud", "label_source": "analyst"}
    for request in receiver.requests:  # our staff are not named to clients
        assert carol.username not in request.body.decode() and "cardholder" not in request.body.decode()


def test_an_inconclusive_close_labels_nothing(alice, carol, receiver):
    secret = subscribe(alice, receiver)
    case_close(case=case_of(alice), actor=carol, outcome="inconclusive")

    deliver()
    [event] = received(receiver, secret)
    assert (event["type"], event["data"]["label"]) == ("case.closed", None)


def test_a_group_close_emits_one_case_closed_per_case_naming_the_others(alice, carol, receiver):
    secret = subscribe(alice, receiver)
    first, second, third = case_of(alice, "C5"), case_of(alice, "C5"), case_of(alice, "C5")

    case_close_group(case=first, related_ids=[second.pk, third.pk], actor=carol, outcome="legitimate")

    deliver()
    events = received(receiver, secret)
    closed = {c["case_id"]: c for c in of_type(events, "case.closed")}
    assert {pk: c["closed_with"] for pk, c in closed.items()} == {
        first.pk: [second.pk, third.pk],
        second.pk: [first.pk, third.pk],
        third.pk: [first.pk, second.pk],
    }
    assert {c["outcome"] for c in closed.values()} == {"legitimate"}
    labelled = of_type(events, "transaction.labelled")
    assert sorted(e["transaction_id"] for e in labelled) == sorted(
        c.transaction.transaction_id for c in (first, second, third)
    )
    assert {(e["label"], e["label_source"]) for e in labelled} == {("legitimate", "analyst")}


def test_client_feedback_emits_transaction_labelled(alice, alice_api, receiver):
    secret = subscribe(alice, receiver, ["transaction.labelled"])
    tx = TransactionFactory(owner=alice, transaction_id="fb-1", fraud_score=0.2, decision="approve")

    response = alice_api.post(f"{URL}fb-1/feedback/", {"label": "fraud"}, format="json")

    assert response.status_code == 200
    deliver()
    [event] = received(receiver, secret)
    tx.refresh_from_db()
    assert event["type"] == "transaction.labelled"
    assert event["data"] == {
        "transaction_id": "fb-1",
        "label": "fraud",
        "label_source": "client",
        "labelled_at": payloads.utc_text(tx.label_time),
    }

    # The client retries the same report: audited again, announced once.
    assert alice_api.post(f"{URL}fb-1/feedback/", {"label": "fraud"}, format="json").status_code == 200
    deliver()
    assert len(receiver.requests) == 1


# --- model.activated ------------------------------------------------------------------------------


def test_model_activation_goes_to_admins_endpoints_only(alice, dave, receiver, other_receiver):
    admin_secret = subscribe(dave, other_receiver, ["model.activated"])
    subscribe(alice, receiver)
    # Even an endpoint of Alice's that somehow lists model.activated gets nothing: it is the platform's.
    WebhookEndpoint.objects.filter(owner=alice).update(event_types=WebhookEventType.values)
    first = ModelVersionFactory(trained=True)
    second = ModelVersionFactory(trained=True, metrics={})

    model_version_activate(version=first, actor=dave)
    model_version_activate(version=second, actor=dave)
    model_version_activate(version=first, actor=dave)  # a rollback

    deliver()
    assert receiver.requests == []
    events = received(other_receiver, admin_secret)
    activated = of_type(events, "model.activated")
    assert [(a["version"], a["previous_version"], a["rollback"]) for a in activated] == [
        (first.version, None, False),
        (second.version, first.version, False),
        (first.version, second.version, True),
    ]
    validation = trained_metrics()["validation"]
    assert activated[0]["metrics"] == {
        "auc_roc": validation["auc_roc"],
        "average_precision": validation["average_precision"],
    }
    assert activated[1]["metrics"] == {"auc_roc": None, "average_precision": None}
    assert {e["id"] for e in events} == set(
        str(i) for i in WebhookEvent.objects.filter(owner=None).values_list("event_id", flat=True)
    )


# --- Failures and isolation -----------------------------------------------------------------------


@pytest.fixture
def recorded(monkeypatch) -> list[tuple[str, int]]:
    """Every ``webhook_events_record`` call made (event type, deliveries made), to show an event
    was recorded before the failure that then rolled it back."""
    calls: list[tuple[str, int]] = []
    real = webhook_events.webhook_events_record

    def spy(**kwargs: Any) -> int:
        made = real(**kwargs)
        calls.append((kwargs["event_type"], made))
        return made

    for module in ("fraud.cases.services", "fraud.scoring.services", "fraud.transactions.services"):
        monkeypatch.setattr(f"{module}.webhook_events_record", spy)
    return calls


def test_a_case_close_that_fails_after_its_event_was_recorded_leaves_no_event(
    alice, carol, receiver, monkeypatch, recorded
):
    subscribe(alice, receiver)
    case = case_of(alice)

    def label_fails(**kwargs: Any) -> None:
        raise RuntimeError("the label could not be written")

    monkeypatch.setattr("fraud.cases.services.transaction_label", label_fails)
    with pytest.raises(RuntimeError):
        case_close(case=case, actor=carol, outcome="confirmed_fraud")

    assert recorded == [("case.closed", 1)]  # recorded, then rolled back with the close
    assert not WebhookEvent.objects.exists() and not WebhookDelivery.objects.exists()
    case.refresh_from_db()
    assert case.status != CaseStatus.CLOSED


@pytest.mark.parametrize("path", ["single", "batch"])
def test_a_scoring_call_that_fails_storing_leaves_no_event(
    alice, alice_api, dave, active_model, receiver, monkeypatch, recorded, path
):
    subscribe(alice, receiver)
    block(dave, alice)

    def case_insert_fails(**kwargs: Any) -> None:
        raise RuntimeError("the case could not be stored")

    monkeypatch.setattr("fraud.scoring.services.case_open_for", case_insert_fails)
    monkeypatch.setattr("fraud.scoring.services.cases_open_for", case_insert_fails)
    with pytest.raises(RuntimeError):
        if path == "single":
            alice_api.post(URL, body(transaction_id="bad-1", customer_id=MULE), format="json")
        else:
            alice_api.post(BATCH, {"transactions": [body(transaction_id="bad-1", customer_id=MULE)]}, format="json")

    assert recorded == [("transaction.flagged", 1)]
    assert not Transaction.objects.exists()
    assert not WebhookEvent.objects.exists() and not WebhookDelivery.objects.exists()


def test_bobs_endpoint_never_receives_alices_events(
    alice, alice_api, bob, carol, dave, active_model, receiver, other_receiver
):
    alice_secret = subscribe(alice, receiver)
    subscribe(bob, other_receiver)
    block(dave, alice)
    block(dave, bob)  # the same customer id on Bob's list: Bob's customer, not Alice's

    alice_api.post(URL, body(transaction_id="bad-1", customer_id=MULE), format="json")
    alice_api.post(f"{URL}bad-1/feedback/", {"label": "fraud"}, format="json")
    alice_api.post(BATCH, {"transactions": [body(transaction_id="bad-2", customer_id=MULE)]}, format="json")
    case_close(case=Case.objects.get(transaction__transaction_id="bad-2"), actor=carol, outcome="legitimate")
    job = alice_api.post(BATCHES, {"transactions": [job_item("bad-3", MULE)]}, format="json").json()["id"]
    run_batch_job(job)

    deliver()
    assert other_receiver.requests == []
    assert not WebhookDelivery.objects.filter(endpoint__owner=bob).exists()
    assert {e["type"] for e in received(receiver, alice_secret)} == set(CLIENT_EVENTS)


# --- The hot path ---------------------------------------------------------------------------------


def endpoint_queries(queries: CaptureQueriesContext) -> int:
    return sum(1 for q in queries.captured_queries if "fraud_webhookendpoint" in q["sql"])


def test_scoring_asks_for_subscribers_only_for_flagged_transactions_and_once_per_call(
    alice, alice_api, dave, active_model, receiver
):
    subscribe(alice, receiver)
    block(dave, alice)
    alice_api.post(URL, body(transaction_id="warm"), format="json")  # loads model and policy

    with CaptureQueriesContext(connection) as approved:
        alice_api.post(URL, body(transaction_id="fine-1"), format="json")
    with CaptureQueriesContext(connection) as flagged:
        alice_api.post(URL, body(transaction_id="bad-1", customer_id=MULE), format="json")
    items = [body(transaction_id=f"b-{i}", customer_id=MULE if i % 2 else f"C{i}") for i in range(20)]
    with CaptureQueriesContext(connection) as batch:
        alice_api.post(BATCH, {"transactions": items}, format="json")

    assert (endpoint_queries(approved), endpoint_queries(flagged), endpoint_queries(batch)) == (0, 1, 1)
    assert not any("fraud_webhook" in q["sql"] for q in approved.captured_queries)
    flagged_rows = Transaction.objects.filter(decision__in=["review", "decline"]).count()
    assert flagged_rows >= 11 and WebhookEvent.objects.count() == flagged_rows


# --- The documentation ----------------------------------------------------------------------------


def test_every_schema_is_valid_json_schema_and_the_docs_show_them_as_the_code_makes_them():
    text = DOCS.read_text()
    blocks = dict(re.findall(r"<!-- schema: (\S+) -->\n```json\n(.*?)\n```", text, re.S))
    assert set(blocks) == set(WebhookEventType.values)
    for event_type, block in blocks.items():
        schema = payloads.event_schema(event_type)
        Draft202012Validator.check_schema(schema)
        expected = json.dumps(schema, indent=2, ensure_ascii=False)
        assert json.loads(block) == schema, f"docs/webhooks.md's {event_type} schema is stale; it is now:\n{expected}"


def list_types(schema: Any) -> list[Any]:
    if isinstance(schema, dict):
        own = [schema["type"]] if isinstance(schema.get("type"), list) else []
        return own + [t for v in schema.values() for t in list_types(v)]
    if isinstance(schema, list):
        return [t for v in schema for t in list_types(v)]
    return []


def test_the_openapi_document_carries_the_payload_schemas(db):
    from drf_spectacular.generators import SchemaGenerator

    components = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]
    for event_type in WebhookEventType.values:
        component = components[payloads.component_name(event_type)]
        ours = payloads.event_schema(event_type)
        assert component["properties"]["type"]["enum"] == [event_type]
        assert set(component["properties"]["data"]["properties"]) == set(ours["properties"]["data"]["properties"])
        assert not list_types(component)  # OpenAPI 3.0 has nullable, not a type list with null
    flagged = components["WebhookTransactionFlagged"]["properties"]["data"]["properties"]
    assert (flagged["batch_job_id"]["type"], flagged["batch_job_id"]["nullable"]) == ("integer", True)


def receiver_example() -> dict[str, Any]:
    """docs/webhooks.md's receiver, executed as a module would be (not as __main__)."""
    [code] = re.findall(r"<!-- receiver-example -->\n```python\n(.*?)\n```", DOCS.read_text(), re.S)
    namespace: dict[str, Any] = {"__name__": "cipherguard_receiver_example"}
    exec(compile(code, str(DOCS), "exec"), namespace)  # noqa: S102 -- our own documentation's code
    return namespace


def test_the_docs_receiver_verifies_a_real_delivery_refuses_a_forgery_and_drops_a_repeat(alice, carol, settings):
    settings.WEBHOOKS_ALLOWED_NETWORKS, settings.WEBHOOKS_HTTPS_ONLY = ["127.0.0.1/32"], False
    example = receiver_example()
    server = ThreadingHTTPServer(("127.0.0.1", 0), example["Handler"])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/cipherguard"
        example["SECRET"] = webhook_endpoint_create(owner=alice, url=url, event_types=CLIENT_EVENTS).secret
        case_close(case=case_of(alice), actor=carol, outcome="confirmed_fraud")

        ids = list(WebhookDelivery.objects.order_by("pk").values_list("pk", flat=True))
        outcomes = webhook_deliveries_send(delivery_ids=ids)
        assert [(o.status, o.status_code) for o in outcomes] == [("delivered", 204), ("delivered", 204)]
        queued = [example["events"].get_nowait() for _ in range(2)]
        assert example["events"].empty()
        assert [validate(e)["type"] for e in queued] == ["case.closed", "transaction.labelled"]

        # A re-send (same webhook-id) is acknowledged and dropped.
        again = webhook_delivery_resend(delivery=WebhookDelivery.objects.order_by("pk").first(), actor=alice)
        [outcome] = webhook_deliveries_send(delivery_ids=[again.pk])
        assert (outcome.status, outcome.status_code) == ("delivered", 200)
        assert example["events"].empty()
    finally:
        server.shutdown()
        server.server_close()

    # What the handler was given, altered or signed with another secret, is refused.
    good = event_body(WebhookEvent.objects.get(type="case.closed"))
    now = timezone.now()
    msg_id = "an-unseen-id"
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature(signing_secrets=[example["SECRET"]], msg_id=msg_id, timestamp=now, body=good),
    }
    assert example["receive"](good.replace(b'"fraud"', b'"legitimate"'), headers, example["SECRET"]) == 400
    assert example["receive"](good, headers, secret_new()) == 400
    assert example["receive"](good, headers, example["SECRET"]) == 204
