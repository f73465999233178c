# ruff: noqa: S608 - every statement here is assembled from this module's constants (table, column
# and kind names); values always travel as parameters.
"""The online feature store: each merchant's transactions aggregated in hour and day buckets
(``fraud.models.FeatureBucket``: count, amount sum, sum of squares and maximum, latest time, known
fraud), kept by database triggers in the same transaction as every write to the transaction table,
and read by the online feature statement when ``FRAUD_FEATURE_READ=store``.

Triggers, not application code, because every writer must keep the store exact: the scoring and
batch paths, imports through COPY, label updates through ``QuerySet.update``, retention deletes,
a migration's data fix, an operator's psql. What the database does for each write:

- INSERT (PostgreSQL: once per statement, from its transition table; SQLite: per row): the new
  rows' aggregates are added to their buckets (upsert), in key order so that concurrent inserts
  lock bucket rows in one order and cannot deadlock each other.
- UPDATE of a label alone: the known-fraud count moves by the difference (its bucket rows locked
  in the same key order first).
- UPDATE of anything a bucket reads (owner, merchant, time, amount, ...) and DELETE: the affected
  buckets are recomputed from the rows that remain (a maximum cannot be un-added). Transactions
  are immutable in the application, so this is the retention purge's path, not the request path.

``rebuild`` recomputes the whole store from the transaction table; ``differences`` compares the
live store with that recomputation (the test that they are equal, and ``manage.py feature_store
check``). The trigger and rebuild code is generic over ``ENTITIES``; only merchants are bucketed
(why: "Reading" below).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import numpy as np
from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper

from fraud.features import definitions as fx

TX = "fraud_transaction"
BUCKETS = "fraud_feature_bucket"
PK = ("owner_id", "kind", "key", "span", "start")
VALUES = ("n", "amount_sum", "amount_sumsq", "amount_max", "last_ts", "fraud_n")

# (kind, the transaction column that is the bucket's key, span)
ENTITIES: tuple[tuple[str, str, str], ...] = (("m", "merchant_id", "h"), ("m", "merchant_id", "d"))
# The columns whose change moves a transaction between buckets or changes a bucket's sums.
CORE = ("owner_id", *dict.fromkeys(column for _, column, _ in ENTITIES), "timestamp", "amount")
FRAUD_KNOWN = "(r.label = 'fraud' AND r.label_time IS NOT NULL)"


# ---- PostgreSQL ---------------------------------------------------------------------------------

_PG_ENTITY_VALUES = ", ".join(f"('{kind}', r.{column}, '{span}')" for kind, column, span in ENTITIES)


def _pg_aggregate(rows: str) -> str:
    """The buckets of a set of transaction rows (a table or transition table, aliased r)."""
    return (
        "SELECT r.owner_id, e.kind, e.key, e.span, "  # nosec B608 - this module's constants; values are parameters
        "date_trunc(CASE e.span WHEN 'h' THEN 'hour' ELSE 'day' END, r.timestamp, 'UTC') AS start, "
        "count(*) AS n, sum(r.amount) AS amount_sum, sum(r.amount * r.amount) AS amount_sumsq, "
        "max(r.amount) AS amount_max, max(r.timestamp) AS last_ts, "
        f"count(*) FILTER (WHERE {FRAUD_KNOWN}) AS fraud_n "
        f"FROM {rows} r CROSS JOIN LATERAL (VALUES {_PG_ENTITY_VALUES}) AS e(kind, key, span) "
        "GROUP BY 1, 2, 3, 4, 5"
    )


_PG_UPSERT = (
    f"INSERT INTO {BUCKETS} AS b ({', '.join(PK + VALUES)}) "  # nosec B608 - this module's constants; values are parameters
    "{select} ORDER BY 1, 2, 3, 4, 5 "
    f"ON CONFLICT ({', '.join(PK)}) DO UPDATE SET "
    "n = b.n + EXCLUDED.n, amount_sum = b.amount_sum + EXCLUDED.amount_sum, "
    "amount_sumsq = b.amount_sumsq + EXCLUDED.amount_sumsq, "
    "amount_max = GREATEST(b.amount_max, EXCLUDED.amount_max), last_ts = GREATEST(b.last_ts, EXCLUDED.last_ts), "
    "fraud_n = b.fraud_n + EXCLUDED.fraud_n"
)

_PG_CORE_CHANGED = " OR ".join(f"o.{c} IS DISTINCT FROM n.{c}" for c in CORE)
_PG_FRAUD_CHANGED = "((o.label = 'fraud' AND o.label_time IS NOT NULL) IS DISTINCT FROM (n.label = 'fraud' AND n.label_time IS NOT NULL))"


def _pg_lock(keys: str) -> str:
    """Lock the listed bucket rows in key order, the order inserts take them in: a statement that
    then changes them in whatever order its plan gives cannot deadlock with another writer."""
    pk = ", ".join(f"b.{c}" for c in PK)
    return (
        f"PERFORM 1 FROM {BUCKETS} b WHERE ({pk}) IN (SELECT {', '.join(PK)} FROM ({keys}) k) ORDER BY {pk} FOR UPDATE"  # nosec B608 - this module's constants; values are parameters
    )


def _pg_recompute(affected: str) -> list[str]:
    """Delete the buckets that ``affected`` (a SELECT of bucket keys) lists, and insert them again
    as recomputed from the transaction table: for each, the whole day of its entity's rows, read
    through that entity's index, aggregated, and kept where listed."""
    statements = [
        _pg_lock(affected),
        f"DELETE FROM {BUCKETS} b USING ({affected}) a WHERE " + " AND ".join(f"b.{c} = a.{c}" for c in PK),  # nosec B608 - this module's constants; values are parameters
    ]
    for column in dict.fromkeys(column for _, column, _ in ENTITIES):
        kinds = ", ".join(f"'{k}'" for k in sorted({kind for kind, col, _ in ENTITIES if col == column}))
        statements.append(
            f"INSERT INTO {BUCKETS} ({', '.join(PK + VALUES)}) "  # nosec B608 - this module's constants; values are parameters
            "SELECT agg.* FROM (SELECT DISTINCT a.owner_id, a.key AS head, "
            f"date_trunc('day', a.start, 'UTC') AS day FROM ({affected}) a WHERE a.kind IN ({kinds})) AS w "
            "CROSS JOIN LATERAL ("
            + _pg_aggregate(
                f"(SELECT * FROM {TX} t WHERE t.owner_id = w.owner_id AND t.{column} = w.head "  # nosec B608 - this module's constants; values are parameters
                "AND t.timestamp >= w.day AND t.timestamp < w.day + interval '1 day')"
            )
            + f") AS agg WHERE agg.kind IN ({kinds}) "  # the same rows feed other kinds' buckets only in part  # nosec B608 - this module's constants; values are parameters
            f"AND ({', '.join('agg.' + c for c in PK)}) IN (SELECT {', '.join(PK)} FROM ({affected}) a2) "
            "ORDER BY 1, 2, 3, 4, 5"
        )
    return statements


