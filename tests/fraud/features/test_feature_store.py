"""The online feature store (fraud.features.buckets): every write to the transaction table keeps it
equal to a recomputation from the table, whoever writes and however."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection, transaction

from fraud.features import buckets
from fraud.modelops.services.history import history_generate
from fraud.models import FeatureBucket, Transaction
from tests.factories import TransactionFactory
from tests.helpers import at_once

START = datetime(2026, 3, 1, tzinfo=UTC)


def live() -> list[tuple]:
    rows = FeatureBucket.objects.values_list(*buckets.PK, *buckets.VALUES)
    if connection.vendor == "sqlite":  # floating-point sums there, in arrival order (buckets.differences)
        return sorted((*r[:5], r[5], round(r[6], 6), round(r[7], 4), *r[8:]) for r in rows)
    return sorted(rows)


def assert_exact() -> None:
    diff = buckets.differences(connection)
    assert diff == [], diff[:5]


@pytest.fixture
def history(alice, bob):
    history_generate(owner=alice, days=12, customers=40, merchants=6, seed=3, start=START)
    history_generate(owner=bob, days=12, customers=40, merchants=6, seed=4, start=START)  # same ids, other client


def test_bulk_inserts_of_two_clients_keep_the_store_exact(history, alice):
    assert Transaction.objects.count() > 1500
    assert_exact()
    assert set(FeatureBucket.objects.values_list("kind", "span").distinct()) == {("m", "h"), ("m", "d")}
    # One of Alice's merchants on one day: its day bucket sums exactly its rows of that day.
    some = Transaction.objects.filter(owner=alice).first()
    day = some.timestamp.replace(hour=0, minute=0, second=0, microsecond=0)
    bucket = FeatureBucket.objects.get(owner_id=alice.pk, kind="m", key=some.merchant_id, span="d", start=day)
    rows = Transaction.objects.filter(
        owner=alice, merchant_id=some.merchant_id, timestamp__gte=day, timestamp__lt=day + timedelta(days=1)
    )
    assert bucket.n == rows.count()
    assert bucket.amount_sum == pytest.approx(sum(r.amount for r in rows))
    assert bucket.amount_max == max(r.amount for r in rows)
    assert bucket.last_ts == max(r.timestamp for r in rows)


def test_a_repeated_import_adds_nothing(history, alice):
    before = live()
    assert history_generate(owner=alice, days=12, customers=40, merchants=6, seed=3, start=START) == 0
    assert live() == before


def test_labels_arriving_and_changing_move_the_fraud_counts(history, alice):
    rows = list(Transaction.objects.filter(owner=alice, label="").order_by("id")[:50])
    Transaction.objects.filter(pk__in=[r.pk for r in rows[:30]]).update(
        label="fraud", label_source="client", label_time=START + timedelta(days=20)
    )
    assert_exact()
    # Reversed (a chargeback won by the merchant), and one without a label time yet.
    Transaction.objects.filter(pk__in=[r.pk for r in rows[:10]]).update(label="legitimate")
    Transaction.objects.filter(pk=rows[11].pk).update(label="", label_time=None)
    assert_exact()
    merchant = rows[20]
    day = merchant.timestamp.replace(hour=0, minute=0, second=0, microsecond=0)
    bucket = FeatureBucket.objects.get(owner_id=alice.pk, kind="m", key=merchant.merchant_id, span="d", start=day)
    assert bucket.fraud_n == Transaction.objects.filter(
        owner=alice, merchant_id=merchant.merchant_id, label="fraud", timestamp__gte=day,
        timestamp__lt=day + timedelta(days=1),
    ).count()  # fmt: skip


def test_deletes_and_edits_of_what_a_bucket_reads_recompute_it(history, alice):
    rows = list(Transaction.objects.filter(owner=alice).order_by("-amount")[:20])
    # The largest amounts: deleting them must lower the maxima, which only a recompute can do.
    Transaction.objects.filter(pk__in=[r.pk for r in rows[:10]]).delete()
    assert_exact()
    Transaction.objects.filter(pk=rows[10].pk).update(amount=Decimal("1.2345"), customer_id="moved")
    Transaction.objects.filter(pk=rows[11].pk).update(timestamp=rows[11].timestamp - timedelta(days=3, hours=5))
    assert_exact()
    Transaction.objects.filter(owner=alice).delete()
    assert not FeatureBucket.objects.filter(owner_id=alice.pk).exists()
    assert_exact()


def test_single_inserts_fill_hour_and_day_buckets(alice):
    t = datetime(2026, 4, 10, 12, 30, tzinfo=UTC)
    for i, amount in enumerate(["10", "30", "20", "5"]):
        TransactionFactory(
            owner=alice, customer_id=f"C{i}", merchant_id="M", timestamp=t + timedelta(minutes=20 * i),
            amount=Decimal(amount),
        )  # fmt: skip
    assert_exact()
    hours = FeatureBucket.objects.filter(kind="m", span="h", key="M").order_by("start")
    assert [(h.start.hour, h.n, h.amount_sum, h.amount_max) for h in hours] == [
        (12, 2, Decimal("40"), Decimal("30")), (13, 2, Decimal("25"), Decimal("20")),
    ]  # fmt: skip
    day = FeatureBucket.objects.get(kind="m", span="d", key="M")
    assert (day.start, day.n, day.amount_sumsq, day.last_ts) == (
        datetime(2026, 4, 10, tzinfo=UTC), 4, Decimal("1425"), t + timedelta(minutes=60),
    )  # fmt: skip


def test_a_rolled_back_insert_leaves_no_bucket(alice):
    with pytest.raises(RuntimeError), transaction.atomic():
        TransactionFactory(owner=alice, customer_id="C", merchant_id="M")
        assert FeatureBucket.objects.filter(key="M").exists()
        raise RuntimeError("the request failed after the insert")
    assert not FeatureBucket.objects.exists()


def test_the_rebuilt_store_equals_the_live_one(history, alice):
    Transaction.objects.filter(owner=alice, merchant_id__in=["M00001", "M00002"]).update(
        label="fraud", label_source="client", label_time=START + timedelta(days=13)
    )
    before = live()
    assert len(before) > 1000
    call_command("feature_store", "rebuild")
    assert live() == before
    FeatureBucket.objects.filter(owner_id=alice.pk, kind="m").delete()  # damage it
    assert buckets.differences(connection)
    call_command("feature_store", "rebuild", "--owner", alice.username)
    assert live() == before
    call_command("feature_store", "check")


def test_concurrent_writers_to_the_same_buckets_stay_exact_and_never_deadlock(postgres_tx, alice):
    """Eight writers at once on one merchant and two customers: single inserts in autocommit, and
    multi-row inserts inside transactions (as the batch paths write), with labels arriving."""
    t0 = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)

    def writer(k: int) -> None:
        for i in range(15):
            when = t0 + timedelta(minutes=7 * i + k)
            if k % 2:
                TransactionFactory(owner=alice, customer_id=f"C{i % 2}", merchant_id="M", timestamp=when)
            else:
                with transaction.atomic():
                    Transaction.objects.bulk_create(
                        TransactionFactory.build(
                            owner=alice, customer_id=f"C{(i + j) % 2}", merchant_id="M", timestamp=when,
                            amount=Decimal(f"{10 + j}.25"),
                        )
                        for j in range(4)
                    )  # fmt: skip
            if i % 5 == 4:
                # Labels arrive one transaction at a time, as chargebacks do. (Two statements each
                # updating many of the same rows can deadlock on the rows themselves, store or
                # not: PostgreSQL locks them in each plan's scan order.)
                unlabelled = Transaction.objects.filter(owner=alice, merchant_id="M", label="", timestamp__lte=when)
                for pk in unlabelled.values_list("pk", flat=True)[:3]:
                    Transaction.objects.filter(pk=pk, label="").update(
                        label="fraud", label_source="client", label_time=when
                    )

    errors = [r for r in at_once(writer, 8, timeout=120) if isinstance(r, Exception)]
    assert not errors, errors
    assert Transaction.objects.count() == 4 * 15 + 4 * 15 * 4
    assert_exact()
    merchant_day = FeatureBucket.objects.get(kind="m", key="M", span="d", start=t0.replace(hour=0))
    assert merchant_day.n == Transaction.objects.filter(timestamp__date=t0.date()).count()
    assert merchant_day.fraud_n == Transaction.objects.filter(label="fraud", timestamp__date=t0.date()).count() > 0


def test_the_feature_statement_is_rewritten_for_the_server_once_not_per_read(postgres, alice, settings):
    """psycopg caches a statement's placeholder rewrite only under a size limit, which the store's
    statement is over until fraud.features.store raises it."""
    from psycopg import _queries

    from fraud.features.store import ONLINE_QUERIES, PendingTransaction, aggregates_online

    settings.FRAUD_FEATURE_READ = "store"
    assert len(ONLINE_QUERIES["postgresql"]["store"].sql.encode()) > 4096  # over psycopg's own limit
    pending = PendingTransaction(
        owner_id=alice.pk, customer_id="C1", merchant_id="M1", country="FR", currency="EUR", channel="pos",
        timestamp=START, amount=10.0,
    )  # fmt: skip
    aggregates_online(pending, label_delay_days=7)
    before = _queries._query2pg.cache_info()
    aggregates_online(pending, label_delay_days=7)
    after = _queries._query2pg.cache_info()
    assert (after.hits - before.hits, after.misses - before.misses) == (1, 0)


def test_batch_features_from_the_store_equal_those_from_raw_history(postgres, alice, bob, settings):
    """``features_for_new`` reads merchants' volumes from the store on PostgreSQL: the same
    features, to the bit, as from the raw rows, for new transactions at any time (between stored
    ones, on midnight and on the hour, a microsecond either side, on a stored row's own time),
    several of one merchant in one batch, with fraud labelled before and after their times."""
    import random

    from fraud.features import definitions as fx
    from fraud.features.store import PendingTransaction, features_for_new

    history_generate(owner=alice, days=45, customers=50, merchants=6, seed=5, start=START)
    history_generate(owner=bob, days=45, customers=50, merchants=6, seed=6, start=START)  # same ids, other client
    stored = list(Transaction.objects.filter(owner=alice).order_by("pk"))
    labelled = [t for t in stored if t.label == "fraud" and t.label_time]
    assert len(labelled) > 10 and any(t.label_time > t.timestamp + timedelta(days=8) for t in labelled)
    rng = random.Random(7)
    moments = [t.timestamp for t in rng.sample(stored, 40)] + [
        datetime(2026, 4, 10, tzinfo=UTC),  # midnight
        datetime(2026, 4, 10, 13, tzinfo=UTC),  # on the hour
        datetime(2026, 4, 10, 13, tzinfo=UTC) - timedelta(microseconds=1),
        datetime(2026, 4, 10, 13, tzinfo=UTC) + timedelta(microseconds=1),
        datetime(2026, 4, 11, tzinfo=UTC) + timedelta(days=7),  # its delayed windows end on midnight
        START + timedelta(days=44, hours=23, minutes=59),
    ]
    items = []
    for i in range(300):
        base = rng.choice(stored)
        when = rng.choice(moments) + timedelta(minutes=rng.choice([0, 0, 3, 61]))
        items.append(
            PendingTransaction(
                owner_id=alice.pk, customer_id=base.customer_id, merchant_id=base.merchant_id,
                country=rng.choice(["FR", base.country]), currency=rng.choice(["EUR", "NGN", base.currency]),
                channel=base.channel, timestamp=when,
                amount=float(base.amount) + i % 7, card_fingerprint=base.card_fingerprint,
            )
        )  # fmt: skip
    settings.FRAUD_FEATURE_READ = "history"
    raw = features_for_new(alice.pk, items, label_delay_days=7)
    settings.FRAUD_FEATURE_READ = "store"
    store = features_for_new(alice.pk, items, label_delay_days=7)
    np.testing.assert_array_equal(store, raw)
    col = fx.FEATURE_INDEX
    assert (raw[:, col["m_n_1d"]] > 0).sum() > 250 and (raw[:, col["m_fraud_n_30d"]] > 0).any()
    assert len(np.unique(raw[:, col["m_n_30d"]])) > 20 and len(np.unique(raw[:, col["m_risk_7d"]])) > 5
    assert set(raw[:, col["new_currency_30d"]]) == {0.0, 1.0} and len(np.unique(raw[:, col["currency_share_30d"]])) > 5
