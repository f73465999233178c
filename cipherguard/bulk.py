"""Bulk inserts through PostgreSQL's COPY.

Django's ``bulk_create`` builds one multi-row INSERT per 1,000 objects, preparing every value in
Python and having PostgreSQL parse it all again: 2.7 s for a 10,000-row batch chunk's
transactions and results, most of the chunk (measured, docs/performance.md). COPY streams the
same rows in one command. Primary keys are taken from the table's sequence first, so the caller
gets objects with ids, as ``bulk_create`` would give. Any constraint violation fails the whole
COPY (inside the caller's transaction), like a failing ``bulk_create``. Other databases (SQLite)
use ``bulk_create``."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.db import connection, connections, models
from django.db.models.base import ModelState
from django.db.models.signals import post_init, post_save, pre_init, pre_save

M = TypeVar("M", bound=models.Model)


# Values of these Python types are stored as they are by fields of these kinds: no conversion to
# call for them (the call per value and field was most of a COPY's Python time).
_STORED_AS_IS: dict[str, tuple[type, ...]] = {
    "CharField": (str,),
    "TextField": (str,),
    "AutoField": (int,),
    "BigAutoField": (int,),
    "ForeignKey": (int,),
    "OneToOneField": (int,),
    "IntegerField": (int,),
    "BigIntegerField": (int,),
    "SmallIntegerField": (int,),
    "PositiveIntegerField": (int,),
    "PositiveSmallIntegerField": (int,),
    "FloatField": (float,),
    "BooleanField": (bool,),
}


@functools.cache
def _row_maker(model: type[models.Model], alias: str, *, with_pk: bool = True) -> Callable[[models.Model], list[Any]]:
    """A function giving an object's row for COPY, as ``get_db_prep_save(pre_save(...))`` would,
    with the conversion skipped where the value already is what the column stores."""
    wrapper = connections[alias]
    steps: list[tuple[str, tuple[type, ...], Callable[[models.Model], Any]]] = []
    for f in model._meta.concrete_fields:
        if f.primary_key and not with_pk:
            continue
        as_is = _STORED_AS_IS.get(f.get_internal_type(), ())
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            as_is = ()  # pre_save sets the value

        def slow(obj: models.Model, f: models.Field = f) -> Any:
            return f.get_db_prep_save(f.pre_save(obj, True), wrapper)

        steps.append((f.attname, (*as_is, type(None)) if as_is else (), slow))

    def row(obj: models.Model) -> list[Any]:
        values = obj.__dict__
        out = []
        for attname, as_is, slow in steps:
            value = values.get(attname)
            out.append(value if value.__class__ in as_is else slow(obj))
        return out

    return row


@functools.cache
def _blank(model: type[models.Model]) -> tuple[dict[str, Any], list[tuple[str, Callable[[], Any]]], dict[str, Any]]:
    """A new object's field values before the caller's: the fixed defaults, the callable ones
    (``default=list``: a fresh value per object), and the foreign keys by name."""
    fixed: dict[str, Any] = {}
    fresh: list[tuple[str, Callable[[], Any]]] = []
    for f in model._meta.concrete_fields:
        if f.has_default() and callable(f.default):
            fresh.append((f.attname, f.default))
        else:
            fixed[f.attname] = f.get_default()
    relations = {f.name: f for f in model._meta.concrete_fields if f.is_relation}
    return fixed, fresh, relations


def new_instance(model: type[M], **values: Any) -> M:
    """``model(**values)`` for objects made by the thousand (a batch chunk's transactions): the
    same field values and related-object cache, without the constructor's generic keyword
    handling, which was a tenth of a chunk's time. The model's init signals have no receivers
    (or the constructor is used)."""
    if pre_init.has_listeners(model) or post_init.has_listeners(model):
        return model(**values)
    fixed, fresh, relations = _blank(model)
    obj = model.__new__(model)
    state = obj._state = ModelState()
    attrs = obj.__dict__
    attrs.update(fixed)
    for attname, default in fresh:
        attrs[attname] = default()
    for name, value in values.items():
        field = relations.get(name)
        if field is None:
            if name not in attrs:
                raise TypeError(f"{model.__name__}() got an unexpected keyword argument {name!r}")
            attrs[name] = value
        else:
            attrs[field.attname] = None if value is None else value.pk
            state.fields_cache[field.name] = value
    return obj


@functools.cache
def _insert_sql(model: type[models.Model], alias: str) -> str:
    quote = connections[alias].ops.quote_name
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    table, columns = quote(model._meta.db_table), ", ".join(quote(f.column) for f in fields)
    values, pk = ", ".join(["%s"] * len(fields)), quote(model._meta.pk.column)
    # S608: quoted names of our own model; all values travel as parameters.
    return f"INSERT INTO {table} ({columns}) VALUES ({values}) RETURNING {pk}"  # noqa: S608  # nosec B608


def insert_one(obj: models.Model) -> None:
    """``obj.save(force_insert=True)`` for the scoring path: one prepared INSERT, without
    compiling the statement and preparing every value through the ORM per request (a third of
    the insert's time). The model's save signals have no receivers (or ``save`` is used). A
    unique-constraint violation raises Django's IntegrityError, as ``save`` would."""
    model = type(obj)
    if pre_save.has_listeners(model) or post_save.has_listeners(model):
        obj.save(force_insert=True)
        return
    alias = connection.alias
    row = _row_maker(model, alias, with_pk=False)(obj)
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(model, alias), row)
        obj.pk = cursor.fetchone()[0]
    obj._state.adding = False
    obj._state.db = alias


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
    row = _row_maker(model, connection.alias)
    with wrapper.wrap_database_errors, raw.cursor() as cursor, cursor.copy(sql) as copy:
        for obj in objs:
            copy.write_row(row(obj))
    for obj in objs:
        obj._state.adding = False
        obj._state.db = connection.alias
    return objs


def insert_new(model: type[M], objs: Sequence[M]) -> None:
    """Insert ``objs`` (without primary keys), skipping rows that would break a unique
    constraint (an id already stored): what ``bulk_create(ignore_conflicts=True)`` does, without
    Django compiling a 25-column INSERT statement per 1,000 rows, which was most of an import's
    time (13 of 16 s for 50,000 rows). PostgreSQL: COPY into a temporary table, then one
    ``INSERT … SELECT … ON CONFLICT DO NOTHING``. SQLite: ``INSERT OR IGNORE`` with executemany."""
    if not objs:
        return
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    wrapper = connections[connection.alias]
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    columns = ", ".join(quote(f.column) for f in fields)
    make_row = _row_maker(model, connection.alias, with_pk=False)
    rows = (make_row(obj) for obj in objs)
    # S608: table and column names are our own model's, quoted; all values travel as parameters.
    if connection.vendor == "postgresql":
        raw = wrapper.connection
        with wrapper.wrap_database_errors, raw.cursor() as cursor:
            # Only the inserted columns, no constraints or defaults (a default would draw ids).
            cursor.execute("DROP TABLE IF EXISTS pg_temp._insert_new")
            cursor.execute(f"CREATE TEMPORARY TABLE _insert_new AS SELECT {columns} FROM {table} WITH NO DATA")  # noqa: S608  # nosec B608
            with cursor.copy(f"COPY _insert_new ({columns}) FROM STDIN") as copy:  # nosec B608
                for row in rows:
                    copy.write_row(row)
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT {columns} FROM _insert_new ON CONFLICT DO NOTHING"  # noqa: S608  # nosec B608
            )
            cursor.execute("DROP TABLE pg_temp._insert_new")
        return
    if connection.vendor == "sqlite":
        # Many rows per statement (one statement per row was slower than Django's batches), as
        # many as SQLite's limit on parameters allows. On the driver's own cursor, as COPY is on
        # PostgreSQL: with DEBUG on, Django's cursor would quote every parameter into its query
        # log, which took longer than the insert itself.
        wrapper.ensure_connection()
        raw = wrapper.connection
        limit = raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        per_statement = max(1, min(500, limit // len(fields)))
        one = "(" + ", ".join(["?"] * len(fields)) + ")"
        pending = list(rows)
        with wrapper.wrap_database_errors:
            cursor = raw.cursor()
            try:
                for start in range(0, len(pending), per_statement):
                    chunk = pending[start : start + per_statement]
                    values = ", ".join([one] * len(chunk))
                    cursor.execute(
                        f"INSERT OR IGNORE INTO {table} ({columns}) VALUES {values}",  # noqa: S608  # nosec B608
                        [value for row in chunk for value in row],
                    )
            finally:
                cursor.close()
        return
    model.objects.bulk_create(objs, batch_size=1000, ignore_conflicts=True)
