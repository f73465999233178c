"""Whole-database backups, and restores that prove they loaded exactly what was backed up.

One file per backup (see ``audit.backup_archive``): a manifest — format version, engine,
creation time, the latest applied migration per app, the row count of every table, the audit
chain head, tool versions, the dump's size and SHA-256 — and the dump itself.

- PostgreSQL: a REPEATABLE READ transaction exports its snapshot; the manifest's counts are
  taken in that snapshot and ``pg_dump --snapshot`` dumps that same snapshot while the
  transaction stays open, so the counts describe the dump exactly, whatever is written
  meanwhile. ``pg_restore`` loads it in one transaction.
- SQLite: the online backup API copies a consistent snapshot to a file; counts come from the copy.

A restore refuses anything it cannot fully check *before* touching the target (wrong key, an
altered or truncated file, a checksum mismatch, another engine, migrations this code does not
know, a non-empty target without ``clean``); after loading it compares every table's row count,
the migration state and the audit chain head with the manifest and verifies the chain's MACs.
The service dumps every app's tables; it lives with the audit trail, whose chain every restore
verifies against the manifest.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import django
import psycopg
from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone
from psycopg.conninfo import make_conninfo

from audit.backup_archive import BackupFileError, EncryptingWriter, Extracted, file_sha256, open_backup, write_archive
from audit.selectors import audit_chain_verify

FORMAT = "cipherguard-backup"
FORMAT_VERSION = 1
DUMP_NAMES = {"postgresql": "database.pgdump", "sqlite": "database.sqlite3"}
_AUDIT_EVENTS = "audit_auditevent"
_AUDIT_HEAD = "audit_auditchainhead"
# What pg_dump/pg_restore inherit from us besides libpq's own PG* variables: a search path, a
# home for ~/.pgpass, the locale for their messages. Not DATABASE_URL nor any of our secrets.
_INHERITED_ENV = {"PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ", "TMPDIR"}


class BackupError(Exception):
    """Refused or failed. Raised by ``backup_restore`` only while the target is untouched (or,
    for a load that failed, rolled back), so the message can say nothing was restored."""


# --- What a database holds -------------------------------------------------------------------------


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _tables(cursor: Any, vendor: str) -> list[tuple[str, str]]:
    """(key, quoted name) of every user table: what pg_dump dumps, or what SQLite's copy holds."""
    if vendor == "postgresql":
        cursor.execute(
            "SELECT schemaname, tablename FROM pg_catalog.pg_tables "
            "WHERE schemaname <> 'information_schema' AND left(schemaname, 3) <> 'pg_' ORDER BY 1, 2"
        )
        return [
            (name if schema == "public" else f"{schema}.{name}", f"{_quote(schema)}.{_quote(name)}")
            for schema, name in cursor.fetchall()
        ]
    cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite!_%' ESCAPE '!'")
    return sorted((name, _quote(name)) for (name,) in cursor.fetchall())


def _describe(cursor: Any, vendor: str) -> dict[str, Any]:
    """Row counts per table, the latest applied migration per app and the audit chain head, all
    read through ``cursor`` (so, in a snapshot, all from that snapshot)."""
    counts: dict[str, int] = {}
    for key, quoted in _tables(cursor, vendor):
        # A name read from the catalogue and quoted, never user input.
        cursor.execute(f"SELECT count(*) FROM {quoted}")  # noqa: S608  # nosec B608
        counts[key] = int(cursor.fetchone()[0])
    migrations: dict[str, str] = {}
    if "django_migrations" in counts:
        cursor.execute("SELECT app, name FROM django_migrations ORDER BY id")
        migrations = dict(cursor.fetchall())  # in the order applied: the last one per app wins
    head = {"seq": 0, "mac": ""}
    if _AUDIT_HEAD in counts:
        cursor.execute("SELECT seq, mac FROM audit_auditchainhead WHERE singleton = 1")
        row = cursor.fetchone()
        if row:
            head = {"seq": int(row[0]), "mac": row[1]}
    return {
        "tables": counts,
        "migrations": dict(sorted(migrations.items())),
        "audit": {"head_seq": head["seq"], "head_mac": head["mac"], "events": counts.get(_AUDIT_EVENTS, 0)},
    }


# --- PostgreSQL client tools -------------------------------------------------------------------------


def _pg_params() -> dict[str, str]:
    s = connection.settings_dict
    return {
        "dbname": str(s["NAME"]),
        "user": s["USER"] or "",
        "password": s["PASSWORD"] or "",
        "host": s["HOST"] or "",
        "port": str(s["PORT"] or ""),
    }


