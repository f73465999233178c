"""/metrics: what operators see, who may see it, and that gunicorn's workers are summed."""

from __future__ import annotations

import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from fraud.models import BatchJob, BatchStatus, CaseStatus, DriftReport, WebhookDelivery, WebhookEndpoint, WebhookEvent
from tests.factories import CaseFactory, TransactionFactory
from tests.fraud.scoring.test_scoring_api import body
from tests.helpers import gunicorn

ROOT = Path(__file__).resolve().parents[2]
Key = tuple[str, tuple[tuple[str, str], ...]]


def parse(text: str) -> dict[Key, float]:
    """Samples keyed by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client: Client | None = None, **headers: str) -> dict[Key, float]:
    response = (client or Client()).get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return parse(response.content.decode())


def delta(before: dict[Key, float], after: dict[Key, float], name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_scoring_is_counted_by_decision_path_and_score(alice_api, active_model):
    before = scrape()
    response = alice_api.post("/api/v1/transactions/", body(transaction_id="m-1"), format="json")
    assert response.status_code == 201
    decision = response.json()["decision"]
    replay = alice_api.post("/api/v1/transactions/", body(transaction_id="m-1"), format="json")
    assert replay.status_code == 200
    batch = alice_api.post(
        "/api/v1/transactions/batch/",
        {"transactions": [body(transaction_id=f"m-b{i}") for i in range(3)]},
        format="json",
    )
    assert batch.status_code == 200, batch.content
    after = scrape()

    assert delta(before, after, "cipherguard_transactions_scored_total", path="single") == 1  # not the replay
    assert delta(before, after, "cipherguard_transactions_scored_total", path="batch") == 3
    assert delta(before, after, "cipherguard_scoring_seconds_count", path="single") == 2  # every call is timed
    assert delta(before, after, "cipherguard_scoring_seconds_count", path="batch") == 1
    decisions = sum(
        delta(before, after, "cipherguard_decisions_total", decision=d) for d in ("approve", "review", "decline")
    )
    assert decisions == 4
    assert delta(before, after, "cipherguard_decisions_total", decision=decision) >= 1
    assert delta(before, after, "cipherguard_fraud_score_count") == 4
    # django-prometheus: per-view latency histograms with buckets fine enough for a millisecond p50.
    assert (
        delta(
            before,
            after,
            "django_http_requests_latency_seconds_by_view_method_count",
            view="transactions",
            method="POST",
        )
        == 2
    )
    assert (
        "django_http_requests_latency_seconds_by_view_method_bucket",
        (("le", "0.005"), ("method", "POST"), ("view", "transactions")),
    ) in after


def test_state_metrics_come_from_the_database(db, alice, active_model, settings):
    now = datetime.now(UTC)
    CaseFactory(transaction__owner=alice)
    CaseFactory(transaction__owner=alice, due_at=now - timedelta(hours=1), opened_at=now - timedelta(hours=30))
    CaseFactory(transaction__owner=alice, status=CaseStatus.IN_REVIEW)
    CaseFactory(transaction__owner=alice, status=CaseStatus.CLOSED, outcome="legitimate", closed_at=now)
    # Labelled transactions scored by the live model: 3 caught frauds, 1 false alarm, 1 missed
    # fraud, 5 quiet legitimate ones -> precision 3/4, recall 3/4.
    for decision, label, n in (("review", "fraud", 2), ("decline", "fraud", 1), ("review", "legitimate", 1),
                               ("approve", "fraud", 1), ("approve", "legitimate", 5)):  # fmt: skip
        for _ in range(n):
            TransactionFactory(
                owner=alice, model_version=active_model, scored_at=now, fraud_score=0.5, decision=decision,
                label=label, label_time=now, label_source="client",
            )  # fmt: skip
    DriftReport.objects.create(
        day=datetime.now(UTC).date(), model_version=active_model, n=10, score_psi=0.31, feature_psi={"amount_log": 0.12}
    )
    BatchJob.objects.create(owner=alice, source="csv", status=BatchStatus.RUNNING, total=200, scored=90, failed=10)
    BatchJob.objects.create(owner=alice, source="csv", status=BatchStatus.QUEUED, total=5)

    m = scrape()

    assert m[("cipherguard_state_up", ())] == 1
    assert m[("cipherguard_cases", (("status", "open"),))] == 2
    assert m[("cipherguard_cases", (("status", "in_review"),))] == 1
    assert m[("cipherguard_cases", (("status", "escalated"),))] == 0
    assert m[("cipherguard_cases_overdue", ())] == 1
    assert m[("cipherguard_case_oldest_open_age_seconds", ())] == pytest.approx(30 * 3600, abs=120)
    assert m[("cipherguard_model_info", (("role", "active"), ("version", active_model.version)))] == 1
    assert m[("cipherguard_model_active", ())] == 1
    assert m[("cipherguard_model_labelled_transactions", ())] == 10
    assert m[("cipherguard_model_precision", ())] == pytest.approx(0.75)
    assert m[("cipherguard_model_recall", ())] == pytest.approx(0.75)
    assert m[("cipherguard_drift_score_psi", ())] == pytest.approx(0.31)
    assert m[("cipherguard_drift_feature_psi", (("feature", "amount_log"),))] == pytest.approx(0.12)
    assert m[("cipherguard_batch_jobs", (("status", "running"),))] == 1
    assert m[("cipherguard_batch_jobs", (("status", "queued"),))] == 1
    running = BatchJob.objects.get(status=BatchStatus.RUNNING)
    assert m[("cipherguard_batch_job_progress_ratio", (("job", str(running.pk)),))] == pytest.approx(0.5)


def webhook_delivery(endpoint, *, age: timedelta, status: str = "pending", attempts: int = 0, due=None):
    """A delivery of an event recorded ``age`` ago (rows made directly: the state, not the sending)."""
    created = timezone.now() - age
    event = WebhookEvent.objects.create(
        event_id=uuid.uuid4(), type="transaction.flagged", owner=endpoint.owner, api_version="2026-12-01",
        data={}, created_at=created,
    )  # fmt: skip
    return WebhookDelivery.objects.create(
        event=event, endpoint=endpoint, status=status, attempts=attempts, next_attempt_at=due, created_at=created
    )


def webhook_endpoint(owner, **fields) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(
        owner=owner, url="https://hooks.example.com/in", event_types=["transaction.flagged"], secret="v1:x:y",
        **fields,
    )  # fmt: skip


def test_webhook_backlog_and_endpoints_come_from_the_database(db, alice, bob, django_assert_num_queries):
    now = timezone.now()
    healthy = webhook_endpoint(alice)
    failing = webhook_endpoint(alice, failing_since=now - timedelta(hours=2))
    # Disabled after a day of failures: disabled, not failing (each endpoint in one state).
    webhook_endpoint(bob, enabled=False, disabled_at=now, failing_since=now - timedelta(days=1))
    # Due 40 minutes ago and never sent (workers stopped); two retries waiting for their backoff,
    # the older event 3 hours old; settled deliveries count for nothing, however old.
    webhook_delivery(healthy, age=timedelta(minutes=40), due=now - timedelta(minutes=40))
    webhook_delivery(failing, age=timedelta(hours=3), attempts=4, due=now + timedelta(minutes=20))
    webhook_delivery(failing, age=timedelta(hours=1), attempts=2, due=now + timedelta(minutes=5))
    webhook_delivery(healthy, age=timedelta(hours=9), status="delivered", attempts=1)
    webhook_delivery(failing, age=timedelta(days=2), status="failed", attempts=8)

    from fraud import metrics

    with django_assert_num_queries(2):  # one aggregate over the pending deliveries, one over the endpoints
        metrics._webhook_state(now)
    m = scrape()

    assert m[("cipherguard_webhook_backlog", (("attempt", "first"),))] == 1
    assert m[("cipherguard_webhook_backlog", (("attempt", "retry"),))] == 2
    assert m[("cipherguard_webhook_oldest_undelivered_seconds", ())] == pytest.approx(3 * 3600, abs=60)
    assert m[("cipherguard_webhook_overdue_seconds", ())] == pytest.approx(40 * 60, abs=60)
    assert m[("cipherguard_webhook_endpoints", (("state", "enabled"),))] == 1
    assert m[("cipherguard_webhook_endpoints", (("state", "failing"),))] == 1
    assert m[("cipherguard_webhook_endpoints", (("state", "disabled"),))] == 1


def test_webhook_state_is_zero_when_nothing_is_pending_and_a_waiting_retry_is_not_late(db, alice):
    m = scrape()
    assert m[("cipherguard_webhook_backlog", (("attempt", "first"),))] == 0
    assert m[("cipherguard_webhook_oldest_undelivered_seconds", ())] == 0
    assert m[("cipherguard_webhook_overdue_seconds", ())] == 0
    assert m[("cipherguard_webhook_endpoints", (("state", "disabled"),))] == 0

    cache.clear()  # the next scrape reads the database again
    receiver_down = webhook_endpoint(alice, failing_since=timezone.now() - timedelta(hours=1))
    webhook_delivery(receiver_down, age=timedelta(hours=1), attempts=3, due=timezone.now() + timedelta(minutes=30))
    m = scrape()
    # An hour-old event waits for its retry: old, but not late for a worker.
    assert m[("cipherguard_webhook_oldest_undelivered_seconds", ())] == pytest.approx(3600, abs=60)
    assert m[("cipherguard_webhook_overdue_seconds", ())] == 0
    assert m[("cipherguard_webhook_endpoints", (("state", "failing"),))] == 1


def test_state_is_cached_briefly_between_scrapes(db, alice, active_model, django_assert_max_num_queries):
    scrape()
    CaseFactory(transaction__owner=alice)
    with django_assert_max_num_queries(0):
        m = scrape()
    assert m[("cipherguard_cases", (("status", "open"),))] == 0  # the cached figure, up to 15 s old


def test_a_database_outage_still_serves_the_process_metrics(db, monkeypatch):
    from django.db import OperationalError

    from fraud import metrics

    def down():
        raise OperationalError("connection refused")

    monkeypatch.setattr(metrics, "_state", down)
    m = scrape()
    assert m[("cipherguard_state_up", ())] == 0
    assert any(name.startswith("django_http_") for name, _ in m)


def test_metrics_need_the_token_when_one_is_set(db, settings):
    settings.METRICS_TOKEN = "a-scrape-token-of-at-least-32-characters"
    client = Client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert scrape(Authorization=f"Bearer {settings.METRICS_TOKEN}")


def test_metrics_are_closed_in_production_without_a_token(db, settings):
    settings.METRICS_TOKEN = ""
    settings.IS_PRODUCTION, settings.ENVIRONMENT, settings.DEBUG = True, "production", False
    assert Client().get("/metrics").status_code == 404


def test_without_a_token_only_a_debug_server_serves_metrics(db, settings):
    settings.METRICS_TOKEN = ""
    settings.ENVIRONMENT = "development"  # e.g. a staging box that forgot ENVIRONMENT=production
    settings.DEBUG = False
    assert Client().get("/metrics").status_code == 404
    settings.DEBUG = True
    assert Client().get("/metrics").status_code == 200


def test_celery_tasks_are_counted_and_timed():
    from types import SimpleNamespace

    from cipherguard.celery import _restore_request_id, _task_finished

    before = scrape_registry()
    task = SimpleNamespace(name="fraud.tasks.example", request=SimpleNamespace())
    _restore_request_id(task_id="t-1", task=task)
    _task_finished(task_id="t-1", task=task, state="SUCCESS")
    _restore_request_id(task_id="t-2", task=task)
    _task_finished(task_id="t-2", task=task, state="FAILURE")
    after = scrape_registry()
    assert delta(before, after, "cipherguard_celery_tasks_total", task="fraud.tasks.example", state="SUCCESS") == 1
    assert delta(before, after, "cipherguard_celery_tasks_total", task="fraud.tasks.example", state="FAILURE") == 1
    assert delta(before, after, "cipherguard_celery_task_seconds_count", task="fraud.tasks.example") == 2


def scrape_registry() -> dict[Key, float]:
    from cipherguard import metrics

    return parse(metrics.exposition(include_state=False).decode())


def test_gunicorn_workers_are_summed_in_one_scrape(postgres_tx, tmp_path):
    """Two gunicorn workers, eighty requests spread over them: one scrape counts them all."""
    env = {"METRICS_TOKEN": "scrape-token-for-the-multiprocess-test-0001", "LOG_LEVEL": "WARNING"}
    with gunicorn(tmp_path, env) as server:
        base = server.base
        # Concurrent requests: a sync worker serves one at a time, so both workers get some.
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: urllib.request.urlopen(f"{base}/healthz", timeout=10).read(), range(80)))  # noqa: S310
        token = {"Authorization": f"Bearer {env['METRICS_TOKEN']}"}
        request = urllib.request.Request(f"{base}/metrics", headers=token)  # noqa: S310 - loopback
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            m = parse(response.read().decode())
        files = list((tmp_path / "prom").glob("counter_*.db"))
    assert m[("django_http_requests_total_by_view_transport_method_total", (("method", "GET"), ("transport", "http"), ("view", "healthz")))] == 81  # fmt: skip
    assert len(files) >= 2  # one file per worker process that counted something