def _pg_keys(rows: str) -> str:
    return f"SELECT DISTINCT {', '.join(PK)} FROM ({_pg_aggregate(rows)}) keys"  # nosec B608 - this module's constants; values are parameters


_PG_MOVED_OLD = f"(SELECT o.* FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE {_PG_CORE_CHANGED})"  # nosec B608 - this module's constants; values are parameters
_PG_MOVED_NEW = f"(SELECT n.* FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE {_PG_CORE_CHANGED})"  # nosec B608 - this module's constants; values are parameters
_PG_MOVED = f"{_pg_keys(_PG_MOVED_OLD)} UNION {_pg_keys(_PG_MOVED_NEW)}"

_PG_LABEL_DELTAS = (
    "SELECT r.owner_id, e.kind, e.key, e.span, "  # nosec B608 - this module's constants; values are parameters
    "date_trunc(CASE e.span WHEN 'h' THEN 'hour' ELSE 'day' END, r.timestamp, 'UTC') AS start, sum(r.delta) AS delta "
    "FROM (SELECT n.*, CASE WHEN n.label = 'fraud' AND n.label_time IS NOT NULL THEN 1 ELSE -1 END AS delta "
    f"FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE NOT ({_PG_CORE_CHANGED}) AND {_PG_FRAUD_CHANGED}) r "
    f"CROSS JOIN LATERAL (VALUES {_PG_ENTITY_VALUES}) AS e(kind, key, span) GROUP BY 1, 2, 3, 4, 5"
)
_PG_LABEL_UPDATE = (
    f"UPDATE {BUCKETS} b SET fraud_n = b.fraud_n + d.delta FROM ({_PG_LABEL_DELTAS}) d WHERE "  # nosec B608 - this module's constants; values are parameters
    + " AND ".join(f"b.{c} = d.{c}" for c in PK)
)
_PG_MOVED_ANY = f"SELECT 1 FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE {_PG_CORE_CHANGED}"  # nosec B608 - this module's constants


