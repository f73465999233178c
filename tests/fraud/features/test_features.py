"""One feature definition, two implementations: SQL aggregates online, numpy offline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud.features import definitions as fx
from fraud.features.store import load_history
from fraud.modelops.services.history import history_generate
from fraud.models import Transaction
from tests.factories import TransactionFactory
from tests.helpers import online_features

DELAY = 7
START = datetime(2026, 3, 1, tzinfo=UTC)


def online(tx: Transaction) -> np.ndarray:
    return online_features(tx, label_delay_days=DELAY)[0]


def offline_by_id() -> dict[int, np.ndarray]:
    frame, ids = load_history(Transaction.objects.all())
    x = fx.features_offline(frame, frame, label_delay_days=DELAY)
    return {int(pk): x[i] for i, pk in enumerate(ids)}


def test_online_and_offline_features_are_identical_for_the_same_transactions(alice, bob):
    history_generate(owner=alice, days=40, customers=60, merchants=8, seed=3, start=START)
    # Bob's history reuses the same customer and merchant ids: it must not leak into Alice's features.
    history_generate(owner=bob, days=40, customers=60, merchants=8, seed=4, start=START)
    offline = offline_by_id()
    rng = np.random.default_rng(0)
    sample = rng.choice(sorted(offline), size=250, replace=False)
    online_rows, offline_rows = [], []
    for pk in sample:
        tx = Transaction.objects.get(pk=pk)
        online_rows.append(online(tx))
        offline_rows.append(offline[int(pk)])
    on, off = np.array(online_rows), np.array(offline_rows)
    np.testing.assert_allclose(on, off, rtol=1e-5, atol=1e-5)
    # The sample exercises every kind of feature, so agreement is not agreement on zeros.
    col = fx.FEATURE_INDEX
    assert (off[:, col["c_n_1d"]] > 0).any()
    assert (off[:, col["m_risk_30d"]] > 0).any()
    assert (off[:, col["new_merchant_30d"]] == 1).any() and (off[:, col["new_merchant_30d"]] == 0).any()
    assert (off[:, col["amount_zscore_30d"]] != 0).any()
    for name in ("amount_ratio_older", "spend_shift_7d", "amount_ratio_max_30d"):
        assert len(np.unique(off[:, col[name]])) > 10, name
    assert (off[:, col["m_fraud_n_30d"]] > 0).any()


def test_window_edges_agree_online_and_offline(alice):
    t = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)
    target = TransactionFactory(owner=alice, customer_id="C", merchant_id="M", timestamp=t, amount=Decimal("100"))
    # Exactly 30 days before counts; exactly at t and after t do not; 1 µs before t counts.
    for when, amount in [
        (t - timedelta(days=30), "10"),
        (t, "20"),
        (t + timedelta(seconds=1), "30"),
        (t - timedelta(microseconds=1), "40"),
    ]:
        TransactionFactory(owner=alice, customer_id="C", merchant_id="M", timestamp=when, amount=Decimal(amount))
    on = online(target)
    off = offline_by_id()[target.pk]
    np.testing.assert_allclose(on, off, rtol=1e-6)
    assert on[fx.FEATURE_INDEX["c_n_30d"]] == 2
    assert on[fx.FEATURE_INDEX["c_n_1h"]] == 1
    assert on[fx.FEATURE_INDEX["c_avg_30d"]] == pytest.approx(25.0)
    # The largest earlier amount is the one 1 µs before (40), not the later ones (20, 30).
    assert on[fx.FEATURE_INDEX["amount_ratio_max_30d"]] == pytest.approx(100 / 40)
    # 7–30 days ago holds only the 10 (exactly 30 days before); the last 7 days only the 40.
    assert on[fx.FEATURE_INDEX["amount_ratio_older"]] == pytest.approx(100 / 10)
    assert on[fx.FEATURE_INDEX["spend_shift_7d"]] == pytest.approx(40 / 10)


@pytest.mark.parametrize("implementation", ["online", "offline"])
def test_no_feature_uses_transactions_or_labels_from_after_their_time(alice, implementation):
    t = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)
    target = TransactionFactory(owner=alice, customer_id="C", merchant_id="M", timestamp=t)
    old = [
        TransactionFactory(owner=alice, customer_id=f"K{i}", merchant_id="M", timestamp=t - timedelta(days=10, hours=i))
        for i in range(5)
    ]
    recent = TransactionFactory(owner=alice, customer_id="K9", merchant_id="M", timestamp=t - timedelta(days=2))

    def features() -> np.ndarray:
        return online(target) if implementation == "online" else offline_by_id()[target.pk]

    before = features()
    # Future transactions of the same customer and merchant.
    TransactionFactory(
        owner=alice, customer_id="C", merchant_id="M", timestamp=t + timedelta(minutes=5), amount=Decimal("9999")
    )
    # A label on an old transaction that only became known after t.
    Transaction.objects.filter(pk=old[0].pk).update(
        label="fraud", label_source="client", label_time=t + timedelta(seconds=1)
    )
    # A label known before t, but on a transaction younger than the label delay.
    Transaction.objects.filter(pk=recent.pk).update(
        label="fraud", label_source="client", label_time=t - timedelta(hours=1)
    )
    np.testing.assert_array_equal(features(), before)

    # Control: a label known in time on an old transaction does move merchant risk.
    Transaction.objects.filter(pk=old[1].pk).update(
        label="fraud", label_source="client", label_time=t - timedelta(days=1)
    )
    after = features()
    assert after[fx.FEATURE_INDEX["m_risk_30d"]] == pytest.approx(1 / 5)
    assert after[fx.FEATURE_INDEX["m_fraud_n_30d"]] == 1.0
    assert after[fx.FEATURE_INDEX["m_risk_1d"]] == 0.0  # the old rows are 10 days old: outside [t-8d, t-7d)


@given(
    groups=st.lists(st.integers(0, 3), min_size=1, max_size=80),
    values=st.lists(st.floats(0.01, 1e6), min_size=80, max_size=80),
    queries=st.lists(st.tuples(st.integers(0, 80), st.integers(0, 80)), min_size=1, max_size=30),
)
@settings(max_examples=300, deadline=None)
def test_range_max_is_the_maximum_of_every_range(groups, values, queries):
    """The sparse table behind the 30-day maximum, against max() over each range (power-of-two
    lengths included, where a rounding log2 could pick the wrong level)."""
    n = len(groups)
    grouped = fx._Grouped(np.array(groups), np.arange(n, dtype=np.int64), {"v": np.array(values[:n])})
    lo = np.array([min(a, b) % (n + 1) for a, b in queries])
    hi = np.array([max(min(a, b) % (n + 1), max(a, b) % (n + 1)) for a, b in queries])
    got = grouped.range_max("v", lo, hi, empty=-1.0)
    expected = [max(grouped.values["v"][a:b], default=-1.0) for a, b in zip(lo, hi, strict=True)]
    np.testing.assert_array_equal(got, expected)


def test_calendar_flags_use_utc_hour_and_weekday():
    saturday_3am = fx.to_epoch_us(datetime(2026, 11, 28, 3, 0, tzinfo=UTC))
    monday_noon = fx.to_epoch_us(datetime(2026, 11, 30, 12, 0, tzinfo=UTC))
    night, weekend = fx.calendar_flags(np.array([saturday_3am, monday_noon]))
    assert night.tolist() == [1.0, 0.0]
    assert weekend.tolist() == [1.0, 0.0]


def test_epoch_microseconds_are_exact():
    moment = datetime(2026, 11, 27, 10, 15, 30, 123457, tzinfo=UTC)
    assert fx.from_epoch_us(fx.to_epoch_us(moment)) == moment


def test_card_velocity_counts_only_the_same_card_of_the_same_client(alice, bob):
    t = datetime(2026, 4, 12, 9, 0, tzinfo=UTC)
    target = TransactionFactory(owner=alice, customer_id="C", card_fingerprint="f1", timestamp=t)
    for i in range(3):  # the card used by other customers: a classic stolen-card pattern
        TransactionFactory(
            owner=alice, customer_id=f"X{i}", card_fingerprint="f1", timestamp=t - timedelta(minutes=10 * (i + 1))
        )
    TransactionFactory(owner=alice, customer_id="X9", card_fingerprint="f1", timestamp=t - timedelta(hours=5))
    TransactionFactory(owner=alice, customer_id="Y", card_fingerprint="f2", timestamp=t - timedelta(minutes=5))
    TransactionFactory(owner=bob, customer_id="C", card_fingerprint="f1", timestamp=t - timedelta(minutes=5))
    for i in range(2):
        TransactionFactory(owner=alice, customer_id=f"Z{i}", card_fingerprint="", timestamp=t - timedelta(minutes=5))
    no_card = TransactionFactory(owner=alice, customer_id="W", card_fingerprint="", timestamp=t)
    offline = offline_by_id()

    for tx, expected in ((target, (1.0, 3.0, 4.0)), (no_card, (0.0, 0.0, 0.0))):
        on = online(tx)
        np.testing.assert_allclose(on, offline[tx.pk], rtol=1e-6)
        got = tuple(on[fx.FEATURE_INDEX[name]] for name in ("has_card", "card_n_1h", "card_n_1d"))
        assert got == expected


def test_the_feature_read_brings_the_customers_recent_countries_as_their_own_query_does(alice):
    from fraud.features.store import PendingTransaction, customer_countries, features_online, read_online

    t = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)
    for when, country in [
        (t - timedelta(days=30), "FR"),  # exactly 30 days before: in
        (t - timedelta(days=30, microseconds=1), "IT"),  # just before: out
        (t - timedelta(days=2), "DE"),
        (t - timedelta(hours=1), "FR"),
        (t, "ES"),  # at t: out
    ]:
        TransactionFactory(owner=alice, customer_id="C", merchant_id="M", timestamp=when, country=country)
    TransactionFactory(owner=alice, customer_id="other", merchant_id="M", timestamp=t - timedelta(days=1), country="PT")
    for customer, expected in (("C", {"FR", "DE"}), ("nobody", set())):
        pending = PendingTransaction(
            owner_id=alice.pk, customer_id=customer, merchant_id="M", country="GB", channel="", timestamp=t, amount=1.0
        )
        read = read_online(pending, label_delay_days=DELAY)
        assert read.customer_countries_30d == expected == customer_countries(pending, days=30)
        np.testing.assert_array_equal(read.row, features_online(pending, label_delay_days=DELAY))


def test_windows_whose_edges_fall_on_midnight_and_on_the_hour_agree_online_and_offline(alice):
    """The store reads a window as raw edge hours, hour buckets and day buckets: its edges on, and a
    microsecond either side of, midnight UTC and the hour must count exactly what the offline
    path counts (history and labels on every window edge of the merchant, delayed ones included)."""
    targets = [
        datetime(2026, 4, 10, 0, 0, tzinfo=UTC),
        datetime(2026, 4, 10, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 4, 11, 0, 0, 0, 1, tzinfo=UTC),
        datetime(2026, 4, 11, 13, 0, tzinfo=UTC),
    ]
    for n, t in enumerate(targets):
        for days in (1, 3, 7, 8, 10, 14, 21, 28, 30, 37):
            for i, delta in enumerate((timedelta(microseconds=-1), timedelta(0), timedelta(microseconds=1),
                                       timedelta(hours=-1), timedelta(hours=1))):  # fmt: skip
                when = t - timedelta(days=days) + delta
                fraud = (days + i) % 3 == 0
                TransactionFactory(
                    owner=alice, customer_id=f"C{n}{i}", merchant_id="M", timestamp=when,
                    amount=Decimal(f"{days + i}.5"), label="fraud" if fraud else "",
                    label_time=when + timedelta(days=1 + i) if fraud else None,
                )  # fmt: skip
    stored = [TransactionFactory(owner=alice, customer_id="C", merchant_id="M", timestamp=t) for t in targets]
    offline = offline_by_id()
    for tx in stored:
        on, off = online(tx), offline[tx.pk]
        np.testing.assert_allclose(on, off, rtol=1e-6, err_msg=str(tx.timestamp))
        assert on[fx.FEATURE_INDEX["m_n_30d"]] > 0 and on[fx.FEATURE_INDEX["m_fraud_n_30d"]] > 0
