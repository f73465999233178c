"""Database-level append-only protection for the audit tables, shared by the migration and the
tests (which install it per test: pytest-django empties every table between transactional
tests, and a trigger that allowed that would allow it in production too)."""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper

EVENTS = "audit_auditevent"
HEAD = "audit_auditchainhead"

_PG_INSTALL = [
    """
    CREATE OR REPLACE FUNCTION cipherguard_audit_refuse() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END $$ LANGUAGE plpgsql
    """,
    """
    CREATE OR REPLACE FUNCTION cipherguard_audit_head_forward() RETURNS trigger AS $$
    BEGIN
        IF NEW.seq <> OLD.seq + 1 OR NEW.singleton <> OLD.singleton THEN
            RAISE EXCEPTION 'audit chain head only moves forward by one'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END $$ LANGUAGE plpgsql
    """,
    f"CREATE TRIGGER audit_event_no_update_delete BEFORE UPDATE OR DELETE ON {EVENTS} FOR EACH ROW EXECUTE FUNCTION cipherguard_audit_refuse()",
    f"CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON {EVENTS} FOR EACH STATEMENT EXECUTE FUNCTION cipherguard_audit_refuse()",
    f"CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON {HEAD} FOR EACH ROW EXECUTE FUNCTION cipherguard_audit_refuse()",
    f"CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON {HEAD} FOR EACH STATEMENT EXECUTE FUNCTION cipherguard_audit_refuse()",
    f"CREATE TRIGGER audit_head_forward BEFORE UPDATE ON {HEAD} FOR EACH ROW EXECUTE FUNCTION cipherguard_audit_head_forward()",
]
_PG_DROP = [
    f"DROP TRIGGER IF EXISTS audit_event_no_update_delete ON {EVENTS}",
    f"DROP TRIGGER IF EXISTS audit_event_no_truncate ON {EVENTS}",
    f"DROP TRIGGER IF EXISTS audit_head_no_delete ON {HEAD}",
    f"DROP TRIGGER IF EXISTS audit_head_no_truncate ON {HEAD}",
    f"DROP TRIGGER IF EXISTS audit_head_forward ON {HEAD}",
]
# SQLite has no TRUNCATE statement; UPDATE and DELETE are refused.
_SQLITE_INSTALL = [
    f"CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON {EVENTS} BEGIN SELECT RAISE(ABORT, 'audit trail is append-only: UPDATE refused'); END",
    f"CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON {EVENTS} BEGIN SELECT RAISE(ABORT, 'audit trail is append-only: DELETE refused'); END",
    f"CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON {HEAD} BEGIN SELECT RAISE(ABORT, 'audit trail is append-only: DELETE refused'); END",
    f"CREATE TRIGGER audit_head_forward BEFORE UPDATE ON {HEAD} WHEN NEW.seq <> OLD.seq + 1 OR NEW.singleton <> OLD.singleton "
    "BEGIN SELECT RAISE(ABORT, 'audit chain head only moves forward by one'); END",
]
_SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS audit_event_no_update",
    "DROP TRIGGER IF EXISTS audit_event_no_delete",
    "DROP TRIGGER IF EXISTS audit_head_no_delete",
    "DROP TRIGGER IF EXISTS audit_head_forward",
]


def _statements(connection: BaseDatabaseWrapper, *, install: bool) -> list[str]:
    if connection.vendor == "postgresql":
        return _PG_INSTALL if install else _PG_DROP
    if connection.vendor == "sqlite":
        return _SQLITE_INSTALL if install else _SQLITE_DROP
    raise NotImplementedError(f"no append-only triggers for {connection.vendor}")


def install_triggers(connection: BaseDatabaseWrapper) -> None:
    with connection.cursor() as cursor:
        for sql in _statements(connection, install=False) + _statements(connection, install=True):
            cursor.execute(sql)


def drop_triggers(connection: BaseDatabaseWrapper) -> None:
    with connection.cursor() as cursor:
        for sql in _statements(connection, install=False):
            cursor.execute(sql)
