"""The only writer of the audit trail. Call ``audit_record`` inside the same database
transaction as the change it describes: both commit or neither does."""

from __future__ import annotations

import logging
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from audit.chain import GENESIS, compute_mac
from audit.checkpoints import LOGGER, Checkpoint, checkpoint_seal
from audit.models import ActorType, AuditChainHead, AuditEvent
from cipherguard import context

if TYPE_CHECKING:  # the audit trail sits below the apps that record in it; it only types its actor
    from accounts.models import User

checkpoint_logger = logging.getLogger(LOGGER)

# Never recorded, whatever a caller passes: secrets and card data do not belong in the trail.
_REDACTED_KEYS = {"password", "token", "access", "refresh", "card_number", "pan", "cvv", "cvc", "secret"}


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("[redacted]" if k.lower() in _REDACTED_KEYS else _scrub(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def event_content(event: AuditEvent) -> dict[str, Any]:
    """What the MAC covers: every field but the MACs themselves."""
    return {
        "seq": event.seq,
        "occurred_at": event.occurred_at.isoformat(),
        "actor_type": event.actor_type,
        "actor_id": event.actor_id,
        "actor_label": event.actor_label,
        "event_type": event.event_type,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "before": event.before,
        "after": event.after,
        "success": event.success,
        "origin_ip": event.origin_ip,
        "request_id": event.request_id,
    }


def mac_key() -> bytes:
    return settings.AUDIT_MAC_KEY.encode()


def audit_record(
    *,
    event_type: str,
    actor: User | None = None,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    success: bool = True,
    actor_label: str | None = None,
    occurred_at: datetime | None = None,
) -> AuditEvent:
    """Append one event to the chain.

    Appends are serialised by locking the chain head row (``SELECT … FOR UPDATE``): concurrent
    writers queue there, so each reads the true last MAC and the chain never forks. The head
    moves in the same transaction, which is also the caller's."""
    with transaction.atomic():
        head = AuditChainHead.objects.select_for_update().filter(singleton=1).first()
        if head is None:
            # Only on a database emptied after migrating: writers racing to create the head row
            # meet the unique constraint, and the losers take the winner's row.
            try:
                with transaction.atomic():
                    AuditChainHead.objects.create(singleton=1, seq=0, mac="")
            except IntegrityError:
                pass
            head = AuditChainHead.objects.select_for_update().get(singleton=1)
        if obj is not None:
            object_type = object_type or obj._meta.label_lower
            object_id = object_id or str(obj.pk)
        if actor is None:
            actor_type = ActorType.SYSTEM
        elif actor.is_api_client:
            actor_type = ActorType.API_CLIENT
        else:
            actor_type = ActorType.USER
        event = AuditEvent(
            seq=head.seq + 1,
            occurred_at=occurred_at or timezone.now(),
            actor_type=actor_type,
            actor=actor if actor is not None and actor.pk else None,
            actor_label=actor_label or (actor.get_username() if actor is not None else "system"),
            event_type=event_type,
            object_type=object_type,
            object_id=str(object_id),
            before=_scrub(before),
            after=_scrub(after),
            success=success,
            origin_ip=context.origin_ip.get(),
            request_id=context.request_id.get(),
            prev_mac=head.mac or GENESIS,
        )
        event.mac = compute_mac(mac_key(), event_content(event), event.prev_mac)
        event.save(force_insert=True)
        head.seq, head.mac = event.seq, event.mac
        head.save(update_fields=["seq", "mac"])
    return event


def changes(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Only the keys whose values differ, as (before, after)."""
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}


def audit_checkpoint_write() -> Checkpoint:
    """Anchor the chain head outside the database: seal (seq, MAC, now) with the audit MAC key,
    log it on ``audit.checkpoint`` (the fields as the record's extras, so the JSON log carries
    them) and append it as one JSON line to ``AUDIT_CHECKPOINT_FILE``.

    An empty trail gets a checkpoint too (seq 0, the genesis MAC): a gap in the checkpoints then
    always means the writer stopped, never that there was nothing to say."""
    # No lock: the head row and its event commit in one transaction, so this read sees a head
    # whose event exists; an append racing it is simply in the next checkpoint.
    head = AuditChainHead.objects.filter(singleton=1).first()
    seq, mac = (head.seq, head.mac or GENESIS) if head is not None else (0, GENESIS)
    checkpoint = checkpoint_seal(mac_key(), seq=seq, mac=mac, at=timezone.now().isoformat())
    # The log first: it is shipped off the host at once, so it holds even when the file cannot
    # be written (which then fails the task, and the task-failure alert says so).
    checkpoint_logger.info("audit checkpoint #%s", seq, extra=checkpoint.as_dict())
    path = Path(settings.AUDIT_CHECKPOINT_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    # One write of one short line in append mode: concurrent writers cannot interleave within it.
    with path.open("a", encoding="utf-8") as file:
        file.write(checkpoint.to_line() + "\n")
        file.flush()
        os.fsync(file.fileno())
    return checkpoint
