"""The audit trail is append-only in the database and tamper-evident by its HMAC chain."""

from __future__ import annotations

import threading
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from audit.db import drop_triggers, install_triggers
from audit.models import AuditChainHead, AuditEvent
from audit.selectors import audit_chain_verify
from audit.services import audit_record


def write_events(n: int, actor=None) -> list[AuditEvent]:
    return [
        audit_record(event_type="test.event", actor=actor, object_type="thing", object_id=str(i), after={"i": i})
        for i in range(n)
    ]


def verify() -> tuple[int, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("verify_audit_chain", stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code), err.getvalue()
    return 0, out.getvalue()


def tamper(sql: str, params: list | None = None) -> None:
    """What a table owner could do: switch the triggers off, change rows, switch them on."""
    drop_triggers(connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
    install_triggers(connection)


def test_an_intact_chain_verifies(db, carol):
    write_events(5, actor=carol)
    code, output = verify()
    assert code == 0, output
    assert "5 events" in output


def test_an_edited_event_is_named(db, carol):
    events = write_events(5, actor=carol)
    tamper("UPDATE audit_auditevent SET after = %s WHERE seq = %s", ['{"i": 99}', events[2].seq])
    code, output = verify()
    assert code == 1
    assert f"event {events[2].seq} was altered" in output


def test_a_deleted_event_is_named(db, carol):
    events = write_events(5, actor=carol)
    tamper("DELETE FROM audit_auditevent WHERE seq = %s", [events[1].seq])
    code, output = verify()
    assert code == 1
    assert f"first bad event: #{events[1].seq}" in output


def test_a_truncated_tail_is_noticed_through_the_head(db, carol):
    events = write_events(5, actor=carol)
    tamper("DELETE FROM audit_auditevent WHERE seq >= %s", [events[3].seq])
    code, output = verify()
    assert code == 1
    assert f"events {events[3].seq}..{events[4].seq} are missing" in output


def test_a_rewritten_chain_without_the_key_is_caught(db, carol, settings):
    write_events(3, actor=carol)
    settings.AUDIT_MAC_KEY = "someone-elses-key-who-recomputed-nothing"
    assert verify()[0] == 1


@pytest.mark.parametrize("statement", ["UPDATE audit_auditevent SET event_type = 'x'", "DELETE FROM audit_auditevent"])
def test_the_database_refuses_updates_and_deletes(db, carol, statement):
    write_events(2, actor=carol)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)
    assert AuditEvent.objects.count() == 2


def test_the_database_refuses_truncate_and_moving_the_head_backwards(postgres_tx, carol):
    # Committed rows: inside one transaction PostgreSQL refuses TRUNCATE for pending FK checks
    # before our trigger could speak.
    write_events(2, actor=carol)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("TRUNCATE audit_auditevent")
    with pytest.raises(DatabaseError, match="only moves forward"), transaction.atomic():
        AuditChainHead.objects.filter(singleton=1).update(seq=1)
    assert AuditEvent.objects.count() == 2


def test_eight_concurrent_writers_never_fork_the_chain(postgres_tx, carol):
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            barrier.wait(timeout=10)
            for i in range(10):
                with transaction.atomic():
                    audit_record(event_type="test.concurrent", actor=carol, object_type="w", object_id=f"{k}-{i}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    assert not errors
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True)) == list(range(1, 81))
    report = audit_chain_verify()
    assert report.ok and report.checked == 80, report
