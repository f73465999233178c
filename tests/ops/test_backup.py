"""Backups and restores (issue #6): a backup restores into an empty database with every row and an
intact audit chain; a wrong key, an altered or cut file, or a non-empty target restores nothing;
the manifest describes the dump exactly even while writers carry on."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.db import connection

from audit import backup as backup_service
from audit.backup_archive import (
    MAGIC,
    BackupFileError,
    DecryptingReader,
    EncryptingWriter,
    WrongKeyError,
    file_sha256,
    write_archive,
)
from audit.models import AuditEvent
from fraud.cases.services import case_add_note, case_assign, case_close
from fraud.modelops.services.lifecycle import model_version_activate
from fraud.models import CaseOutcome
from fraud.rules.services import thresholds_update
from tests.factories import CaseFactory, ModelVersionFactory, TransactionFactory
from tests.test_settings import STRONG, load

ROOT = Path(__file__).resolve().parents[2]
KEY = "backup-key-for-tests-" + "k" * 24
OTHER_KEY = "another-backup-key-for-tests-" + "o" * 16
# Tables whose rows are compared one by one after a restore, besides every table's count.
SPOT_TABLES = [
    "accounts_user",
    "audit_auditchainhead",
    "audit_auditevent",
    "fraud_case",
    "fraud_casenote",
    "fraud_decisionthresholds",
    "fraud_modelversion",
    "fraud_transaction",
]


# --- The sealed stream, without a database ----------------------------------------------------------


def seal(data: bytes, *, key: str = KEY, chunk_bytes: int = 64) -> bytes:
    out = io.BytesIO()
    writer = EncryptingWriter(out, key, chunk_bytes=chunk_bytes)
    for i in range(0, len(data), 50):  # writes that straddle chunk boundaries
        writer.write(data[i : i + 50])
    writer.finish()
    return out.getvalue()


def unseal(blob: bytes, *, key: str = KEY) -> bytes:
    return DecryptingReader(io.BytesIO(blob), key).read()


def records(blob: bytes, chunk_bytes: int = 64) -> tuple[bytes, list[bytes]]:
    header_size = len(MAGIC) + 16 + 4 + 16
    body, size = blob[header_size:], chunk_bytes + 16
    return blob[:header_size], [body[i : i + size] for i in range(0, len(body), size)]


@pytest.mark.parametrize("length", [0, 1, 63, 64, 128, 1000])
def test_a_sealed_stream_opens_to_exactly_what_was_written(length):
    data = os.urandom(length)
    blob = seal(data)
    assert blob.startswith(MAGIC)
    assert unseal(blob) == data


def test_opening_with_another_key_is_refused_before_any_record():
    with pytest.raises(WrongKeyError, match="not the key"):
        DecryptingReader(io.BytesIO(seal(b"x" * 500)), OTHER_KEY)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda h, r: h + b"".join(r[:-1]), id="cut at a record boundary"),
        pytest.param(lambda h, r: h + b"".join(r)[:-5], id="cut inside the final record"),
        pytest.param(lambda h, r: h + b"".join([r[1], r[0], *r[2:]]), id="records swapped"),
        pytest.param(lambda h, r: h + b"".join([r[0], *r[2:]]), id="a record dropped"),
        pytest.param(lambda h, r: h + b"".join([*r, r[-1]]), id="a record appended"),
        pytest.param(lambda h, r: h + b"".join(r) + b"\x00", id="a byte appended"),
        pytest.param(lambda h, r: h + bytes([r[0][0] ^ 1]) + b"".join(r)[1:], id="one bit flipped"),
    ],
)
def test_an_altered_sealed_stream_fails_authentication(damage):
    header, recs = records(seal(os.urandom(64 * 4 + 10)))
    with pytest.raises(BackupFileError):
        unseal(damage(header, recs))


def test_a_short_key_is_refused():
    with pytest.raises(ValueError, match="at least 32"):
        seal(b"x", key="short")


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"BACKUP_ENCRYPTION_KEY": "too-short"}, "BACKUP_ENCRYPTION_KEY must be at least 32"),
        ({"BACKUP_ENCRYPTION_KEY": STRONG["AUDIT_MAC_KEY"]}, "BACKUP_ENCRYPTION_KEY must differ"),
    ],
)
def test_settings_refuse_a_weak_or_reused_backup_key(env, complaint):
    result = load({"ENVIRONMENT": "production", **STRONG, **env})
    assert result.returncode != 0
    assert complaint in result.stderr


# --- Helpers for the round trips -------------------------------------------------------------------


def populate(alice, carol, dave) -> None:
    """A database like production's, written through the services: an active model (binary
    artifact), thresholds, scored transactions, cases worked by an analyst, audit events."""
    version = ModelVersionFactory(artifact=b"\x00onnx\xff\x00bytes", artifact_sha256="ab" * 32)
    model_version_activate(version=version, actor=dave)
    thresholds_update(review=0.4, decline=0.85, actor=dave)
    TransactionFactory.create_batch(25, owner=alice, fraud_score=0.1, decision="approve", model_version=version)
    cases = [CaseFactory(transaction__owner=alice) for _ in range(3)]
    case_assign(case=cases[0], assignee=carol, actor=carol)
    case_add_note(case=cases[0], author=carol, body="Kunde erreicht — Karte gestohlen 💳")
    case_close(case=cases[0], actor=carol, outcome=CaseOutcome.CONFIRMED_FRAUD, note="chargeback")
    case_assign(case=cases[1], assignee=carol, actor=dave)


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``manage.py`` in a fresh interpreter on the real settings, with exactly this database
    and keys (the same AUDIT_MAC_KEY as this process, as a real restore needs)."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "DJANGO_", "BACKUP_", "CIPHERGUARD_VAR_DIR", "TEST_DATABASE"))
    }
    clean |= {"DJANGO_SETTINGS_MODULE": "cipherguard.settings", "AUDIT_MAC_KEY": django_settings.AUDIT_MAC_KEY}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def summary(result: subprocess.CompletedProcess) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def flip_byte(path: Path, offset: int) -> Path:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    damaged = path.with_name(path.name + ".damaged")
    damaged.write_bytes(bytes(data))
    return damaged


def normalised(rows: list[tuple]) -> list[tuple]:
    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows]


# --- PostgreSQL ----------------------------------------------------------------------------------------


def pg_connect(dbname: str) -> psycopg.Connection:
    s = connection.settings_dict
    params = {"dbname": dbname, "user": s["USER"], "password": s["PASSWORD"], "host": s["HOST"], "port": s["PORT"]}
    return psycopg.connect(**{k: v for k, v in params.items() if v}, autocommit=True)


def pg_url(dbname: str) -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{dbname}"


@contextmanager
def scratch_database():
    """A new, empty PostgreSQL database named after the test database (so parallel runs with
    their own TEST_DATABASE_NAME never collide), dropped afterwards."""
    name = f"{connection.settings_dict['NAME']}_r{uuid.uuid4().hex[:8]}"
    with pg_connect("postgres") as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with pg_connect("postgres") as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_tables(dbname: str) -> list[str]:
    with pg_connect(dbname) as conn:
        return [row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]


def pg_rows(dbname: str, table: str) -> list[tuple]:
    with pg_connect(dbname) as conn:
        return normalised(conn.execute(f'SELECT * FROM "{table}" ORDER BY 1').fetchall())  # noqa: S608


def test_a_postgresql_backup_restores_into_an_empty_database_with_every_row_and_an_intact_chain(
    postgres_tx, alice, carol, dave, settings, tmp_path
):
    populate(alice, carol, dave)
    source = connection.settings_dict["NAME"]
    settings.BACKUP_ENCRYPTION_KEY = KEY
    out = io.StringIO()
    call_command("backup", output=str(tmp_path / "cg.cgbak"), encrypt=True, stdout=out)
    made = json.loads(out.getvalue())
    backup = tmp_path / "cg.cgbak"
    assert made["encrypted"] and backup.read_bytes().startswith(MAGIC)
    events = AuditEvent.objects.count()
    assert made["audit_head_seq"] == events > 0
    assert oct(backup.stat().st_mode & 0o777) == "0o600"

    with scratch_database() as target:
        env = {"DATABASE_URL": pg_url(target), "BACKUP_ENCRYPTION_KEY": KEY}

        wrong = manage("restore", str(backup), env={**env, "BACKUP_ENCRYPTION_KEY": OTHER_KEY})
        assert wrong.returncode == 1
        assert "nothing restored: BACKUP_ENCRYPTION_KEY is not the key" in wrong.stderr
        assert pg_tables(target) == []

        damaged = manage("restore", str(flip_byte(backup, backup.stat().st_size // 2)), env=env)
        assert damaged.returncode == 1
        assert "failed authentication" in damaged.stderr
        assert pg_tables(target) == []

        restored = manage("restore", str(backup), "--json", env=env)
        assert restored.returncode == 0, restored.stderr
        report = summary(restored)
        assert report["ok"] and report["encrypted"] and report["problems"] == []
        assert report["chain"] == {"ok": True, "events": events, "head_seq": events, "problem": ""}
        assert report["migrations"] == "match" and report["pending_migrations"] == []
        assert report["rows"] == made["rows"] and report["tables"] == made["tables"]
        for table in SPOT_TABLES:
            assert pg_rows(target, table) == pg_rows(source, table), table
        assert manage("verify_audit_chain", env=env).returncode == 0

        # The append-only triggers came back with the data.
        with pg_connect(target) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("DELETE FROM audit_auditevent")

        again = manage("restore", str(backup), env=env)
        assert again.returncode == 1
        assert "not empty" in again.stderr and "--clean" in again.stderr


def test_the_manifest_counts_the_dumped_snapshot_even_while_writers_carry_on(
    postgres_tx, alice, carol, dave, settings, tmp_path, monkeypatch
):
    """A transaction committed after the counts but before pg_dump starts is in neither:
    pg_dump reads the snapshot the counts were taken in."""
    populate(alice, carol, dave)
    real_run = backup_service._run_tool

    def commit_one_more_then_run(argv, **kwargs):
        if any(arg.startswith("--snapshot=") for arg in argv):
            TransactionFactory(owner=alice, transaction_id="written-during-the-backup")
        return real_run(argv, **kwargs)

    monkeypatch.setattr(backup_service, "_run_tool", commit_one_more_then_run)
    call_command("backup", output=str(tmp_path / "plain.cgbak"), stdout=io.StringIO())
    backup = tmp_path / "plain.cgbak"
    assert not backup.read_bytes().startswith(MAGIC)
    source_count = len(pg_rows(connection.settings_dict["NAME"], "fraud_transaction"))

    with scratch_database() as target:
        env = {"DATABASE_URL": pg_url(target)}
        first = manage("restore", str(backup), "--json", env=env)
        assert first.returncode == 0, first.stderr
        assert len(pg_rows(target, "fraud_transaction")) == source_count - 1

        # --clean replaces a non-empty database (one with the audit triggers installed, which
        # refuse DELETE and TRUNCATE) and verifies the same way.
        with pg_connect(target) as conn:
            conn.execute("UPDATE fraud_case SET priority = 99")
        clean = manage("restore", str(backup), "--clean", "--json", env=env)
        assert clean.returncode == 0, clean.stderr
        assert summary(clean)["ok"]
        with pg_connect(target) as conn:
            assert conn.execute("SELECT count(*) FROM fraud_case WHERE priority = 99").fetchone() == (0,)


# --- SQLite --------------------------------------------------------------------------------------------


def sqlite_rows(name: str, table: str) -> list[tuple]:
    conn = sqlite3.connect(name, uri=True)
    try:
        return conn.execute(f'SELECT * FROM "{table}" ORDER BY 1').fetchall()  # noqa: S608
    finally:
        conn.close()


def sqlite_tables(path: Path) -> list[str]:
    if not path.exists():
        return []
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    finally:
        conn.close()


def test_a_sqlite_backup_restores_into_a_new_file_with_every_row_and_an_intact_chain(
    transactional_db, alice, carol, dave, settings, tmp_path
):
    if connection.vendor != "sqlite":
        pytest.skip("the SQLite round trip runs under the default SQLite settings")
    populate(alice, carol, dave)
    settings.BACKUP_ENCRYPTION_KEY = KEY
    call_command("backup", output=str(tmp_path / "plain.cgbak"), stdout=io.StringIO())
    call_command("backup", output=str(tmp_path / "sealed.cgbak"), encrypt=True, stdout=io.StringIO())
    var = tmp_path / "restored-var"
    target = var / "cipherguard.sqlite3"
    env = {"CIPHERGUARD_VAR_DIR": str(var), "BACKUP_ENCRYPTION_KEY": KEY}

    wrong = manage("restore", str(tmp_path / "sealed.cgbak"), env={**env, "BACKUP_ENCRYPTION_KEY": OTHER_KEY})
    assert wrong.returncode == 1 and "not the key" in wrong.stderr
    damaged = manage("restore", str(flip_byte(tmp_path / "plain.cgbak", 4096)), env=env)
    assert damaged.returncode == 1 and "nothing restored" in damaged.stderr
    assert sqlite_tables(target) == []

    restored = manage("restore", str(tmp_path / "sealed.cgbak"), "--json", env=env)
    assert restored.returncode == 0, restored.stderr
    report = summary(restored)
    assert report["ok"] and report["chain"]["ok"] and report["chain"]["head_seq"] == AuditEvent.objects.count() > 0
    source = str(connection.settings_dict["NAME"])
    for table in SPOT_TABLES:
        assert sqlite_rows(str(target), table) == sqlite_rows(source, table), table

    refused = manage("restore", str(tmp_path / "plain.cgbak"), env=env)
    assert refused.returncode == 1 and "not empty" in refused.stderr
    clean = manage("restore", str(tmp_path / "plain.cgbak"), "--clean", "--json", env=env)
    assert clean.returncode == 0, clean.stderr
    assert summary(clean)["ok"]


def test_a_backup_of_another_engine_is_refused_before_anything_is_touched(db, tmp_path):
    other = "sqlite" if connection.vendor == "postgresql" else "postgresql"
    dump = tmp_path / backup_service.DUMP_NAMES[other]
    dump.write_bytes(b"not really a dump")
    sha256, size = file_sha256(dump)
    manifest = {
        "format": backup_service.FORMAT,
        "format_version": backup_service.FORMAT_VERSION,
        "engine": other,
        "tables": {},
        "migrations": {},
        "audit": {},
        "dump": {"name": dump.name, "bytes": size, "sha256": sha256},
    }
    with (tmp_path / "other.cgbak").open("wb") as out:
        write_archive(out, manifest=manifest, dump=dump, dump_name=dump.name)
    with pytest.raises(
        CommandError,
        match=f"nothing restored: this is a {other} backup but the configured database is {connection.vendor}",
    ):
        call_command("restore", str(tmp_path / "other.cgbak"), stdout=io.StringIO())
