"""Where features meet the database: online aggregates in two SQL queries, and history tables
loaded for offline (vectorised) feature computation. The feature maths lives in
``fraud.features``; this module only reads."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.db.models import Count, F, FloatField, Max, Q, QuerySet, Sum

from fraud import features as fx
from fraud.models import Label, Transaction


@dataclass(frozen=True)
class PendingTransaction:
    """The fields of a transaction that features depend on, before it is stored."""

    owner_id: int
    customer_id: str
    merchant_id: str
    country: str
    channel: str
    timestamp: datetime
    amount: float


def _us(delta_us: int) -> timedelta:
    return timedelta(microseconds=delta_us)


def aggregates_online(tx: PendingTransaction, *, label_delay_days: int) -> dict[str, float]:
    """The aggregates of ``fraud.features`` for one transaction, read with two indexed aggregate
    queries (customer history, merchant history), both strictly before its timestamp."""
    t = tx.timestamp
    customer_rows = Transaction.objects.filter(
        owner_id=tx.owner_id,
        customer_id=tx.customer_id,
        timestamp__gte=t - _us(max(fx.CUSTOMER_COUNT_WINDOWS.values())),
        timestamp__lt=t,
    )
    customer_aggs = {
        f"c_n_{w}": Count("id", filter=Q(timestamp__gte=t - _us(width)))
        for w, width in fx.CUSTOMER_COUNT_WINDOWS.items()
    }
    customer_aggs |= {
        f"c_sum_{w}": Sum("amount", filter=Q(timestamp__gte=t - _us(width)), output_field=FloatField())
        for w, width in fx.CUSTOMER_SUM_WINDOWS.items()
    }
    customer_aggs |= {
        "c_sumsq_30d": Sum(F("amount") * F("amount"), output_field=FloatField()),
        "c_prev": Max("timestamp"),
        "cm_n_30d": Count("id", filter=Q(merchant_id=tx.merchant_id, timestamp__gte=t - _us(fx.NOVELTY_WINDOW))),
        "cc_n_30d": Count("id", filter=Q(country=tx.country, timestamp__gte=t - _us(fx.NOVELTY_WINDOW))),
    }
    c = customer_rows.aggregate(**customer_aggs)

    delay = _us(label_delay_days * fx.DAY)
    widest = max(fx.MERCHANT_WINDOWS.values())
    merchant_rows = Transaction.objects.filter(
        owner_id=tx.owner_id,
        merchant_id=tx.merchant_id,
        timestamp__gte=min(t - _us(widest), t - delay - _us(widest)),
        timestamp__lt=t,
    )
    merchant_aggs = {}
    for w, width in fx.MERCHANT_WINDOWS.items():
        delayed = Q(timestamp__gte=t - delay - _us(width), timestamp__lt=t - delay)
        merchant_aggs[f"m_n_{w}"] = Count("id", filter=Q(timestamp__gte=t - _us(width)))
        merchant_aggs[f"m_dn_{w}"] = Count("id", filter=delayed)
        merchant_aggs[f"m_fraud_{w}"] = Count("id", filter=delayed & Q(label=Label.FRAUD, label_time__lte=t))
    m = merchant_rows.aggregate(**merchant_aggs)

    out = {name: float(value or 0) for name, value in (c | m).items() if name != "c_prev"}
    out["c_prev_ts"] = float(fx.to_epoch_us(c["c_prev"])) if c["c_prev"] is not None else -1.0
    return out


def features_online(tx: PendingTransaction, *, label_delay_days: int) -> np.ndarray:
    """One feature row, shape ``[1, n_features]``."""
    aggregates = aggregates_online(tx, label_delay_days=label_delay_days)
    return fx.assemble(
        {k: np.array([v]) for k, v in aggregates.items()},
        amount=np.array([tx.amount]),
        ts_us=np.array([fx.to_epoch_us(tx.timestamp)], dtype=np.int64),
        channel=np.array([tx.channel]),
    )


HISTORY_FIELDS = (
    "id",
    "owner_id",
    "customer_id",
    "merchant_id",
    "country",
    "channel",
    "timestamp",
    "amount",
    "label",
    "label_time",
)


def frame_from_rows(rows: Iterable[tuple]) -> tuple[fx.Frame, np.ndarray]:
    """Build a ``Frame`` (and the row ids) from tuples in ``HISTORY_FIELDS`` order."""
    ids, customer, merchant, country, channel, ts, amount, known = [], [], [], [], [], [], [], []
    for pk, owner_id, customer_id, merchant_id, ctry, chan, stamp, amt, label, label_time in rows:
        ids.append(pk)
        customer.append(f"{owner_id}\x1f{customer_id}")
        merchant.append(f"{owner_id}\x1f{merchant_id}")
        country.append(ctry)
        channel.append(chan)
        ts.append(fx.to_epoch_us(stamp))
        amount.append(float(amt))
        known.append(fx.to_epoch_us(label_time) if label == Label.FRAUD and label_time is not None else fx.NOT_FRAUD)
    frame = fx.Frame(
        customer=np.array(customer, dtype=object).astype(str),
        merchant=np.array(merchant, dtype=object).astype(str),
        country=np.array(country, dtype=object).astype(str),
        channel=np.array(channel, dtype=object).astype(str),
        ts=np.array(ts, dtype=np.int64),
        amount=np.array(amount, dtype=np.float64),
        fraud_known_at=np.array(known, dtype=np.int64),
    )
    return frame, np.array(ids, dtype=np.int64)


def load_history(queryset: QuerySet[Transaction]) -> tuple[fx.Frame, np.ndarray]:
    """Stream a queryset's rows into a ``Frame`` (ordered by time), with their ids."""
    rows = queryset.order_by("timestamp", "id").values_list(*HISTORY_FIELDS).iterator(chunk_size=20_000)
    return frame_from_rows(rows)