def _pg_function(name: str, statements: list[str]) -> str:
    """A statement-level trigger function running ``statements`` in order."""
    return f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger AS $$ BEGIN {' '.join(s + ';' for s in statements)} RETURN NULL; END $$ LANGUAGE plpgsql"


_PG_FUNCTIONS = [
    _pg_function("fraud_feature_buckets_insert", [_PG_UPSERT.format(select=_pg_aggregate("new_rows"))]),
    _pg_function(
        "fraud_feature_buckets_update",
        [
            # A label alone: the known-fraud counts move by the difference.
            _pg_lock(_PG_LABEL_DELTAS),
            _PG_LABEL_UPDATE,
            # Anything a bucket reads: recompute the buckets the old and the new rows were in.
            f"IF EXISTS ({_PG_MOVED_ANY}) THEN {' '.join(s + ';' for s in _pg_recompute(_PG_MOVED))} END IF",
        ],
    ),
    _pg_function("fraud_feature_buckets_delete", _pg_recompute(_pg_keys("old_rows"))),
]
_PG_TRIGGERS = [
    f"CREATE TRIGGER fraud_feature_buckets_insert AFTER INSERT ON {TX} REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION fraud_feature_buckets_insert()",
    f"CREATE TRIGGER fraud_feature_buckets_update AFTER UPDATE ON {TX} REFERENCING OLD TABLE AS old_rows "
    "NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION fraud_feature_buckets_update()",
    f"CREATE TRIGGER fraud_feature_buckets_delete AFTER DELETE ON {TX} REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION fraud_feature_buckets_delete()",
]
_PG_DROP = [
    f"DROP TRIGGER IF EXISTS fraud_feature_buckets_insert ON {TX}",
    f"DROP TRIGGER IF EXISTS fraud_feature_buckets_update ON {TX}",
    f"DROP TRIGGER IF EXISTS fraud_feature_buckets_delete ON {TX}",
]


# ---- SQLite (the embedded default: row triggers, the same buckets) ------------------------------


def _sqlite_start(span: str, ts: str) -> str:
    # Django stores SQLite datetimes as UTC text 'YYYY-MM-DD HH:MM:SS[.ffffff]'.
    return f"strftime('%Y-%m-%d {'%H' if span == 'h' else '00'}:00:00', {ts})"


def _sqlite_add(row: str) -> list[str]:
    statements = []
    for kind, column, span in ENTITIES:
        k = f"{row}.{column}"
        statements.append(
            f"INSERT INTO {BUCKETS} ({', '.join(PK + VALUES)}) "  # nosec B608 - this module's constants; values are parameters
            f"SELECT {row}.owner_id, '{kind}', {k}, '{span}', {_sqlite_start(span, f'{row}.timestamp')}, 1, "
            f"{row}.amount, {row}.amount * {row}.amount, {row}.amount, {row}.timestamp, "
            f"CASE WHEN {row}.label = 'fraud' AND {row}.label_time IS NOT NULL THEN 1 ELSE 0 END "
            "WHERE true "  # SQLite needs a WHERE between an upsert's SELECT and its ON CONFLICT
            f"ON CONFLICT ({', '.join(PK)}) DO UPDATE SET n = n + excluded.n, "
            "amount_sum = amount_sum + excluded.amount_sum, amount_sumsq = amount_sumsq + excluded.amount_sumsq, "
            "amount_max = max(amount_max, excluded.amount_max), last_ts = max(last_ts, excluded.last_ts), "
            "fraud_n = fraud_n + excluded.fraud_n"
        )
    return statements