def _libpq_env(params: dict[str, str]) -> dict[str, str]:
    """The child's environment: the connection as libpq variables, so the password never
    appears on a command line (which every local user can read in ``ps``)."""
    env = {k: v for k, v in os.environ.items() if k in _INHERITED_ENV or k.startswith("PG")}
    for var, key in (
        ("PGHOST", "host"),
        ("PGPORT", "port"),
        ("PGUSER", "user"),
        ("PGPASSWORD", "password"),
        ("PGDATABASE", "dbname"),
    ):
        if params[key]:
            env[var] = params[key]
    return env


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} not found on PATH: install the PostgreSQL client tools (the server's major version)")
    return path


def _tool_version(path: str) -> str:
    return _run_tool([path, "--version"], env={"PATH": os.environ.get("PATH", "")}).strip()


def _major(version: str) -> int:
    """15 from "pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"."""
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", version) or re.search(r"(\d+)", version)
    return int(match.group(1)) if match else 0


def _run_tool(argv: list[str], *, env: dict[str, str], secrets: tuple[str, ...] = ()) -> str:
    """Run a client tool; its stdout on success, else ``BackupError`` with its stderr (any
    secret we hold scrubbed out, in case a tool ever echoes one)."""
    result = subprocess.run(  # noqa: S603 - a resolved tool path and arguments we build
        argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False
    )
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip()
        for secret in secrets:
            if secret:
                message = message.replace(secret, "[redacted]")
        raise BackupError(f"{Path(argv[0]).name} failed (exit {result.returncode}): {message[-4000:]}")
    return result.stdout.decode(errors="replace")


# --- Backup ------------------------------------------------------------------------------------------


def _backup_postgresql(staging: Path) -> tuple[dict[str, Any], Path, dict[str, str]]:
    params = _pg_params()
    pg_dump = _tool("pg_dump")
    dump = staging / DUMP_NAMES["postgresql"]
    try:
        snap = psycopg.connect(**{k: v for k, v in params.items() if v}, connect_timeout=10)
    except psycopg.OperationalError as exc:  # libpq's message names host and port, never the password
        raise BackupError(f"cannot connect to the database: {exc}") from None
    with snap:
        snap.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        snap.read_only = True
        with snap.cursor() as cursor:
            cursor.execute("SELECT pg_export_snapshot(), current_setting('server_version')")
            snapshot, server_version = cursor.fetchone()  # type: ignore[misc]
            state = _describe(cursor, "postgresql")
        # The exported snapshot lives only as long as this transaction: pg_dump must import it
        # (at its start) while we hold it open, which we do until it has finished.
        _run_tool(
            [pg_dump, "--format=custom", f"--snapshot={snapshot}", "--no-password", f"--file={dump}"],
            env=_libpq_env(params),
            secrets=(params["password"],),
        )
        snap.rollback()
    tools = {"pg_dump": _tool_version(pg_dump), "postgresql": server_version, "psycopg": psycopg.__version__}
    return state, dump, tools


def _sqlite_name() -> str:
    return str(connection.settings_dict["NAME"])


def _backup_sqlite(staging: Path) -> tuple[dict[str, Any], Path, dict[str, str]]:
    copy = staging / DUMP_NAMES["sqlite"]
    # Our own connection, not Django's: it sees committed data only, whatever Django's is doing.
    source = sqlite3.connect(_sqlite_name(), uri=True, timeout=30)
    target = sqlite3.connect(copy)
    try:
        # pages=-1: the whole database in one step, under one read lock: a consistent snapshot.
        source.backup(target, pages=-1)
        target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        if target.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise BackupError("the SQLite copy failed its integrity check: the source database may be damaged")
        state = _describe(target.cursor(), "sqlite")
    finally:
        target.close()
        source.close()
    return state, copy, {"sqlite": sqlite3.sqlite_version}


def _write_atomically(output: Path, *, manifest: dict[str, Any], dump: Path, secret: str | None) -> None:
    """Write beside ``output`` and rename into place: an interrupted backup never leaves a file
    that looks finished. Mode 600: a backup holds password hashes and encrypted card numbers."""
    partial = output.with_name(f".{output.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as raw:
            if secret:
                sealed = EncryptingWriter(raw, secret)
                write_archive(sealed, manifest=manifest, dump=dump, dump_name=dump.name)  # type: ignore[arg-type]
                sealed.finish()
            else:
                write_archive(raw, manifest=manifest, dump=dump, dump_name=dump.name)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def backup_create(*, output: Path, encrypt: bool) -> dict[str, Any]:
    """Back up the configured database into ``output`` (replaced atomically if it exists).
    Needs free space for about twice the dump beside ``output``: the dump is staged there."""
    started = time.monotonic()
    secret = settings.BACKUP_ENCRYPTION_KEY
    if encrypt and not secret:
        raise BackupError("--encrypt needs BACKUP_ENCRYPTION_KEY (at least 32 characters) in the environment")
    vendor = connection.vendor
    if vendor not in DUMP_NAMES:
        raise BackupError(f"backing up a {vendor} database is not supported")
    if not output.parent.is_dir() or output.is_dir():
        raise BackupError(f"{output} is not a file path in an existing directory")
    with tempfile.TemporaryDirectory(prefix=".cgbackup-", dir=output.parent) as tmp:
        if vendor == "postgresql":
            state, dump, tools = _backup_postgresql(Path(tmp))
        else:
            state, dump, tools = _backup_sqlite(Path(tmp))
        sha256, size = file_sha256(dump)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "engine": vendor,
            "created_at": timezone.now().isoformat(),
            "database": connection.settings_dict["NAME"] if vendor == "postgresql" else Path(_sqlite_name()).name,
            "migrations": state["migrations"],
            "tables": state["tables"],
            "audit": state["audit"],
            "dump": {"name": dump.name, "bytes": size, "sha256": sha256},
            "tools": {"python": platform.python_version(), "django": django.get_version(), **tools},
        }
        _write_atomically(output, manifest=manifest, dump=dump, secret=secret if encrypt else None)
    return {
        "file": str(output),
        "bytes": output.stat().st_size,
        "encrypted": encrypt,
        "engine": vendor,
        "tables": len(state["tables"]),
        "rows": sum(state["tables"].values()),
        "audit_head_seq": state["audit"]["head_seq"],
        "audit_head_mac": state["audit"]["head_mac"],
        "seconds": round(time.monotonic() - started, 2),
    }


# --- Restore -----------------------------------------------------------------------------------------


@dataclass
class RestoreReport:
    ok: bool
    engine: str
    database: str
    encrypted: bool
    backup_created_at: str
    tables: int
    rows: int
    seconds: float
    load_seconds: float
    verify_seconds: float
    chain: dict[str, Any]
    migrations: str
    pending_migrations: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_manifest(extracted: Extracted, vendor: str) -> dict[str, Any]:
    manifest = extracted.manifest
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError("not a CipherGuard backup (the manifest has no cipherguard-backup format)")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(f"backup format version {manifest.get('format_version')!r}; this code reads {FORMAT_VERSION}")
    engine = manifest.get("engine")
    if engine != vendor:
        raise BackupError(f"this is a {engine} backup but the configured database is {vendor}")
    for key, kind in (("tables", dict), ("migrations", dict), ("audit", dict), ("dump", dict)):
        if not isinstance(manifest.get(key), kind):
            raise BackupError(f"the manifest has no valid {key!r}")
    if extracted.dump.name != DUMP_NAMES[vendor]:
        raise BackupError(f"the backup holds {extracted.dump.name}, not a {vendor} dump")
    if (extracted.sha256, extracted.size) != (manifest["dump"].get("sha256"), manifest["dump"].get("bytes")):
        raise BackupError("the dump does not match the manifest's SHA-256: the file is damaged or was altered")
    return manifest


def _check_code_knows(migrations: dict[str, str]) -> None:
    """A backup whose schema is newer than this code would load, then break the service: refuse
    it. An older one is fine (``manage.py migrate`` after the restore moves it forward)."""
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(None, ignore_no_migrations=True)
    known = set(loader.disk_migrations)
    for migration in loader.disk_migrations.values():
        known.update(migration.replaces or [])  # a squashed migration stands for the ones it replaced
    unknown = [f"{app}.{name}" for app, name in migrations.items() if (app, name) not in known]
    if unknown:
        raise BackupError(
            f"the backup was made by a newer version (migrations this code does not have: {', '.join(unknown)}); "
            "restore it with that version"
        )


def _pending_migrations() -> list[str]:
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _ in plan]


