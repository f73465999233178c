"""Checkpoints anchor the audit chain head outside the database, so a table owner who cuts the
chain's tail and rewinds the head row is caught."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from pythonjsonlogger.json import JsonFormatter

from audit.chain import GENESIS, compute_mac
from audit.checkpoints import LOGGER, checkpoint_parse, checkpoint_seal
from audit.db import drop_triggers, install_triggers
from audit.models import AuditChainHead, AuditEvent
from audit.services import audit_checkpoint_write, event_content, mac_key
from audit.tasks import audit_checkpoint_write as audit_checkpoint_write_task
from cipherguard.logs import RequestIdFilter
from tests.audit.test_chain import write_events


@pytest.fixture(autouse=True)
def checkpoint_file(settings, tmp_path) -> Path:
    settings.AUDIT_CHECKPOINT_FILE = tmp_path / "var" / "audit-checkpoints.jsonl"
    return settings.AUDIT_CHECKPOINT_FILE


def verify(*args: str) -> tuple[int, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("verify_audit_chain", *args, stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code), err.getvalue()
    return 0, out.getvalue()


def as_table_owner(*statements: tuple[str, list]) -> None:
    """What a table owner can do: switch the append-only triggers off, run raw SQL, switch them on."""
    drop_triggers(connection)
    with connection.cursor() as cursor:
        for sql, params in statements:
            cursor.execute(sql, params)
    install_triggers(connection)


def cut_tail_and_rewind_head(*, keep: int) -> None:
    mac = AuditEvent.objects.get(seq=keep).mac if keep else ""
    as_table_owner(
        ("DELETE FROM audit_auditevent WHERE seq > %s", [keep]),
        ("UPDATE audit_auditchainhead SET seq = %s, mac = %s WHERE singleton = 1", [keep, mac]),
    )


@pytest.mark.parametrize("keep", [3, 0], ids=["the newest events", "every event"])
def test_a_deleted_tail_with_a_rewound_head_passes_the_chain_but_not_its_checkpoints(db, carol, checkpoint_file, keep):
    write_events(5, actor=carol)
    audit_checkpoint_write()

    cut_tail_and_rewind_head(keep=keep)

    code, output = verify("--no-checkpoints")
    assert code == 0 and f"audit chain intact: {keep} events, head #{keep}" in output, output
    for args in [(), ("--checkpoints", str(checkpoint_file))]:  # the configured file by default
        code, output = verify(*args)
        assert code == 1, output
        assert "truncated: the checkpoint on line 1" in output
        assert f"saw event #5, but the trail now ends at #{keep}: events #{keep + 1}..#5 were deleted" in output


def test_events_rewritten_by_someone_holding_the_key_differ_from_the_checkpoint(db, carol):
    write_events(5, actor=carol)
    audit_checkpoint_write()

    # The chain recomputed from event 3 on, with the key: the chain alone cannot tell.
    statements, prev = [], AuditEvent.objects.get(seq=2).mac
    for event in AuditEvent.objects.filter(seq__gte=3).order_by("seq"):
        event.after = {"i": "rewritten"} if event.seq == 3 else event.after
        event.prev_mac, event.mac = prev, compute_mac(mac_key(), event_content(event), prev)
        statements.append(
            (
                "UPDATE audit_auditevent SET after = %s, prev_mac = %s, mac = %s WHERE seq = %s",
                [json.dumps(event.after), event.prev_mac, event.mac, event.seq],
            )
        )
        prev = event.mac
    statements.append(("UPDATE audit_auditchainhead SET mac = %s WHERE singleton = 1", [prev]))
    as_table_owner(*statements)

    assert verify("--no-checkpoints")[0] == 0
    code, output = verify()
    assert code == 1
    assert "event #5 was rewritten: its MAC differs from the checkpoint on line 1" in output


@pytest.mark.parametrize("forgery", ["sealed with another key", "edited after sealing"])
def test_a_forged_checkpoint_is_reported_by_its_line(db, carol, checkpoint_file, forgery):
    write_events(3, actor=carol)
    genuine = audit_checkpoint_write()
    if forgery == "sealed with another key":
        # Vouches for an event that does exist: only the seal gives it away.
        forged = checkpoint_seal(b"not-the-audit-key", seq=3, mac=genuine.mac, at=genuine.at).to_line()
    else:
        forged = json.dumps({**genuine.as_dict(), "seq": 9})
    with checkpoint_file.open("a") as file:
        file.write(forged + "\n")

    code, output = verify()
    assert code == 1
    assert "line 2 (#" in output and "is forged or altered: its seal does not verify with AUDIT_MAC_KEY" in output
    assert "line 1" not in output


def test_a_line_that_is_not_a_checkpoint_is_reported(db, checkpoint_file):
    audit_checkpoint_write()
    with checkpoint_file.open("a") as file:
        file.write('{"seq": 1, "mac": "short"}\n')

    code, output = verify()
    assert code == 1 and "line 2 is not a checkpoint (mac is not a MAC)" in output


def test_the_scheduled_task_writes_a_checkpoint_to_the_file_and_the_json_log(
    db, carol, checkpoint_file, caplog, settings, tmp_path
):
    events = write_events(2, actor=carol)
    caplog.set_level(logging.INFO, logger=LOGGER)

    assert audit_checkpoint_write_task.apply().get() == 2

    [line] = checkpoint_file.read_text().splitlines()
    checkpoint = checkpoint_parse(line)
    assert checkpoint is not None and (checkpoint.seq, checkpoint.mac) == (2, events[-1].mac)
    [record] = [r for r in caplog.records if r.name == LOGGER]
    # The log line, as the production JSON formatter writes it, carries the same checkpoint.
    RequestIdFilter().filter(record)
    options = {k: v for k, v in settings.LOGGING["formatters"]["json"].items() if k != "()"}
    logged = json.loads(JsonFormatter(**options).format(record))
    assert logged["logger"] == LOGGER
    assert {k: logged[k] for k in ("seq", "mac", "at", "checkpoint_mac")} == checkpoint.as_dict()

    # So an export of the JSON log, other loggers' lines and all, is a checkpoint file.
    export = tmp_path / "log-export.jsonl"
    other = {"time": "t", "level": "INFO", "logger": "django.request", "message": "GET /"}
    export.write_text(json.dumps(other) + "\n" + json.dumps(logged) + "\n")
    code, output = verify("--checkpoints", str(export))
    assert code == 0 and f"1 checkpoints in {export} match, up to #2" in output, output


def test_an_empty_trail_is_checkpointed_at_sequence_zero(db, carol, checkpoint_file):
    assert AuditChainHead.objects.get(singleton=1).seq == 0

    checkpoint = audit_checkpoint_write()

    assert (checkpoint.seq, checkpoint.mac) == (0, GENESIS)
    write_events(2, actor=carol)  # a checkpoint vouches for the past, not against growth
    code, output = verify()
    assert code == 0 and f"1 checkpoints in {checkpoint_file} match, up to #0" in output, output


def test_without_a_checkpoint_file_the_chain_alone_is_checked_and_it_says_so(db, carol, checkpoint_file):
    write_events(2, actor=carol)

    code, output = verify()

    assert code == 0 and f"checkpoints not checked: no file at AUDIT_CHECKPOINT_FILE ({checkpoint_file})" in output
    with pytest.raises(CommandError, match="no checkpoint file at"):
        call_command("verify_audit_chain", "--checkpoints", str(checkpoint_file), stdout=StringIO())


def test_the_checkpoint_task_is_registered_at_start_up_and_scheduled(settings):
    # A fresh process: this module's own import of audit.tasks must not be what registers it.
    probe = "import django, sys; django.setup(); print('audit.tasks' in sys.modules)"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "cipherguard.settings_test"}
    started = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)  # noqa: S603

    assert started.stdout.strip() == "True", started.stderr
    assert settings.CELERY_BEAT_SCHEDULE["audit-checkpoint"]["task"] == audit_checkpoint_write_task.name