def _sqlite_recompute(row: str) -> list[str]:
    """Recompute, from the table, the buckets the row ``row`` (OLD or NEW) is in."""
    statements = []
    for kind, column, span in ENTITIES:
        k = f"{row}.{column}"
        start = _sqlite_start(span, f"{row}.timestamp")
        # The bucket's end, in the stored text form (the range reads the entity's index).
        end = f"strftime('%Y-%m-%d %H:%M:%S', {start}, '+1 {'hour' if span == 'h' else 'day'}')"
        where = f"owner_id = {row}.owner_id AND kind = '{kind}' AND key = {k} AND span = '{span}' AND start = {start}"
        statements.append(f"DELETE FROM {BUCKETS} WHERE {where}")  # nosec B608 - this module's constants; values are parameters
        statements.append(
            f"INSERT INTO {BUCKETS} ({', '.join(PK + VALUES)}) "  # nosec B608 - this module's constants; values are parameters
            f"SELECT t.owner_id, '{kind}', t.{column}, '{span}', {start}, count(*), sum(t.amount), "
            "sum(t.amount * t.amount), max(t.amount), max(t.timestamp), "
            "sum(CASE WHEN t.label = 'fraud' AND t.label_time IS NOT NULL THEN 1 ELSE 0 END) "
            f"FROM {TX} t WHERE t.owner_id = {row}.owner_id AND t.{column} = {k} "
            f"AND t.timestamp >= {start} AND t.timestamp < {end} GROUP BY t.owner_id"
        )
    return statements


_SQLITE_CORE_CHANGED = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in CORE)
_SQLITE_TRIGGERS = [
    f"CREATE TRIGGER fraud_feature_buckets_insert AFTER INSERT ON {TX} BEGIN {'; '.join(_sqlite_add('NEW'))}; END",
    f"CREATE TRIGGER fraud_feature_buckets_update AFTER UPDATE ON {TX} "
    f"WHEN {_SQLITE_CORE_CHANGED} OR OLD.label IS NOT NEW.label OR OLD.label_time IS NOT NEW.label_time "
    f"BEGIN {'; '.join(_sqlite_recompute('OLD') + _sqlite_recompute('NEW'))}; END",
    f"CREATE TRIGGER fraud_feature_buckets_delete AFTER DELETE ON {TX} BEGIN {'; '.join(_sqlite_recompute('OLD'))}; END",
]
_SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS fraud_feature_buckets_insert",
    "DROP TRIGGER IF EXISTS fraud_feature_buckets_update",
    "DROP TRIGGER IF EXISTS fraud_feature_buckets_delete",
]


def install_triggers(connection: BaseDatabaseWrapper) -> None:
    if connection.vendor == "postgresql":
        statements = _PG_DROP + _PG_FUNCTIONS + _PG_TRIGGERS
    elif connection.vendor == "sqlite":
        statements = _SQLITE_DROP + _SQLITE_TRIGGERS
    else:
        raise NotImplementedError(f"no feature-store triggers for {connection.vendor}")
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


def drop_triggers(connection: BaseDatabaseWrapper) -> None:
    with connection.cursor() as cursor:
        for sql in _PG_DROP if connection.vendor == "postgresql" else _SQLITE_DROP:
            cursor.execute(sql)


def _rebuild_select(connection: BaseDatabaseWrapper, owner_id: int | None) -> tuple[str, list[object]]:
    where, params = ("WHERE owner_id = %s", [owner_id]) if owner_id is not None else ("", [])
    source = f"(SELECT * FROM {TX} {where})"  # nosec B608 - this module's constants; values are parameters
    if connection.vendor == "postgresql":
        return _pg_aggregate(source), params
    selects = []
    for kind, column, span in ENTITIES:
        selects.append(
            f"SELECT r.owner_id, '{kind}' AS kind, r.{column} AS key, '{span}' AS span, {_sqlite_start(span, 'r.timestamp')} AS start, "  # nosec B608 - this module's constants; values are parameters
            "count(*) AS n, sum(r.amount) AS amount_sum, sum(r.amount * r.amount) AS amount_sumsq, max(r.amount) AS amount_max, "
            "max(r.timestamp) AS last_ts, sum(CASE WHEN r.label = 'fraud' AND r.label_time IS NOT NULL THEN 1 ELSE 0 END) AS fraud_n "
            f"FROM {source} r GROUP BY 1, 2, 3, 4, 5"
        )
    return " UNION ALL ".join(selects), params * len(selects)


