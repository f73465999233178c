"""Bulk inserts through PostgreSQL's COPY.

Django's ``bulk_create`` builds one multi-row INSERT per 1,000 objects, preparing every value in
Python and having PostgreSQL parse it all again: 2.7 s for a 10,000-row batch chunk's
transactions and results, most of the chunk (measured, docs/performance.md). COPY streams the
same rows in one command. Primary keys are taken from the table's sequence first, so the caller
gets objects with ids, as ``bulk_create`` would give. Any constraint violation fails the whole
COPY (inside the caller's transaction), like a failing ``bulk_create``. Other databases (SQLite)
use ``bulk_create``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from django.db import connection, connections, models

M = TypeVar("M", bound=models.Model)


def copy_insert(model: type[M], objs: Sequence[M]) -> Sequence[M]:
    if not objs:
        return objs
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objs, batch_size=1000)
        return objs
    meta = model._meta
    table = connection.ops.quote_name(meta.db_table)
    fields = list(meta.concrete_fields)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [meta.db_table, meta.pk.column, len(objs)],
        )
        ids = [row[0] for row in cursor.fetchall()]
    for obj, pk in zip(objs, ids, strict=True):
        obj.pk = pk
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    # The wrapper itself, not the `connection` proxy: a proxy lookup per value cost 0.5 s per
    # 10,000 rows.
    wrapper = connections[connection.alias]
    raw = wrapper.connection
    # Django's own error classes (IntegrityError on a duplicate), as for any query of ours.
    sql = f"COPY {table} ({columns}) FROM STDIN"  # noqa: S608  # nosec B608 - quoted names of our own model
    with wrapper.wrap_database_errors, raw.cursor() as cursor, cursor.copy(sql) as copy:
        for obj in objs:
            copy.write_row([f.get_db_prep_save(f.pre_save(obj, True), wrapper) for f in fields])
    for obj in objs:
        obj._state.adding = False
        obj._state.db = connection.alias
    return objs
