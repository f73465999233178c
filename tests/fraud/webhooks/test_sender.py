"""The POST itself against receivers that misbehave at the socket level: a whole attempt stays
within its deadline, and whatever comes back is an answer or an error, never an exception."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from fraud.webhooks.addresses import destination_parse
from fraud.webhooks.sender import post


def serving(handle: Callable[[socket.socket], None]) -> Iterator[str]:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def accept() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.recv(65536)
            with contextlib.suppress(OSError):
                handle(conn)

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}/hooks"
    finally:
        listener.close()


def trickle(conn: socket.socket) -> None:
    """A header byte every 0.2 s: each read is quick, the answer never ends."""
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200:
        conn.sendall(bytes([byte]))
        time.sleep(0.2)


def garbage(conn: socket.socket) -> None:
    conn.sendall(b"this is not HTTP\r\n\r\n")


@pytest.fixture
def send() -> Callable[[str], object]:
    def _send(url: str):
        dest = destination_parse(url, https_only=False)
        return post(dest, "127.0.0.1", body=b"{}", headers={"Content-Type": "application/json"},
                    connect_timeout=0.5, read_timeout=0.5)  # fmt: skip

    return _send


def test_a_receiver_trickling_its_answer_is_cut_off_at_the_deadline(send):
    for url in serving(trickle):
        started = time.monotonic()
        result = send(url)
        elapsed = time.monotonic() - started

    assert result.status is None
    assert result.error == "no answer within the time allowed"
    assert elapsed < 2.0  # connect 0.5 s + read 0.5 s, and the trickle would take 40 s


def test_an_answer_that_is_not_http_is_an_error_not_an_exception(send):
    for url in serving(garbage):
        result = send(url)

    assert result.status is None
    assert result.error
