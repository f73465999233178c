"""Where features meet the database: online aggregates in one SQL statement, and history tables
loaded for offline (vectorised) feature computation. The feature maths lives in
``fraud.features.definitions``; this module only reads."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import connection
from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils.dateparse import parse_datetime

from fraud.features import buckets
from fraud.features import definitions as fx
from fraud.models import Label, Transaction


@dataclass(frozen=True)
class PendingTransaction:
    """The fields of a transaction that features depend on, before it is stored."""

    owner_id: int
    customer_id: str
    merchant_id: str
    country: str
    currency: str
    channel: str
    timestamp: datetime
    amount: float
    card_fingerprint: str = ""  # "" when no card was sent


def _us(delta_us: int) -> timedelta:
    return timedelta(microseconds=delta_us)


@dataclass(frozen=True)
class OnlineQuery:
    """A feature statement: its SQL, its output columns, and its parameters' names in order
    (values from ``_online_params``; "merchant-store" stands for the feature store's own)."""

    sql: str
    columns: list[str]
    params: list[str]


# The distinct countries (currencies) of the customer's payments, as "FR,DE" (codes hold no comma).
_DISTINCT = {
    "postgresql": "string_agg(DISTINCT {column}, ',') FILTER (WHERE {column} <> '' AND timestamp >= %s)",
    "sqlite": "group_concat(DISTINCT {column}) FILTER (WHERE {column} <> '' AND timestamp >= %s)",
}
COUNTRY_DAYS = 30  # the window of the rule field customer_countries_30d


def _build_online_sql(vendor: str) -> dict[str, OnlineQuery]:
    """The online aggregates as ONE SQL statement (customer and merchant sub-aggregates, each
    exactly one row, cross-joined), built once at import from the window definitions.

    Raw SQL because compiling a dozen filtered aggregates through the ORM cost ~1.5 ms per
    request, several times the queries themselves. Returns, for one database, the statement
    reading the merchant's raw history ("history") and the one reading its feature-store buckets
    (``fraud.features.buckets``) instead ("store"). Both also return the customer's countries of
    the last 30 days, for rules that read them (a second round trip before), and currencies, which
    the reasons name ("all 37 earlier payments in 30 days were in EUR"): aggregates over rows the
    statement reads anyway, where a query of their own would be another round trip on every
    scored payment. The customer's covering index carries the currency so that the customer part
    stays an index-only scan (without it: 0.02 ms → 0.15 ms for 79 rows)."""
    table = Transaction._meta.db_table
    cust_cols, cust_params, names = [], [], []
    for w in fx.CUSTOMER_COUNT_WINDOWS:
        cust_cols.append("COUNT(*) FILTER (WHERE timestamp >= %s)")
        cust_params.append(f"t-{w}")
        names.append(f"c_n_{w}")
    for w in fx.CUSTOMER_SUM_WINDOWS:
        cust_cols.append("COALESCE(SUM(amount) FILTER (WHERE timestamp >= %s), 0)")
        cust_params.append(f"t-{w}")
        names.append(f"c_sum_{w}")
    cust_cols += [
        "COALESCE(SUM(amount * amount), 0)",
        "COALESCE(MAX(amount), 0)",
        "MAX(timestamp)",
        "COUNT(*) FILTER (WHERE merchant_id = %s AND timestamp >= %s)",
        "COUNT(*) FILTER (WHERE country = %s AND timestamp >= %s)",
        "COUNT(*) FILTER (WHERE currency = %s AND timestamp >= %s)",
        _DISTINCT[vendor].format(column="country"),
        _DISTINCT[vendor].format(column="currency"),
    ]
    cust_params += ["merchant", "t-novelty", "country", "t-novelty", "currency", "t-novelty"]
    cust_params += ["t-countries", "t-novelty"]  # the distinct countries, then currencies
    names += ["c_sumsq_30d", "c_max_30d", "c_prev", "cm_n_30d", "cc_n_30d", "cu_n_30d", "c_countries", "c_currencies"]
    # S608: every fragment is a constant of this module; all values travel as parameters.
    customer_sql = (
        f"SELECT {', '.join(cust_cols)} FROM {table} "  # noqa: S608  # nosec B608
        "WHERE owner_id = %s AND customer_id = %s AND timestamp >= %s AND timestamp < %s"
    )
    cust_params += ["owner", "customer", "t-customer-from", "t"]

    merch_cols, merch_params = [], []
    for w in fx.MERCHANT_WINDOWS:
        merch_cols.append("COUNT(*) FILTER (WHERE timestamp >= %s)")
        merch_params.append(f"t-{w}")
        names.append(f"m_n_{w}")
    for w in fx.MERCHANT_RISK_WINDOWS:
        merch_cols.append("COUNT(*) FILTER (WHERE timestamp >= %s AND timestamp < %s)")
        merch_params += [f"t-delay-{w}", "t-delay"]
        names.append(f"m_dn_{w}")
    for w in fx.MERCHANT_RISK_WINDOWS:
        merch_cols.append(
            "COUNT(*) FILTER (WHERE timestamp >= %s AND timestamp < %s AND label = %s AND label_time <= %s)"
        )
        merch_params += [f"t-delay-{w}", "t-delay", "fraud", "t"]
        names.append(f"m_fraud_{w}")
    merchant_sql = (
        f"SELECT {', '.join(merch_cols)} FROM {table} "  # noqa: S608  # nosec B608
        "WHERE owner_id = %s AND merchant_id = %s AND timestamp >= %s AND timestamp < %s"
    )
    merch_params += ["owner", "merchant", "t-merchant-from", "t"]
    card_cols, card_params = [], []
    for w in fx.CARD_WINDOWS:
        card_cols.append("COUNT(*) FILTER (WHERE timestamp >= %s)")
        card_params.append(f"t-card-{w}")
        names.append(f"k_n_{w}")
    # Without a card the fingerprint is "": the `<> ''` condition then matches nothing.
    card_sql = (
        f"SELECT {', '.join(card_cols)} FROM {table} "  # noqa: S608  # nosec B608
        "WHERE owner_id = %s AND card_fingerprint = %s AND card_fingerprint <> '' AND timestamp >= %s AND timestamp < %s"
    )
    card_params += ["owner", "card", "t-card-from", "t"]
    sql = f"SELECT * FROM ({customer_sql}) AS c CROSS JOIN ({merchant_sql}) AS m CROSS JOIN ({card_sql}) AS k"  # noqa: S608  # nosec B608
    customer_names = [n for n in names if not n.startswith(("m_", "k_"))]
    card_names = [n for n in names if n.startswith("k_")]
    return {
        "history": OnlineQuery(sql, names, cust_params + merch_params + card_params),
        "store": OnlineQuery(
            f"SELECT * FROM ({customer_sql}) AS c CROSS JOIN ({buckets.merchant_sql(vendor)}) AS m "  # noqa: S608  # nosec B608
            f"CROSS JOIN ({card_sql}) AS k",
            [*customer_names, *buckets.MERCHANT_COLUMNS, *card_names],
            [*cust_params, "merchant-store", *card_params],
        ),
    }


ONLINE_QUERIES = {vendor: _build_online_sql(vendor) for vendor in _DISTINCT}


def _cache_statement_conversions() -> None:
    """psycopg rewrites a statement's placeholders for the server once per distinct statement and
    caches the result, but only for statements up to 4 KB and 50 parameters: the feature
    statement (15 KB with the store) was rewritten on every request, 4 % of a web worker's CPU
    (py-spy, docs/performance.md). The limits are raised to what our statements need (psycopg
    is pinned; a test checks the statement is served from the cache)."""
    from psycopg import _queries

    statements = list(ONLINE_QUERIES["postgresql"].values())
    _queries.MAX_CACHED_STATEMENT_LENGTH = max(
        _queries.MAX_CACHED_STATEMENT_LENGTH, *(len(q.sql.encode()) for q in statements)
    )
    _queries.MAX_CACHED_STATEMENT_PARAMS = max(
        _queries.MAX_CACHED_STATEMENT_PARAMS, *(q.sql.count("%s") for q in statements)
    )


_cache_statement_conversions()


def _online_params(tx: PendingTransaction, label_delay_days: int, names: list[str]) -> list[object]:
    t = tx.timestamp
    delay = _us(label_delay_days * fx.DAY)
    widest_customer = max(fx.CUSTOMER_COUNT_WINDOWS.values())
    widest_merchant = max(fx.MERCHANT_RISK_WINDOWS.values())
    adapt = connection.ops.adapt_datetimefield_value
    values: dict[str, object] = {
        "t": t,
        "t-novelty": t - _us(fx.NOVELTY_WINDOW),
        "t-countries": t - timedelta(days=COUNTRY_DAYS),
        "t-customer-from": t - _us(widest_customer),
        "t-merchant-from": min(t - _us(widest_merchant), t - delay - _us(widest_merchant)),
        "t-delay": t - delay,
        "owner": tx.owner_id,
        "customer": tx.customer_id,
        "merchant": tx.merchant_id,
        "country": tx.country,
        "currency": tx.currency,
        "fraud": Label.FRAUD.value,
        "card": tx.card_fingerprint,
        "t-card-from": t - _us(max(fx.CARD_WINDOWS.values())),
    }
    values |= {f"t-card-{w}": t - _us(width) for w, width in fx.CARD_WINDOWS.items()}
    values |= {f"t-{w}": t - _us(width) for w, width in fx.CUSTOMER_COUNT_WINDOWS.items()}
    values |= {f"t-{w}": t - _us(width) for w, width in fx.MERCHANT_WINDOWS.items()}
    values |= {f"t-delay-{w}": t - delay - _us(width) for w, width in fx.MERCHANT_RISK_WINDOWS.items()}
    out: list[object] = []
    for name in names:
        if name == "merchant-store":
            out += buckets.merchant_params(
                connection.vendor, owner_id=tx.owner_id, merchant=tx.merchant_id, t=t, label_delay_days=label_delay_days
            )
        else:
            value = values[name]
            out.append(adapt(value) if isinstance(value, datetime) else value)
    return out


def _as_datetime(value: object) -> datetime | None:
    """MAX(timestamp) comes back as a datetime (PostgreSQL) or as text (SQLite, stored UTC)."""
    if value is None or isinstance(value, datetime):
        return value
    parsed = parse_datetime(str(value))
    return parsed if parsed is None or parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _codes_set(joined: str | None) -> frozenset[str]:
    return frozenset(joined.split(",")) if joined else frozenset()


def _read_online(
    tx: PendingTransaction, label_delay_days: int
) -> tuple[dict[str, float], frozenset[str], frozenset[str]]:
    """The aggregates of ``fraud.features.definitions`` for one transaction and its customer's
    countries and currencies of the last 30 days, in one round trip: the customer's and the
    card's history and the merchant's (raw history or the feature store, as
    ``FRAUD_FEATURE_READ`` says), all strictly before its time."""
    query = ONLINE_QUERIES[connection.vendor][settings.FRAUD_FEATURE_READ]
    with connection.cursor() as cursor:
        cursor.execute(query.sql, _online_params(tx, label_delay_days, query.params))
        row = dict(zip(query.columns, cursor.fetchone(), strict=True))
    prev = _as_datetime(row.pop("c_prev"))
    countries, currencies = _codes_set(row.pop("c_countries")), _codes_set(row.pop("c_currencies"))
    out = {name: float(value or 0) for name, value in row.items()}
    out["c_prev_ts"] = float(fx.to_epoch_us(prev)) if prev is not None else -1.0
    return out, countries, currencies


def aggregates_online(tx: PendingTransaction, *, label_delay_days: int) -> dict[str, float]:
    return _read_online(tx, label_delay_days)[0]


# Raw SQL for the same reason as the feature statement: compiling the ORM query cost ~1.4 ms, the query
# itself a fraction of that (it reads the feature query's covering index).
COUNTRIES_SQL = (
    f"SELECT DISTINCT country FROM {Transaction._meta.db_table} "  # noqa: S608  # nosec B608 - our own table name
    "WHERE owner_id = %s AND customer_id = %s AND timestamp >= %s AND timestamp < %s AND country <> ''"
)


def customer_countries(tx: PendingTransaction, *, days: int) -> frozenset[str]:
    """The countries of the customer's payments in the ``days`` before the transaction (for rules
    such as ``country not in customer_countries_30d``); one indexed query, run only when a live
    rule reads it."""
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(
            COUNTRIES_SQL,
            [tx.owner_id, tx.customer_id, adapt(tx.timestamp - timedelta(days=days)), adapt(tx.timestamp)],
        )
        return frozenset(row[0] for row in cursor.fetchall())


@dataclass(frozen=True)
class OnlineRead:
    row: np.ndarray  # one feature row, shape [1, n_features]
    customer_countries_30d: frozenset[str]
    customer_currencies_30d: frozenset[str]


def read_online(tx: PendingTransaction, *, label_delay_days: int) -> OnlineRead:
    """One transaction's feature row and its customer's recent countries and currencies, in one
    round trip."""
    aggregates, countries, currencies = _read_online(tx, label_delay_days)
    row = fx.assemble(
        {k: np.array([v]) for k, v in aggregates.items()},
        amount=np.array([tx.amount]),
        ts_us=np.array([fx.to_epoch_us(tx.timestamp)], dtype=np.int64),
        channel=np.array([tx.channel]),
        has_card=np.array([tx.card_fingerprint != ""]),
    )
    return OnlineRead(row, countries, currencies)


def features_online(tx: PendingTransaction, *, label_delay_days: int) -> np.ndarray:
    """One feature row, shape ``[1, n_features]``."""
    return read_online(tx, label_delay_days=label_delay_days).row


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
    "card_fingerprint",
    "currency",
)


