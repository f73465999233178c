"""One feature definition, two implementations: SQL aggregates online, numpy offline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud.features import definitions as fx
from fraud.features.store import (
    PendingTransaction,
    aggregates_online,
    features_for_new,
    load_history,
    read_online,
)
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


def pending(tx: Transaction) -> PendingTransaction:
    return PendingTransaction(
        owner_id=tx.owner_id, customer_id=tx.customer_id, merchant_id=tx.merchant_id, country=tx.country,
        currency=tx.currency, channel=tx.channel, timestamp=tx.timestamp, amount=float(tx.amount),
        card_fingerprint=tx.card_fingerprint,
    )  # fmt: skip


# The v4 aggregates and the features made of them, compared to the bit (counts, and shares of counts).
V4_AGGREGATES = ("c_n_30d", "cc_n_30d", "cu_n_30d")
V4_FEATURES = ("new_country_30d", "new_currency_30d", "country_share_30d", "currency_share_30d")


def test_online_and_offline_features_are_identical_for_the_same_transactions(alice, bob):
    history_generate(owner=alice, days=40, customers=60, merchants=8, seed=3, start=START)
    # Bob's history reuses the same customer and merchant ids: it must not leak into Alice's features.
    history_generate(owner=bob, days=40, customers=60, merchants=8, seed=4, start=START)
    # A foreign cash-out is in the local currency: changes of currency, not only of country.
    assert Transaction.objects.exclude(currency__in=["EUR", "GBP", "USD", "PLN", "SEK"]).exists()
    frame, ids = load_history(Transaction.objects.all())
    x = fx.features_offline(frame, frame, label_delay_days=DELAY)
    offline = {int(pk): row for pk, row in zip(ids, x, strict=True)}
    aggregates = fx.aggregate_offline(frame, frame, label_delay_days=DELAY)
    position = {int(pk): i for i, pk in enumerate(ids)}
    rng = np.random.default_rng(0)
    sample = rng.choice(sorted(offline), size=250, replace=False)
    transactions = [Transaction.objects.get(pk=pk) for pk in sample]
    online_rows, offline_rows = [], []
    for tx in transactions:
        online_rows.append(online(tx))
        offline_rows.append(offline[tx.pk])
        on_aggregates = aggregates_online(pending(tx), label_delay_days=DELAY)
        for name in V4_AGGREGATES:
            assert on_aggregates[name] == aggregates[name][position[tx.pk]], (name, tx.pk)
    on, off = np.array(online_rows), np.array(offline_rows)
    np.testing.assert_allclose(on, off, rtol=1e-5, atol=1e-5)
    col = fx.FEATURE_INDEX
    for name in V4_FEATURES:
        np.testing.assert_array_equal(on[:, col[name]], off[:, col[name]], err_msg=name)
    # The batch path (raw history, or the feature store on PostgreSQL) computes them alike; one
    # transaction a call, as the stored ones would otherwise see each other's copies.
    for tx in transactions[:40]:
        batch = features_for_new(tx.owner_id, [pending(tx)], label_delay_days=DELAY)[0]
        for name in V4_FEATURES:
            assert batch[col[name]] == offline[tx.pk][col[name]], (name, tx.pk)
    # The sample exercises every kind of feature, so agreement is not agreement on zeros.
    assert (off[:, col["c_n_1d"]] > 0).any()
    assert (off[:, col["m_risk_30d"]] > 0).any()
    assert (off[:, col["new_merchant_30d"]] == 1).any() and (off[:, col["new_merchant_30d"]] == 0).any()
    assert (off[:, col["amount_zscore_30d"]] != 0).any()
    for name in ("amount_ratio_older", "spend_shift_7d", "amount_ratio_max_30d"):
        assert len(np.unique(off[:, col[name]])) > 10, name
    assert (off[:, col["m_fraud_n_30d"]] > 0).any()
    for name in ("new_country_30d", "new_currency_30d"):
        assert set(off[:, col[name]]) == {0.0, 1.0}, name
    for name in ("country_share_30d", "currency_share_30d"):
        assert len(np.unique(off[:, col[name]])) > 10, name


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
    from fraud.features.store import customer_countries, features_online

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
        tx = PendingTransaction(
            owner_id=alice.pk, customer_id=customer, merchant_id="M", country="GB", currency="GBP", channel="",
            timestamp=t, amount=1.0,
        )  # fmt: skip
        read = read_online(tx, label_delay_days=DELAY)
        assert read.customer_countries_30d == expected == customer_countries(tx, days=30)
        np.testing.assert_array_equal(read.row, features_online(tx, label_delay_days=DELAY))


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


def test_currency_changes_count_the_customers_payments_in_each_currency_in_30_days(alice):
    """The v4 features at their window's edges, online and offline: exactly 30 days before counts,
    at t and after do not; another customer's payments and another client's never do."""
    t = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)
    for when, country, currency in [
        (t - timedelta(days=30), "IT", "EUR"),  # exactly 30 days before: in
        (t - timedelta(days=30, microseconds=1), "NG", "NGN"),  # just before: out
        (t - timedelta(days=3), "IT", "EUR"),
        (t - timedelta(days=2), "GB", "GBP"),
        (t - timedelta(microseconds=1), "IT", "EUR"),
        (t, "NG", "NGN"),  # at t: out
        (t + timedelta(seconds=1), "NG", "USD"),  # after: out
    ]:
        TransactionFactory(owner=alice, customer_id="C", timestamp=when, country=country, currency=currency)
    TransactionFactory(owner=alice, customer_id="other", timestamp=t - timedelta(days=1), country="NG", currency="USD")
    cases = {
        ("NG", "USD"): (1.0, 1.0, 0.0, 0.0),  # a first in both: new, and no share
        ("GB", "GBP"): (0.0, 0.0, 0.25, 0.25),
        ("IT", "EUR"): (0.0, 0.0, 0.75, 0.75),
        ("NG", "NGN"): (1.0, 1.0, 0.0, 0.0),  # the NGN payment 30 days and 1 µs before is out
    }
    targets = {
        key: TransactionFactory(owner=alice, customer_id="C", timestamp=t, country=key[0], currency=key[1])
        for key in cases
    }
    nobody = TransactionFactory(owner=alice, customer_id="new", timestamp=t, country="NG", currency="USD")
    offline = offline_by_id()
    col = fx.FEATURE_INDEX
    for key, expected in cases.items():
        on = online(targets[key])
        np.testing.assert_array_equal(on, offline[targets[key].pk])
        assert tuple(float(on[col[name]]) for name in V4_FEATURES) == expected, key
    # Without history nothing is a change of habit: new by definition, with a share of 1.
    on = online(nobody)
    np.testing.assert_array_equal(on, offline[nobody.pk])
    assert tuple(float(on[col[name]]) for name in V4_FEATURES) == (1.0, 1.0, 1.0, 1.0)
    # The read brings the currencies beside the countries (the reasons name them).
    read = read_online(pending(targets[("NG", "USD")]), label_delay_days=DELAY)
    assert read.customer_currencies_30d == {"EUR", "GBP"} and read.customer_countries_30d == {"IT", "GB"}