def rebuild(connection: BaseDatabaseWrapper, *, owner_id: int | None = None) -> int:
    """Recompute the store (one owner's part, or all of it) from the transaction table, in the
    caller's transaction. Returns the number of bucket rows written."""
    select, params = _rebuild_select(connection, owner_id)
    with connection.cursor() as cursor:
        if owner_id is None:
            cursor.execute(f"DELETE FROM {BUCKETS}")  # nosec B608 - this module's constants; values are parameters
        else:
            cursor.execute(f"DELETE FROM {BUCKETS} WHERE owner_id = %s", [owner_id])  # nosec B608 - this module's constants; values are parameters
        cursor.execute(f"INSERT INTO {BUCKETS} ({', '.join(PK + VALUES)}) {select}", params)
        return cursor.rowcount


def differences(connection: BaseDatabaseWrapper, *, limit: int = 20) -> list[tuple]:
    """Bucket rows where the live store and a recomputation from the table disagree (either side
    missing included), at most ``limit``: empty when the store is exact.

    On PostgreSQL every value is compared exactly (sums are NUMERIC). SQLite sums amounts as
    floating point, in whatever order rows arrived, so there the sums may differ from a
    recomputation in the last bits: they are compared to 1e-9 relative, everything else exactly."""
    select, params = _rebuild_select(connection, None)
    cols = ", ".join(PK + VALUES)
    if connection.vendor == "postgresql":
        sql = (
            f"SELECT 'live', {cols} FROM (SELECT {cols} FROM {BUCKETS} EXCEPT SELECT {cols} FROM ({select}) x) a "  # nosec B608 - this module's constants; values are parameters
            f"UNION ALL SELECT 'table', {cols} FROM (SELECT {cols} FROM ({select}) y EXCEPT SELECT {cols} FROM {BUCKETS}) b "
            f"LIMIT {int(limit)}"
        )
    else:
        join = " AND ".join(f"l.{c} = r.{c}" for c in PK)
        near = " OR ".join(f"abs(l.{c} - r.{c}) > 1e-9 * max(1, abs(r.{c}))" for c in ("amount_sum", "amount_sumsq"))
        exact = " OR ".join(f"l.{c} IS NOT r.{c}" for c in ("n", "amount_max", "last_ts", "fraud_n"))
        sql = (
            f"SELECT 'live', {', '.join('l.' + c for c in PK + VALUES)} FROM {BUCKETS} l LEFT JOIN ({select}) r ON {join} "  # nosec B608 - this module's constants; values are parameters
            f"WHERE r.n IS NULL OR {exact} OR {near} "
            f"UNION ALL SELECT 'table', {', '.join('r.' + c for c in PK + VALUES)} FROM ({select}) r "
            f"LEFT JOIN {BUCKETS} l ON {join} WHERE l.n IS NULL LIMIT {int(limit)}"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, params + params)
        return cursor.fetchall()


# ---- Reading: a merchant's aggregates from its buckets ------------------------------------------
#
# Only merchants are bucketed. A merchant's windows reach 37 days back and a busy one has thousands
# of payments in them; a customer or a card has a few dozen, and their buckets would hold about one
# row per payment (measured on the bench's history: 4x the rows of the raw history), so their
# features keep reading their raw rows (``fraud.features.store``).
#
# A window [A, B) is read as pieces: the raw rows from A to the next hour, hour buckets to the next
# day, day buckets up to B's day, hour buckets up to B's hour, and the raw rows of B's hour before
# B. Each piece is one index range probe; one sub-statement reads every piece of every merchant
# window, and each aggregate sums the pieces of its window. Sums stay exact (NUMERIC). Known fraud
# is "labelled fraud at any time" less the rows in the window labelled after t (a probe of the
# merchant's late labels, usually empty).
#
# On PostgreSQL the pieces' bounds are computed in the statement from t and the label delay, and
# each source (raw rows, hour buckets, day buckets, late labels) is one LATERAL join over them: a
# few plan nodes and four parameters, where one subquery per piece cost more to plan and start
# than its index probe. SQLite has no LATERAL: there each piece is its own SELECT with its bounds
# as parameters.

# An edge is a time relative to t: t - (the label delay if delayed) - width. A point is an edge
# rounded: "x" exactly, "fh"/"ch" down/up to the hour, "fd"/"cd" down/up to the day.
Edge = tuple[bool, int]
Point = tuple[Edge, str]
NOW: Edge = (False, 0)