def _frame(
    ids: Sequence, customer: Sequence, merchant: Sequence, country: Sequence, channel: Sequence,
    ts: Sequence, amount: Sequence, known: Sequence, card: Sequence, currency: Sequence,
) -> tuple[fx.Frame, np.ndarray]:  # fmt: skip
    """Columns (keys already owner-scoped, times in epoch microseconds) as a Frame and ids."""
    frame = fx.Frame(
        customer=np.array(customer, dtype=object).astype(str),
        merchant=np.array(merchant, dtype=object).astype(str),
        country=np.array(country, dtype=object).astype(str),
        currency=np.array(currency, dtype=object).astype(str),
        channel=np.array(channel, dtype=object).astype(str),
        ts=np.array(ts, dtype=np.int64),
        amount=np.array(amount, dtype=np.float64),
        fraud_known_at=np.array(known, dtype=np.int64),
        card=np.array(card, dtype=object).astype(str),
    )
    return frame, np.array(ids, dtype=np.int64)


def frame_from_rows(rows: Iterable[tuple]) -> tuple[fx.Frame, np.ndarray]:
    """Build a ``Frame`` (and the row ids) from tuples in ``HISTORY_FIELDS`` order."""
    ids, customer, merchant, country, channel, ts, amount, known, card, currency = ([] for _ in range(10))
    for pk, owner_id, customer_id, merchant_id, ctry, chan, stamp, amt, label, label_time, fingerprint, cur in rows:
        ids.append(pk)
        currency.append(cur)
        card.append(f"{owner_id}\x1f{fingerprint}" if fingerprint else "")
        customer.append(f"{owner_id}\x1f{customer_id}")
        merchant.append(f"{owner_id}\x1f{merchant_id}")
        country.append(ctry)
        channel.append(chan)
        ts.append(fx.to_epoch_us(stamp))
        amount.append(float(amt))
        known.append(fx.to_epoch_us(label_time) if label == Label.FRAUD and label_time is not None else fx.NOT_FRAUD)
    return _frame(ids, customer, merchant, country, channel, ts, amount, known, card, currency)


