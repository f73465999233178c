"""Reading and verifying the audit trail."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from audit.chain import GENESIS, compute_mac
from audit.models import AuditChainHead, AuditEvent
from audit.services import event_content, mac_key


def audit_events_for_object(*, object_type: str, object_id: str) -> QuerySet[AuditEvent]:
    return (
        AuditEvent.objects.filter(object_type=object_type, object_id=str(object_id))
        .select_related("actor")
        .order_by("seq")
    )


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    head_seq: int
    problem: str = ""
    first_bad_seq: int | None = None


def audit_chain_verify() -> ChainReport:
    """Walk the chain in order: sequence numbers without gaps from 1, each ``prev_mac`` equal to
    the previous ``mac``, each ``mac`` recomputed with the key, and the head row pointing at the
    last event. Returns the first problem found."""
    key = mac_key()
    head = AuditChainHead.objects.filter(singleton=1).first()
    expected_seq, prev = 1, GENESIS
    checked = 0
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=2000):
        if event.seq != expected_seq:
            return ChainReport(
                False,
                checked,
                head.seq if head else 0,
                f"events {expected_seq}..{event.seq - 1} are missing",
                expected_seq,
            )
        if event.prev_mac != prev:
            return ChainReport(
                False,
                checked,
                head.seq if head else 0,
                f"event {event.seq} does not follow event {event.seq - 1}",
                event.seq,
            )
        if compute_mac(key, event_content(event), event.prev_mac) != event.mac:
            return ChainReport(False, checked, head.seq if head else 0, f"event {event.seq} was altered", event.seq)
        prev, expected_seq, checked = event.mac, expected_seq + 1, checked + 1
    last = expected_seq - 1
    if head is None:
        if checked:
            return ChainReport(False, checked, 0, "the chain head row is missing", None)
        return ChainReport(True, 0, 0)
    if head.seq != last or (head.mac or GENESIS) != prev:
        missing_from = last + 1
        return ChainReport(
            False,
            checked,
            head.seq,
            f"events {missing_from}..{head.seq} are missing (the chain head says {head.seq})",
            missing_from,
        )
    return ChainReport(True, checked, head.seq)