def _window_pieces(a: Edge, b: Edge) -> list[tuple[str, Point, Point]]:
    """The (source, from, to) pieces of the window [a, b) (at least a day long)."""
    return [
        ("raw", (a, "x"), (a, "ch")),
        ("h", (a, "ch"), (a, "cd")),
        ("d", (a, "cd"), (b, "fd")),
        ("h", (b, "fd"), (b, "fh")),
        ("raw", (b, "fh"), (b, "x")),
    ]


# (aggregate name, the piece column it sums, from-edge, to-edge)
WINDOWS: tuple[tuple[str, str, Edge, Edge], ...] = (
    *((f"m_n_{w}", "n", (False, width), NOW) for w, width in fx.MERCHANT_WINDOWS.items()),
    *((f"m_dn_{w}", "n", (True, width), (True, 0)) for w, width in fx.MERCHANT_RISK_WINDOWS.items()),
    *((f"m_fraud_{w}", "fraud", (True, width), (True, 0)) for w, width in fx.MERCHANT_RISK_WINDOWS.items()),
)
assert min([*fx.MERCHANT_WINDOWS.values(), *fx.MERCHANT_RISK_WINDOWS.values()]) >= fx.DAY  # noqa: S101 - _window_pieces


def _plan() -> tuple[list[tuple[str, Point, Point]], list[list[int]]]:
    """Every distinct piece (source, from, to), and each window's piece numbers."""
    pieces: dict[tuple[str, Point, Point], int] = {}
    of_window = []
    for name, _column, a, b in WINDOWS:
        mine = [pieces.setdefault(piece, len(pieces)) for piece in _window_pieces(a, b)]
        if name.startswith("m_fraud_"):  # less the rows labelled only after t
            mine.append(pieces.setdefault(("late", (a, "x"), (b, "x")), len(pieces)))
        of_window.append(mine)
    return list(pieces), of_window


PIECES, WINDOW_PIECES = _plan()


def _source_select(source: str, ranges: str, *, owner: str, merchant: str, t: str, lateral: bool) -> str:
    """Rows (piece, n, fraud) of one source, given the FROM clause of its ranges r(piece, lo, hi)
    and the SQL for the owner, the merchant and t. ``lateral``: one index probe per range, forced
    (OFFSET 0 keeps the planner from flattening it into a scan of the merchant's every row)."""
    if source == "late":
        table, columns = TX, "r.piece, 0 AS n, -1 AS fraud"
        condition = (
            f"x.owner_id = {owner} AND x.merchant_id = {merchant} AND x.label = 'fraud' AND x.label_time > {t} "
            "AND x.timestamp >= r.lo AND x.timestamp < r.hi"
        )
    elif source == "raw":
        table = TX
        columns = "r.piece, 1 AS n, CASE WHEN x.label = 'fraud' AND x.label_time IS NOT NULL THEN 1 ELSE 0 END AS fraud"
        condition = (
            f"x.owner_id = {owner} AND x.merchant_id = {merchant} AND x.timestamp >= r.lo AND x.timestamp < r.hi"
        )
    else:
        table, columns = BUCKETS, "r.piece, x.n, x.fraud_n AS fraud"
        condition = (
            f"x.owner_id = {owner} AND x.kind = 'm' AND x.key = {merchant} AND x.span = '{source}' "
            "AND x.start >= r.lo AND x.start < r.hi"
        )
    if lateral:
        return f"SELECT {columns} FROM {ranges} CROSS JOIN LATERAL (SELECT * FROM {table} x WHERE {condition} OFFSET 0) AS x"  # nosec B608 - this module's constants; values are parameters
    return f"SELECT {columns} FROM {ranges} JOIN {table} x ON {condition}"  # nosec B608 - this module's constants; values are parameters


def _aggregates_over(rows: str) -> str:
    columns = []
    for (name, column, *_), pieces in zip(WINDOWS, WINDOW_PIECES, strict=True):
        columns.append(
            f"COALESCE(SUM(x.{column}) FILTER (WHERE x.piece IN ({', '.join(map(str, pieces))})), 0) AS {name}"
        )
    return f"SELECT {', '.join(columns)} FROM ({rows}) AS x"  # nosec B608 - this module's constants; values are parameters