def load_history(queryset: QuerySet[Transaction]) -> tuple[fx.Frame, np.ndarray]:
    """Stream a queryset's rows into a ``Frame`` (ordered by time), with their ids."""
    if connection.vendor == "postgresql":
        return _load_history_postgres(queryset)
    rows = queryset.order_by("timestamp", "id").values_list(*HISTORY_FIELDS).iterator(chunk_size=20_000)
    return frame_from_rows(rows)


def _epoch_us(column: str) -> RawSQL:
    table = Transaction._meta.db_table
    return RawSQL(f'(EXTRACT(EPOCH FROM "{table}"."{column}") * 1000000)::bigint', [])  # noqa: S611  # nosec B611


def _load_history_postgres(queryset: QuerySet[Transaction]) -> tuple[fx.Frame, np.ndarray]:
    """The same Frame, with PostgreSQL doing the conversions: times as epoch microseconds and the
    entity keys built in SQL, fetched in one go. Turning 150,000 rows' timestamps into Python
    datetimes and back took most of a 1,000-item batch call (1.3 s of 2.0 s)."""
    table = Transaction._meta.db_table
    sep = "chr(31)"
    query = (
        queryset.order_by("timestamp", "id")
        .annotate(
            ts_us=_epoch_us("timestamp"),
            known_us=RawSQL(  # noqa: S611  # nosec B611
                f'CASE WHEN "{table}"."label" = %s AND "{table}"."label_time" IS NOT NULL '
                f'THEN (EXTRACT(EPOCH FROM "{table}"."label_time") * 1000000)::bigint ELSE %s END',
                [Label.FRAUD.value, int(fx.NOT_FRAUD)],
            ),
            customer_key=RawSQL(f'"{table}"."owner_id" || {sep} || "{table}"."customer_id"', []),  # noqa: S611  # nosec B611
            merchant_key=RawSQL(f'"{table}"."owner_id" || {sep} || "{table}"."merchant_id"', []),  # noqa: S611  # nosec B611
            card_key=RawSQL(  # noqa: S611  # nosec B611
                f"CASE WHEN \"{table}\".\"card_fingerprint\" = '' THEN '' "
                f'ELSE "{table}"."owner_id" || {sep} || "{table}"."card_fingerprint" END',
                [],
            ),
            amount_f=RawSQL(f'"{table}"."amount"::float8', []),  # noqa: S611  # nosec B611
        )
        .values_list(
            "id",
            "customer_key",
            "merchant_key",
            "country",
            "channel",
            "ts_us",
            "amount_f",
            "known_us",
            "card_key",
            "currency",
        )
    )
    # Every column is already what the Frame takes: fetched in one go, without the queryset's
    # per-row iteration (a sixth of the load's time).
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return frame_from_rows([])
    ids, customer, merchant, country, channel, ts, amount, known, card, currency = zip(*rows, strict=True)
    return _frame(ids, customer, merchant, country, channel, ts, amount, known, card, currency)


