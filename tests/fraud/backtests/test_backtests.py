"""Backtests on a fixture with known answers: a candidate rule and new thresholds over stored
history, beside the current setup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from audit.models import AuditEvent
from fraud.backtests.services import backtest_create, backtest_run
from fraud.models import BacktestStatus
from fraud.rules.services import PolicyError, rule_save
from tests.factories import TransactionFactory

DAY1 = datetime(2026, 3, 10, 12, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
# (time, amount, stored score, fraud?) — current thresholds 0.5 / 0.9.
ROWS = [
    (DAY1, "100", 0.10, False),  # a: approved by everyone
    (DAY1, "6000", 0.20, True),  # b: fraud the model missed; the rule catches it
    (DAY1, "8000", 0.95, True),  # c: declined by the model; the rule (which decides first) reviews it
    (DAY2, "5500", 0.05, False),  # d: the rule's false positive
    (DAY2, "50", 0.60, False),  # e: the model's false positive (review)
]


@pytest.fixture
def history(alice):
    for i, (when, amount, score, fraud) in enumerate(ROWS):
        TransactionFactory(owner=alice, transaction_id=f"h{i}", customer_id=f"C{i}", timestamp=when + timedelta(minutes=i),
                           amount=Decimal(amount), fraud_score=score, label="fraud" if fraud else "legitimate",
                           label_source="client", label_time=when + timedelta(days=3))  # fmt: skip


def run(dave, **kwargs):
    backtest = backtest_create(
        actor=dave, window_start=DAY1.replace(hour=0), window_end=DAY2 + timedelta(days=1), **kwargs
    )
    return backtest_run(backtest_id=backtest.pk)


def test_a_candidate_rule_against_the_current_setup(history, dave):
    rule = rule_save(actor=dave, name="big", condition="amount > 5000", action="review")
    backtest = run(dave, rule=rule)

    assert backtest.status == BacktestStatus.SUCCEEDED and backtest.progress == 1.0
    totals = backtest.result["totals"]
    assert {k: totals["current"][k] for k in ("n", "flagged", "flagged_amount", "caught", "caught_amount",
                                              "false_positives", "cases")} == {
        "n": 5, "flagged": 2, "flagged_amount": 8050.0, "caught": 1, "caught_amount": 8000.0, "false_positives": 1,
        "cases": 2}  # fmt: skip
    assert {k: totals["candidate"][k] for k in ("flagged", "flagged_amount", "caught", "caught_amount",
                                                "false_positives", "cases")} == {
        "flagged": 4, "flagged_amount": 19550.0, "caught": 2, "caught_amount": 14000.0, "false_positives": 2,
        "cases": 4}  # fmt: skip
    assert (totals["rule"]["flagged"], totals["rule"]["caught"], totals["rule"]["false_positives"]) == (3, 2, 1)
    assert backtest.result["extra_cases"] == 2
    assert [d["day"] for d in backtest.result["days"]] == ["2026-03-10", "2026-03-11"]
    day1 = backtest.result["days"][0]
    assert (day1["current"]["flagged"], day1["candidate"]["flagged"], day1["rule"]["caught"]) == (1, 2, 2)
    assert AuditEvent.objects.filter(event_type="backtest.created").count() == 1


def test_new_thresholds_against_the_current_ones(history, dave):
    backtest = run(dave, review=0.15, decline=0.9)
    candidate = backtest.result["totals"]["candidate"]
    assert (candidate["flagged"], candidate["caught"], candidate["false_positives"]) == (3, 2, 1)  # b, c, e


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({}, "rule"), ({"review": 0.5}, "decline_threshold"), ({"review": 0.9, "decline": 0.5}, "review_threshold")],
)
def test_a_backtest_must_test_something_sensible(dave, kwargs, field):
    with pytest.raises(PolicyError) as caught:
        backtest_create(actor=dave, window_start=DAY1, window_end=DAY2, **kwargs)
    assert caught.value.field == field


def test_an_analyst_runs_a_backtest_from_the_console_and_sees_the_chart(client, carol, dave, history,
                                                                        django_capture_on_commit_callbacks, settings):  # fmt: skip
    from tests.factories import PASSWORD

    settings.CELERY_TASK_ALWAYS_EAGER = True  # the worker's part runs in-process here
    rule = rule_save(actor=dave, name="big", condition="amount > 5000", action="review")
    client.login(username=carol.username, password=PASSWORD)
    assert client.get("/console/backtests/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/console/backtests/", {"rule": rule.pk, "start": "2026-03-10", "end": "2026-03-11"})
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "Succeeded" in page and "<svg" in page and "Transactions flagged per day" in page
    assert "Confirmed fraud caught" in page
    refused = client.post("/console/backtests/", {"start": "2026-03-10", "end": "2026-03-11"})
    assert "Choose a rule version" in refused.content.decode()


def test_the_customers_countries_in_a_backtest_exclude_payments_at_the_same_instant():
    import numpy as np

    from fraud.backtests.services import _countries_before
    from fraud.features import definitions as fx

    t = fx.to_epoch_us(DAY1)
    frame = fx.Frame(
        customer=np.array(["c", "c", "c", "d"]), merchant=np.array(["m"] * 4), country=np.array(["FR", "DE", "NG", "FR"]),
        currency=np.array(["EUR", "EUR", "NGN", "EUR"]), channel=np.array([""] * 4),
        ts=np.array([t - fx.DAY, t, t, t], dtype=np.int64), amount=np.ones(4),
        fraud_known_at=np.full(4, fx.NOT_FRAUD), card=np.array([""] * 4),
    )  # fmt: skip
    assert _countries_before(frame, np.arange(4), 30) == {0: frozenset(), 1: {"FR"}, 2: {"FR"}, 3: frozenset()}
