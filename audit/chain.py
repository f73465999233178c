"""The audit chain's MAC: canonical content → HMAC-SHA256. No Django import."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

GENESIS = "0" * 64


def canonical(content: dict[str, Any], prev_mac: str) -> bytes:
    """Stable bytes for an event: sorted keys, no whitespace, the previous MAC included."""
    return json.dumps({**content, "prev_mac": prev_mac}, sort_keys=True, separators=(",", ":"), default=str).encode()


def compute_mac(key: bytes, content: dict[str, Any], prev_mac: str) -> str:
    return hmac.new(key, canonical(content, prev_mac), hashlib.sha256).hexdigest()
