"""One POST of a webhook to an address already checked (``addresses.destination_resolve``):
bounded in time, never following a redirect, reading at most the first bytes of the answer.
No Django here."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import urllib3

from fraud.webhooks.addresses import Destination

EXCERPT_BYTES = 500
# A receiver's answer beyond this is not read: the connection is closed instead of drained, so a
# receiver streaming without end cannot hold a worker.
READ_AT_MOST = 64 * 1024


@dataclass(frozen=True)
class PostResult:
    status: int | None  # None: no HTTP answer (refused, timed out, TLS failed)
    error: str
    duration_ms: float
    excerpt: str


_pools: dict[tuple[str, str, int, str], urllib3.HTTPConnectionPool] = {}
_pools_lock = threading.Lock()


def _pool(dest: Destination, address: str, connect_timeout: float, read_timeout: float) -> urllib3.HTTPConnectionPool:
    """Kept-alive connections per (scheme, address, port, host): most events go to a few endpoints."""
    key = (dest.scheme, address, dest.port, dest.host)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
            if dest.scheme == "https":
                # Connect to the checked address; the certificate must still be the host's.
                pool = urllib3.HTTPSConnectionPool(
                    address, dest.port, timeout=timeout, maxsize=4, retries=False,
                    server_hostname=dest.host, assert_hostname=dest.host, cert_reqs="CERT_REQUIRED",
                )  # fmt: skip
            else:
                pool = urllib3.HTTPConnectionPool(address, dest.port, timeout=timeout, maxsize=4, retries=False)
            _pools[key] = pool
    return pool


def _printable(raw: bytes) -> str:
    text = raw[:EXCERPT_BYTES].decode("utf-8", errors="replace")
    return "".join(c if c.isprintable() or c in "\n\t" else "?" for c in text)


def post(
    dest: Destination,
    address: str,
    *,
    body: bytes,
    headers: dict[str, str],
    connect_timeout: float,
    read_timeout: float,
) -> PostResult:
    started = time.perf_counter()
    pool = _pool(dest, address, connect_timeout, read_timeout)
    try:
        response = pool.urlopen(
            "POST", dest.target, body=body, headers={**headers, "Host": dest.host_header},
            redirect=False, retries=False, preload_content=False, assert_same_host=False,
        )  # fmt: skip
    except urllib3.exceptions.HTTPError as exc:
        return PostResult(None, _reason(exc), (time.perf_counter() - started) * 1000, "")
    try:
        raw = response.read(READ_AT_MOST)
        finished = response.length_remaining in (0, None) and not response.read(1)
    except urllib3.exceptions.HTTPError:
        raw, finished = b"", False
    if finished:
        response.release_conn()
    else:
        response.close()
    duration = (time.perf_counter() - started) * 1000
    return PostResult(response.status, "", duration, _printable(raw))


def _reason(exc: Exception) -> str:
    """What went wrong, short and without the address details urllib3 repeats."""
    # NewConnectionError is a ConnectTimeoutError in urllib3 2: ask for it first.
    if isinstance(exc, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ProtocolError):
        text = str(exc)
        if "refused" in text.lower():
            return "connection refused"
        if "timed out" in text.lower():
            return "connection timed out"
        return ("connection failed: " + text.split(": ", 1)[-1])[:300]
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return "connection timed out"
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return "no answer within the read timeout"
    if isinstance(exc, urllib3.exceptions.SSLError):
        return "TLS failed: " + str(exc.args[-1] if exc.args else exc)[:200]
    return f"{type(exc).__name__}: {exc}"[:300]
