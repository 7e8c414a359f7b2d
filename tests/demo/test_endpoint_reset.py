"""The out-of-process moto endpoint's reset survives a dropped connection: the POST is
sent again (a reset is idempotent), and a server that keeps dropping it is an error.

A real TCP server on 127.0.0.1 stands in for the endpoint: it resets (RST) the first
``drops`` connections and answers the next ones with HTTP 200."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from controller.demo import backend as demo_backend


@contextmanager
def dropping_endpoint(drops: int) -> Iterator[tuple[str, list[bytes]]]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    requests: list[bytes] = []

    def serve() -> None:
        for n in range(demo_backend.RESET_ATTEMPTS):
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                requests.append(connection.recv(4096))
                if n < drops:  # close with SO_LINGER 0: the client reads ECONNRESET
                    connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    continue
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\nConnection: close\r\n\r\n"
                    b'{"status":"ok"}'
                )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", requests
    finally:
        listener.close()
        thread.join(timeout=10)


def endpoint(url: str) -> demo_backend.MotoBatch:
    return demo_backend.MotoBatch(server=None, endpoint=url, _stop=threading.Event())


def test_reset_is_sent_again_after_a_dropped_connection() -> None:
    """Two connections reset by the server, the third answered: reset() returns, and the
    server saw three POSTs to /moto-api/reset."""
    with dropping_endpoint(drops=2) as (url, requests):
        endpoint(url).reset()
    assert len(requests) == 3
    assert all(r.startswith(b"POST /moto-api/reset ") for r in requests)


def test_reset_gives_up_after_its_attempts() -> None:
    """Every attempt dropped: the connection error reaches the caller after
    RESET_ATTEMPTS tries, instead of a test running against an unreset moto."""
    with (
        dropping_endpoint(drops=demo_backend.RESET_ATTEMPTS) as (url, requests),
        pytest.raises(ConnectionError),
    ):
        endpoint(url).reset()
    assert len(requests) == demo_backend.RESET_ATTEMPTS