def history_needed(
    *, owner_id: int, customers: set[str], merchants: set[str], cards: set[str], t_min: datetime, label_delay_days: int
) -> Q:
    """The stored rows that features of transactions from ``t_min`` on can read: their
    customers' last 30 days, their merchants' last 30 days plus the label delay, and their
    cards' last day. (An upper time bound is the caller's.)"""
    return Q(owner_id=owner_id) & (
        Q(customer_id__in=customers, timestamp__gte=t_min - _us(max(fx.CUSTOMER_COUNT_WINDOWS.values())))
        | Q(
            merchant_id__in=merchants,
            timestamp__gte=t_min - _us(label_delay_days * fx.DAY + max(fx.MERCHANT_RISK_WINDOWS.values())),
        )
        | Q(card_fingerprint__in={c for c in cards if c}, timestamp__gte=t_min - _us(max(fx.CARD_WINDOWS.values())))
    )


def _new_frame(owner_id: int, items: list[PendingTransaction]) -> fx.Frame:
    frame, _ = frame_from_rows(
        (0, owner_id, i.customer_id, i.merchant_id, i.country, i.channel, i.timestamp, i.amount, "", None,
         i.card_fingerprint, i.currency)
        for i in items
    )  # fmt: skip
    return frame


def features_for_new(owner_id: int, items: list[PendingTransaction], *, label_delay_days: int) -> np.ndarray:
    """Feature rows for many not-yet-stored transactions of one owner, vectorised: the stored
    history they need, then the offline definitions over it and the new rows themselves. A new
    row sees the stored history and the other new rows strictly before its time: exactly what
    training sees (the offline path is tested equal to the online one).

    The merchants' volumes come from the feature store (PostgreSQL, ``FRAUD_FEATURE_READ=store``:
    ``_features_with_store``) instead of their raw rows, which were most of what a batch read;
    otherwise one query loads every row the features need (``history_needed``)."""
    if not items:
        return np.zeros((0, len(fx.FEATURE_NAMES)), dtype=np.float32)
    new = _new_frame(owner_id, items)
    t_min, t_max = min(i.timestamp for i in items), max(i.timestamp for i in items)
    if settings.FRAUD_FEATURE_READ == "store" and connection.vendor == "postgresql":
        return _features_with_store(owner_id, items, new, t_min, t_max, label_delay_days)
    needed = history_needed(
        owner_id=owner_id,
        customers={i.customer_id for i in items},
        merchants={i.merchant_id for i in items},
        cards={i.card_fingerprint for i in items},
        t_min=t_min,
        label_delay_days=label_delay_days,
    )
    stored, _ = load_history(Transaction.objects.filter(needed, timestamp__lt=t_max))
    return fx.features_offline(fx.Frame.concat(stored, new), new, label_delay_days=label_delay_days)