def _pg_point(point: Point) -> str:
    (delayed, width), rounding = point
    base = "p.t" + (" - p.d" if delayed else "") + (f" - interval '{width} microseconds'" if width else "")
    if rounding == "x":
        return f"({base})"
    unit = "hour" if rounding in ("fh", "ch") else "day"
    floor = f"date_trunc('{unit}', {base}, 'UTC')"
    if rounding in ("fh", "fd"):
        return floor
    return f"({floor} + CASE WHEN {floor} = ({base}) THEN interval '0' ELSE interval '1 {unit}' END)"


SOURCES = ("raw", "h", "d", "late")


def _pg_merchant_sql() -> str:
    """Parameters, in order: t, the label delay in days, then the owner and the merchant once per
    source (``SOURCES``)."""
    values = ", ".join(
        f"({n}, '{source}', {_pg_point(lo)}, {_pg_point(hi)})" for n, (source, lo, hi) in enumerate(PIECES)
    )
    pieces = (
        "SELECT v.piece, v.source, v.lo, v.hi, p.t FROM "  # nosec B608 - this module's constants; values are parameters
        "(SELECT %s::timestamptz AS t, make_interval(days => %s::int) AS d) AS p "
        f"CROSS JOIN LATERAL (VALUES {values}) AS v(piece, source, lo, hi) WHERE v.lo < v.hi"
    )
    union = " UNION ALL ".join(
        _source_select(source, "pc AS r", owner="%s", merchant="%s", t="r.t", lateral=True)
        + f" WHERE r.source = '{source}'"
        for source in SOURCES
        if source != "late"
    )
    # The merchant's fraud in the delayed windows whose label became known only after t, read
    # once (the merchant's fraud rows of those 30 days, through their partial index: few), then
    # placed in the windows' pieces.
    late = (
        "SELECT r.piece, 0 AS n, -1 AS fraud FROM pc AS r JOIN late AS l ON l.timestamp >= r.lo AND l.timestamp < r.hi "
        "WHERE r.source = 'late'"
    )
    late_rows = (
        f"SELECT x.timestamp FROM {TX} x, (SELECT min(lo) AS lo, max(hi) AS hi, max(t) AS t FROM pc "  # nosec B608 - this module's constants; values are parameters
        "WHERE source = 'late') AS w WHERE x.owner_id = %s AND x.merchant_id = %s AND x.label = 'fraud' "
        "AND x.timestamp >= w.lo AND x.timestamp < w.hi AND x.label_time > w.t"
    )
    return (
        f"WITH pc AS MATERIALIZED ({pieces}), late AS MATERIALIZED ({late_rows}) "
        f"{_aggregates_over(union + ' UNION ALL ' + late)}"
    )


def _sqlite_merchant_sql() -> str:
    """Parameters, in order, per piece: its number, from and to, then the owner and the merchant
    (and t for late labels)."""
    union = " UNION ALL ".join(
        _source_select(
            source, "(SELECT %s AS piece, %s AS lo, %s AS hi) AS r", owner="%s", merchant="%s", t="%s", lateral=False
        )
        for source, _, _ in PIECES
    )
    return _aggregates_over(union)


MERCHANT_COLUMNS = [name for name, *_ in WINDOWS]
PG_MERCHANT_SQL = _pg_merchant_sql()
SQLITE_MERCHANT_SQL = _sqlite_merchant_sql()


def _point_value(point: Point, t: datetime, delay: timedelta) -> datetime:
    (delayed, width), rounding = point
    moment = t - (delay if delayed else timedelta(0)) - timedelta(microseconds=width)
    if rounding == "x":
        return moment
    hour = moment.replace(minute=0, second=0, microsecond=0)
    day = hour.replace(hour=0)
    if rounding == "fh":
        return hour
    if rounding == "ch":
        return hour if hour == moment else hour + timedelta(hours=1)
    if rounding == "fd":
        return day
    return day if day == moment else day + timedelta(days=1)  # "cd"


def merchant_sql(vendor: str) -> str:
    return PG_MERCHANT_SQL if vendor == "postgresql" else SQLITE_MERCHANT_SQL