def _restore_postgresql(extracted: Extracted, manifest: dict[str, Any], *, clean: bool) -> None:
    pg_restore = _tool("pg_restore")
    made_by = _major(str(manifest.get("tools", {}).get("pg_dump", "")))
    have = _major(_tool_version(pg_restore))
    if made_by > have:
        raise BackupError(f"the dump was made by pg_dump {made_by}; pg_restore {have} cannot read it")
    params = _pg_params()
    env = _libpq_env(params)
    secrets = (params["password"],)
    _run_tool([pg_restore, "--list", str(extracted.dump)], env=env, secrets=secrets)  # readable before we write
    argv = [
        pg_restore,
        "--no-owner",
        "--no-acl",
        "--exit-on-error",
        # One transaction: a load that fails part-way leaves the target as it was.
        "--single-transaction",
        "--no-password",
        f"--dbname={make_conninfo(dbname=params['dbname'])}",
    ]
    if clean:
        # DROP (not DELETE or TRUNCATE, which the audit tables' triggers refuse) every object the
        # dump holds, then create it afresh, inside the same transaction.
        argv += ["--clean", "--if-exists"]
    _run_tool([*argv, str(extracted.dump)], env=env, secrets=secrets)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # a dump carries no planner statistics; without them queries crawl


def _restore_sqlite(extracted: Extracted, manifest: dict[str, Any]) -> None:
    source = sqlite3.connect(extracted.dump)
    try:
        # The copy is checked whole before it touches the target.
        if source.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise BackupError("the SQLite copy in the backup failed its integrity check")
        if _describe(source.cursor(), "sqlite")["tables"] != manifest["tables"]:
            raise BackupError("the SQLite copy's row counts differ from the manifest: the file was altered")
        target = sqlite3.connect(_sqlite_name(), uri=True, timeout=30)
        try:
            # Page by page over the whole target, in one step: everything not in the backup is
            # gone afterwards without a DELETE, so the audit triggers have nothing to refuse.
            source.backup(target, pages=-1)
        finally:
            target.close()
    finally:
        source.close()
    connection.close()  # the next query opens the restored file afresh