def _features_with_store(
    owner_id: int, items: list[PendingTransaction], new: fx.Frame, t_min: datetime, t_max: datetime,
    label_delay_days: int,
) -> np.ndarray:  # fmt: skip
    """``features_for_new`` with the merchants' volumes read from the store: the customers' and
    cards' raw rows (their windows are short and their own), the merchants' fraud rows (few:
    their labels' times matter), and per window the stored volume as the difference of two
    ``buckets.merchant_volume_before`` values, plus the new rows' own (counted offline)."""
    own, _ = load_history(
        Transaction.objects.filter(
            history_needed(
                owner_id=owner_id,
                customers={i.customer_id for i in items},
                merchants=set(),  # their volumes come from the store; their fraud rows below
                cards={i.card_fingerprint for i in items},
                t_min=t_min,
                label_delay_days=label_delay_days,
            ),
            timestamp__lt=t_max,
        )
    )
    delay = label_delay_days * fx.DAY
    fraud, _ = load_history(
        Transaction.objects.filter(
            owner_id=owner_id, merchant_id__in={i.merchant_id for i in items}, label=Label.FRAUD,
            timestamp__gte=t_min - _us(delay + max(fx.MERCHANT_RISK_WINDOWS.values())), timestamp__lt=t_max,
        )
    )  # fmt: skip
    aggregates = fx.customer_aggregates(fx.Frame.concat(own, new), new)
    within = fx.merchant_aggregates(new, new, label_delay_days=label_delay_days)  # the new rows' own volumes
    known = fx.merchant_aggregates(fraud, new, label_delay_days=label_delay_days)  # fraud known by each t
    offsets = sorted({0, delay, *fx.MERCHANT_WINDOWS.values(), *(delay + w for w in fx.MERCHANT_RISK_WINDOWS.values())})
    before = buckets.merchant_volume_before(
        owner_id, [i.merchant_id for i in items] * len(offsets), np.concatenate([new.ts - o for o in offsets])
    )
    volume = dict(zip(offsets, np.split(before, len(offsets)), strict=True))
    for w, width in fx.MERCHANT_WINDOWS.items():
        aggregates[f"m_n_{w}"] = volume[0] - volume[width] + within[f"m_n_{w}"]
    for w, width in fx.MERCHANT_RISK_WINDOWS.items():
        aggregates[f"m_dn_{w}"] = volume[delay] - volume[delay + width] + within[f"m_dn_{w}"]
        aggregates[f"m_fraud_{w}"] = known[f"m_fraud_{w}"]
    return fx.assemble(aggregates, amount=new.amount, ts_us=new.ts, channel=new.channel, has_card=new.card != "")


