"""Webhook event metrics: every attempt counted by outcome and timed, the delivery lag of what
arrived, endpoints the platform disabled; and a real worker's attempts on its metrics port, summed
over its pool processes (prometheus_client's multiprocess mode, as deployed)."""

from __future__ import annotations

import urllib.request
from datetime import timedelta

import time_machine
from django.db import transaction
from django.utils import timezone

from fraud.models import WebhookDelivery, WebhookEventType
from fraud.webhooks import delivery as deliveries
from fraud.webhooks.events import webhook_events_record
from fraud.webhooks.services import webhook_endpoint_create
from tests.fraud.batches.test_worker import wait_for, worker  # noqa: F401 - the fixture
from tests.fraud.webhooks.receiver import running_receiver
from tests.helpers import free_port
from tests.ops.test_metrics import delta, parse, scrape_registry

FLAGGED = WebhookEventType.TRANSACTION_FLAGGED


def record(owner, n: int) -> None:
    with transaction.atomic():
        webhook_events_record(event_type=FLAGGED, owner=owner, payloads=[{"transaction_id": f"M{i}"} for i in range(n)])


def test_attempts_are_counted_by_outcome_timed_and_the_lag_observed(
    alice, bob, receiver, django_capture_on_commit_callbacks
):
    receiver.answers = [500]
    webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[FLAGGED])
    record(alice, 2)
    before = scrape_registry()

    # Sent 90 s after the events were recorded: one answered 500 (a retry), one delivered.
    with time_machine.travel(timezone.now() + timedelta(seconds=90), tick=False):
        outcomes = deliveries.webhook_deliveries_send(delivery_ids=deliveries.webhook_deliveries_due())
    for gone in running_receiver(answers=[410]):
        webhook_endpoint_create(owner=bob, url=gone.url, event_types=[FLAGGED])
        record(bob, 1)
        [bobs] = WebhookDelivery.objects.filter(endpoint__owner=bob).values_list("pk", flat=True)
        with django_capture_on_commit_callbacks(execute=True):  # the disable is counted once it commits
            outcomes += deliveries.webhook_deliveries_send(delivery_ids=[bobs])
    after = scrape_registry()

    assert sorted(o.status for o in outcomes) == ["delivered", "failed", "retry"]
    name = "cipherguard_webhook_attempts_total"
    assert [delta(before, after, name, outcome=o) for o in ("delivered", "retry", "failed")] == [1, 1, 1]
    assert delta(before, after, "cipherguard_webhook_attempt_seconds_count") == 3
    # The delivered event waited 90 s: in the lag's 300 s bucket, not its 60 s one.
    lag = "cipherguard_webhook_delivery_lag_seconds_bucket"
    assert delta(before, after, lag, le="60.0") == 0
    assert delta(before, after, lag, le="300.0") == 1
    assert delta(before, after, "cipherguard_webhook_delivery_lag_seconds_count") == 1
    # The 410 disabled bob's endpoint; a day of failures would count as "failing".
    assert delta(before, after, "cipherguard_webhook_endpoints_disabled_total", cause="gone") == 1
    assert delta(before, after, "cipherguard_webhook_endpoints_disabled_total", cause="failing") == 0


def test_every_outcome_and_cause_is_exported_before_it_first_happens():
    exported = scrape_registry()
    for outcome in ("delivered", "retry", "failed"):
        assert ("cipherguard_webhook_attempts_total", (("outcome", outcome),)) in exported
    for cause in ("gone", "failing"):
        assert ("cipherguard_webhook_endpoints_disabled_total", (("cause", cause),)) in exported


def test_a_worker_s_webhook_attempts_are_summed_on_its_metrics_port(worker, alice, settings, tmp_path):  # noqa: F811
    """Two pool processes send; the worker's main process serves both processes' counts."""
    port = free_port()
    for receiver in running_receiver(answers=[503]):
        worker(
            concurrency=2,
            METRICS_PORT=str(port),
            PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
            # The receiver listens on loopback over http, as an operator allows an internal one.
            WEBHOOKS_ALLOWED_NETWORKS="127.0.0.1/32",
            WEBHOOKS_HTTPS_ONLY="false",
        )
        settings.WEBHOOKS_ALLOWED_NETWORKS, settings.WEBHOOKS_HTTPS_ONLY = ["127.0.0.1/32"], False
        webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[FLAGGED])
        for _ in range(4):  # one task message per event, as scoring records them
            record(alice, 1)

        def scrape() -> dict:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:  # noqa: S310 - loopback
                return parse(response.read().decode())

        def attempts() -> dict[str, float]:
            try:
                m = scrape()
            except OSError:  # not serving yet
                return {}
            return {
                o: m.get(("cipherguard_webhook_attempts_total", (("outcome", o),)), 0) for o in ("delivered", "retry")
            }

        wait_for(lambda: attempts() == {"delivered": 3, "retry": 1}, timeout=60, what="four attempts",
                 logs=worker.logs)  # fmt: skip
        m = scrape()
        assert len(receiver.requests) == 4
    assert m[("cipherguard_webhook_attempt_seconds_count", ())] == 4
    assert m[("cipherguard_webhook_delivery_lag_seconds_count", ())] == 3
    assert m[("cipherguard_webhook_attempts_total", (("outcome", "failed"),))] == 0