def _verify(manifest: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    problems: list[str] = []
    with connection.cursor() as cursor:
        state = _describe(cursor, connection.vendor)
    expected, found = manifest["tables"], state["tables"]
    for table in sorted(set(expected) | set(found)):
        if table not in found:
            problems.append(f"table {table} is missing (the backup has {expected[table]} rows)")
        elif table not in expected:
            problems.append(f"table {table} is not in the backup")
        elif found[table] != expected[table]:
            problems.append(f"table {table} has {found[table]} rows, the backup {expected[table]}")
    if state["migrations"] != manifest["migrations"]:
        problems.append("the restored migration state differs from the backup's")
    if (state["audit"]["head_seq"], state["audit"]["head_mac"]) != (
        manifest["audit"].get("head_seq"),
        manifest["audit"].get("head_mac"),
    ):
        problems.append("the audit chain head differs from the backup's")
    report = audit_chain_verify()
    chain = {"ok": report.ok, "events": report.checked, "head_seq": report.head_seq, "problem": report.problem}
    if not report.ok:
        hint = " (is AUDIT_MAC_KEY the key the backed-up service used?)" if report.first_bad_seq == 1 else ""
        problems.append(f"audit chain broken: {report.problem}{hint}")
    return state, chain, problems


def _user_tables() -> list[str]:
    with connection.cursor() as cursor:
        return [key for key, _ in _tables(cursor, connection.vendor)]


def backup_restore(*, path: Path, clean: bool) -> RestoreReport:
    """Restore ``path`` into the configured database and verify it against its manifest.

    Raises ``BackupError`` with nothing restored; returns a report whose ``problems`` list what
    did not match once loaded (empty when the restore is good)."""
    started = time.monotonic()
    vendor = connection.vendor
    if vendor not in DUMP_NAMES:
        raise BackupError(f"restoring into a {vendor} database is not supported")
    if not path.is_file():
        raise BackupError(f"no such file: {path}")
    with tempfile.TemporaryDirectory(prefix="cgrestore-") as tmp:
        try:
            extracted, encrypted = open_backup(
                path,
                secret=settings.BACKUP_ENCRYPTION_KEY or None,
                workdir=Path(tmp),
                dump_names=set(DUMP_NAMES.values()),
            )
        except (BackupFileError, ValueError) as exc:
            raise BackupError(str(exc)) from None
        manifest = _check_manifest(extracted, vendor)
        _check_code_knows(manifest["migrations"])
        try:
            existing = _user_tables()
        except DatabaseError as exc:
            raise BackupError(f"cannot reach the target database: {exc}") from None
        if existing and not clean:
            raise BackupError(
                f"the target database is not empty ({len(existing)} tables): restore into a new, empty database, "
                "or pass --clean to drop what the backup holds and replace it"
            )
        load_started = time.monotonic()
        if vendor == "postgresql":
            _restore_postgresql(extracted, manifest, clean=clean)
        else:
            _restore_sqlite(extracted, manifest)
        load_seconds = time.monotonic() - load_started
    verify_started = time.monotonic()
    state, chain, problems = _verify(manifest)
    pending = _pending_migrations()
    done = time.monotonic()
    return RestoreReport(
        ok=not problems,
        engine=vendor,
        database=connection.settings_dict["NAME"] if vendor == "postgresql" else Path(_sqlite_name()).name,
        encrypted=encrypted,
        backup_created_at=str(manifest.get("created_at", "")),
        tables=len(state["tables"]),
        rows=sum(state["tables"].values()),
        seconds=round(done - started, 2),
        load_seconds=round(load_seconds, 2),
        verify_seconds=round(done - verify_started, 2),
        chain=chain,
        migrations="match" if state["migrations"] == manifest["migrations"] else "mismatch",
        pending_migrations=pending,
        problems=problems,
    )
