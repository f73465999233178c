"""One POST of a webhook to an address already checked (``addresses.destination_resolve``):
bounded in time as a whole, never following a redirect, reading at most the first bytes of the
answer. Each POST has its own connection, so the deadline can end it without spoiling a pool.
No Django here."""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from dataclasses import dataclass

import urllib3
import urllib3.connection

from fraud.webhooks.addresses import Destination

EXCERPT_BYTES = 500
# A receiver's answer beyond this is never read (the connection is closed after every POST), so
# one streaming without end costs no memory; the deadline bounds its time.
READ_AT_MOST = 64 * 1024


@dataclass(frozen=True)
class PostResult:
    status: int | None  # None: no HTTP answer (refused, timed out, TLS failed)
    error: str
    duration_ms: float
    excerpt: str


def _connection(dest: Destination, address: str, connect_timeout: float) -> urllib3.connection.HTTPConnection:
    if dest.scheme == "https":
        # Connect to the checked address; the certificate must still be the host's.
        return urllib3.connection.HTTPSConnection(
            address, dest.port, timeout=connect_timeout,
            server_hostname=dest.host, assert_hostname=dest.host, cert_reqs="CERT_REQUIRED",
        )  # fmt: skip
    return urllib3.connection.HTTPConnection(address, dest.port, timeout=connect_timeout)


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
    """POST once, on a connection of its own, within ``connect_timeout + read_timeout`` in all.

    A socket timeout bounds each read, not the answer: a receiver sending a byte every few seconds
    would hold the worker for as long as it liked (and past its lease, so that another worker sent
    the event again). A watchdog shuts the socket at the deadline, which ends any read in progress."""
    started = time.perf_counter()
    conn = _connection(dest, address, connect_timeout)
    watchdog = threading.Timer(connect_timeout + read_timeout, _shut, args=(conn,))
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(read_timeout)
        conn.request(
            "POST", dest.target, body=body, headers={**headers, "Host": dest.host_header}, preload_content=False
        )
        response = conn.getresponse()
        raw = response.read(READ_AT_MOST)
        status = response.status
    except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
        error = "no answer within the time allowed" if not watchdog.is_alive() else _reason(exc)
        return PostResult(None, error, (time.perf_counter() - started) * 1000, "")
    finally:
        watchdog.cancel()
        conn.close()
    return PostResult(status, "", (time.perf_counter() - started) * 1000, _printable(raw))


def _shut(conn: urllib3.connection.HTTPConnection) -> None:
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed: nothing to end
            sock.shutdown(socket.SHUT_RDWR)


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
