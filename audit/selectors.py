"""Reading and verifying the audit trail."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Max, QuerySet

from audit.chain import GENESIS, compute_mac
from audit.checkpoints import Checkpoint, CheckpointLineError, checkpoint_authentic, checkpoint_parse
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


@dataclass(frozen=True)
class CheckpointReport:
    ok: bool
    checked: int  # checkpoints read
    last_seq: int  # the furthest event a checkpoint vouches for
    problems: tuple[str, ...] = ()


_LISTED = 5  # forged or malformed lines named one by one; the rest are counted


def audit_checkpoints_verify(*, lines: Iterable[str]) -> CheckpointReport:
    """Check the chain against checkpoints saved outside the database (the lines of a checkpoint
    file or of a JSON log export): each must carry a valid seal, and the event it names must exist
    with the MAC it recorded. A checkpoint past the last event means the tail was deleted, however
    the head row was rewound. Run ``audit_chain_verify`` too: this checks only the checkpointed
    events."""
    key = mac_key()
    bad_lines: list[str] = []
    # Per (seq, mac), the first line that vouches for it: an idle chain is checkpointed at the
    # same head every few minutes, and one comparison per distinct head is enough.
    vouched: dict[tuple[int, str], tuple[int, Checkpoint]] = {}
    checked = 0
    for number, line in enumerate(lines, start=1):
        try:
            checkpoint = checkpoint_parse(line)
        except CheckpointLineError as exc:
            bad_lines.append(f"line {number} is not a checkpoint ({exc})")
            continue
        if checkpoint is None:
            continue
        checked += 1
        if not checkpoint_authentic(key, checkpoint):
            bad_lines.append(
                f"line {number} (#{checkpoint.seq}, {checkpoint.at}) is forged or altered: "
                "its seal does not verify with AUDIT_MAC_KEY"
            )
            continue
        vouched.setdefault((checkpoint.seq, checkpoint.mac), (number, checkpoint))

    problems = bad_lines[:_LISTED]
    if len(bad_lines) > _LISTED:
        problems.append(f"... and {len(bad_lines) - _LISTED} more bad lines")

    last_event = AuditEvent.objects.aggregate(last=Max("seq"))["last"] or 0
    wanted = sorted({seq for seq, _ in vouched if 0 < seq <= last_event})
    macs: dict[int, str] = {}
    for start in range(0, len(wanted), 1000):
        macs.update(AuditEvent.objects.filter(seq__in=wanted[start : start + 1000]).values_list("seq", "mac"))

    beyond: tuple[int, Checkpoint] | None = None
    for (seq, mac), (number, checkpoint) in sorted(vouched.items()):
        if seq == 0:
            if mac != GENESIS:
                problems.append(f"line {number} (#0, {checkpoint.at}) does not carry the genesis MAC")
        elif seq > last_event:
            if beyond is None or seq > beyond[1].seq:
                beyond = (number, checkpoint)
        elif seq not in macs:
            problems.append(f"event #{seq} is missing: the checkpoint on line {number} ({checkpoint.at}) saw it")
        elif macs[seq] != mac:
            problems.append(
                f"event #{seq} was rewritten: its MAC differs from the checkpoint on line {number} ({checkpoint.at})"
            )
    if beyond is not None:
        number, checkpoint = beyond
        problems.insert(
            0,
            f"truncated: the checkpoint on line {number} ({checkpoint.at}) saw event #{checkpoint.seq}, "
            f"but the trail now ends at #{last_event}: events #{last_event + 1}..#{checkpoint.seq} were deleted",
        )
    last_seq = max((seq for seq, _ in vouched), default=0)
    return CheckpointReport(not problems, checked, last_seq, tuple(problems))
