"""Per-request context (request id, origin IP) that services read without being handed the
request: set by ``RequestContextMiddleware``, empty in commands and tasks."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")

request_id: ContextVar[str] = ContextVar("request_id", default="")
origin_ip: ContextVar[str | None] = ContextVar("origin_ip", default=None)


def new_request_id(candidate: str | None = None) -> str:
    """The caller's ``X-Request-ID`` when it is a safe token, else a fresh one."""
    if candidate and REQUEST_ID_RE.fullmatch(candidate):
        return candidate
    return uuid.uuid4().hex
