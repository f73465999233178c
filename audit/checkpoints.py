"""The audit head's checkpoint: a sequence number, that event's MAC and a time, sealed with the
audit MAC key and kept outside the database. No Django import.

Why: the chain head row lives in the same database as the events, so a table owner who deletes
the newest events can rewind it too, and the chain then verifies. A checkpoint shipped elsewhere
(the JSON log, an append-only file) remembers how far the chain reached and with which MAC; a
chain that no longer reaches that far, or reaches it with another MAC, was cut or rewritten.

A checkpoint is one JSON object, the same fields in the checkpoint file and in the log record::

    {"at": "2026-05-01T12:00:00.123456+00:00", "checkpoint_mac": "<64 hex>", "mac": "<64 hex>", "seq": 42}

``seq`` 0 with the genesis MAC is the checkpoint of an empty trail.
"""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from audit.chain import compute_mac

LOGGER = "audit.checkpoint"
# Only in the sealed content, so a checkpoint's MAC can never be passed off as an event's (event
# content has no "kind") nor an event's as a checkpoint's.
_KIND = "audit.checkpoint"
_HEX64 = re.compile(r"[0-9a-f]{64}")


class CheckpointLineError(ValueError):
    """A line that should be a checkpoint and is not one."""


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    mac: str  # event ``seq``'s MAC; the genesis MAC when seq is 0
    at: str  # when the head was read, ISO 8601; sealed as this exact string
    checkpoint_mac: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_line(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))


def _seal(key: bytes, seq: int, mac: str, at: str) -> str:
    # The checkpoint chains onto the event it vouches for, as an event chains onto the one before.
    return compute_mac(key, {"kind": _KIND, "seq": seq, "at": at}, mac)


def checkpoint_seal(key: bytes, *, seq: int, mac: str, at: str) -> Checkpoint:
    return Checkpoint(seq=seq, mac=mac, at=at, checkpoint_mac=_seal(key, seq, mac, at))


def checkpoint_authentic(key: bytes, checkpoint: Checkpoint) -> bool:
    """True when the checkpoint was sealed with ``key`` and not changed since."""
    expected = _seal(key, checkpoint.seq, checkpoint.mac, checkpoint.at)
    return hmac.compare_digest(expected, checkpoint.checkpoint_mac)


def checkpoint_parse(line: str) -> Checkpoint | None:
    """One line of a checkpoint file, or of an export of the JSON log, as a checkpoint.

    None for a blank line and for another logger's record (a log export can be checked as it
    is); ``CheckpointLineError`` for anything else that is not a well-formed checkpoint. The
    seal is not checked here: see ``checkpoint_authentic``."""
    if not line.strip():
        return None
    try:
        data = json.loads(line)
    except ValueError:
        raise CheckpointLineError("not JSON") from None
    if not isinstance(data, dict):
        raise CheckpointLineError("not a JSON object")
    if "logger" in data and data["logger"] != LOGGER:
        return None
    seq, mac, at, seal = (data.get(name) for name in ("seq", "mac", "at", "checkpoint_mac"))
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise CheckpointLineError("seq is not a sequence number")
    if not isinstance(mac, str) or not _HEX64.fullmatch(mac):
        raise CheckpointLineError("mac is not a MAC")
    if not isinstance(at, str) or not at:
        raise CheckpointLineError("at is missing")
    if not isinstance(seal, str) or not _HEX64.fullmatch(seal):
        raise CheckpointLineError("checkpoint_mac is not a MAC")
    return Checkpoint(seq=seq, mac=mac, at=at, checkpoint_mac=seal)