def merchant_params(vendor: str, *, owner_id: int, merchant: str, t: datetime, label_delay_days: int) -> list[object]:
    """The parameters of ``merchant_sql(vendor)``."""
    t = t.astimezone(UTC)
    if vendor == "postgresql":
        return [t, label_delay_days, *[owner_id, merchant] * len(SOURCES)]
    adapt = connection.ops.adapt_datetimefield_value
    delay = timedelta(days=label_delay_days)
    params: list[object] = []
    for n, (source, lo, hi) in enumerate(PIECES):
        params += [n, adapt(_point_value(lo, t, delay)), adapt(_point_value(hi, t, delay)), owner_id, merchant]
        if source == "late":
            params.append(adapt(t))
    return params


# ---- Reading for many transactions at once (batches, PostgreSQL) --------------------------------

# The merchant's volume before each point, in two statements whatever the number of points: the
# day buckets of the merchants (a running sum in numpy gives whole days), and per point the hour
# buckets of its own day up to its hour and the raw rows of its hour up to it.
_PG_DAYS = (
    f"SELECT key, (EXTRACT(EPOCH FROM start) * 1000000)::bigint, n FROM {BUCKETS} "  # nosec B608 - this module's constants; values are parameters
    "WHERE owner_id = %s AND kind = 'm' AND span = 'd' AND key = ANY(%s) AND start >= %s AND start < %s "
    "ORDER BY key, start"
)
_PG_DAY_TO_POINT = (
    "SELECT q.i, "  # nosec B608 - this module's constants; values are parameters
    f"(SELECT COALESCE(SUM(b.n), 0) FROM {BUCKETS} b WHERE b.owner_id = %s AND b.kind = 'm' AND b.key = q.m "
    "AND b.span = 'h' AND b.start >= date_trunc('day', q.x, 'UTC') AND b.start < date_trunc('hour', q.x, 'UTC')), "
    f"(SELECT count(*) FROM {TX} r WHERE r.owner_id = %s AND r.merchant_id = q.m "
    "AND r.timestamp >= date_trunc('hour', q.x, 'UTC') AND r.timestamp < q.x) "
    "FROM (SELECT i, m, timestamptz 'epoch' + us * interval '1 microsecond' AS x "
    "FROM unnest(%s::text[], %s::bigint[]) WITH ORDINALITY AS u(m, us, i)) AS q"
)


def merchant_volume_before(owner_id: int, merchants: list[str], points_us: np.ndarray) -> np.ndarray:
    """For each (merchant, point in epoch µs): the merchant's stored payments from the start of
    the earliest point's day up to, not including, the point; read from the store (PostgreSQL).
    A window's count is the difference of two such values, exact as a count of raw rows."""
    points_us = np.asarray(points_us, dtype=np.int64)
    if len(points_us) == 0:
        return np.zeros(0, dtype=np.float64)
    pairs = list(zip(merchants, points_us.tolist(), strict=True))
    unique = list(dict.fromkeys(pairs))
    where = {pair: i for i, pair in enumerate(unique)}
    u_merchant = [m for m, _ in unique]
    u_point = np.array([p for _, p in unique], dtype=np.int64)
    first = int(u_point.min())
    with connection.cursor() as cursor:
        cursor.execute(
            _PG_DAYS,
            [owner_id, sorted(set(u_merchant)), fx.from_epoch_us(first - first % fx.DAY),
             fx.from_epoch_us(int(u_point.max()))],
        )  # fmt: skip
        days: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for key, group in itertools.groupby(cursor.fetchall(), key=lambda r: r[0]):  # ordered by key
            mine = list(group)
            days[key] = (np.array([r[1] for r in mine], dtype=np.int64),
                         np.concatenate(([0], np.cumsum([r[2] for r in mine]))))  # fmt: skip
        cursor.execute(_PG_DAY_TO_POINT, [owner_id, owner_id, u_merchant, u_point.tolist()])
        within_day = np.zeros(len(unique), dtype=np.float64)
        for i, hours, raw in cursor.fetchall():  # i: the point's 1-based place in the arrays
            within_day[i - 1] = float(hours) + float(raw)
    whole_days = np.zeros(len(unique), dtype=np.float64)
    day_of = u_point - u_point % fx.DAY
    for i, (merchant, day) in enumerate(zip(u_merchant, day_of.tolist(), strict=True)):
        found = days.get(merchant)
        if found is not None:
            whole_days[i] = found[1][np.searchsorted(found[0], day, side="left")]
    values = whole_days + within_day
    return np.array([values[where[pair]] for pair in pairs], dtype=np.float64)