def features_for_stored(
    rows: QuerySet[Transaction], *, label_delay_days: int, limit: int = 20_000
) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows of stored transactions (at most ``limit``, in time order), computed the
    offline way from the history they need. Returns (ids, features)."""
    targets = list(rows.order_by("timestamp", "id").values_list(*HISTORY_FIELDS)[:limit])
    if not targets:
        return np.zeros(0, dtype=np.int64), np.zeros((0, len(fx.FEATURE_NAMES)), dtype=np.float32)
    t_min, t_max = targets[0][6], targets[-1][6]
    needed = Q()
    for owner_id in {t[1] for t in targets}:
        mine = [t for t in targets if t[1] == owner_id]
        needed |= history_needed(
            owner_id=owner_id,
            customers={t[2] for t in mine},
            merchants={t[3] for t in mine},
            cards={t[10] for t in mine},
            t_min=t_min,
            label_delay_days=label_delay_days,
        )
    history, history_ids = load_history(Transaction.objects.filter(needed, timestamp__lte=t_max))
    wanted = np.isin(history_ids, np.array([t[0] for t in targets], dtype=np.int64))
    target_frame = fx.Frame(**{name: getattr(history, name)[wanted] for name in fx.Frame.__dataclass_fields__})
    return history_ids[wanted], fx.features_offline(history, target_frame, label_delay_days=label_delay_days)


def refresh_statistics() -> None:
    """After a bulk load the planner's statistics are stale (it then misjudges the feature
    queries' index scans); refresh them now rather than waiting for autovacuum."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Transaction._meta.db_table}")
