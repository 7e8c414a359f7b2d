"""A real git server on 127.0.0.1 (``git daemon``) behind a counting TCP proxy.

The proxy is what lets the benchmark say what a poll costs on the wire: how many
connections the controller opened, how many bytes went each way, and whether
any of them asked for objects. Git protocol v2 names each request
(``command=ls-refs`` for ``ls-remote``, ``command=fetch`` for a fetch), so the
client's bytes tell which one it was.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT = 10.0


@dataclass
class Connection:
    sent: bytearray = field(default_factory=bytearray)  # client -> server
    received: int = 0  # server -> client bytes

    @property
    def fetched(self) -> bool:
        return b"command=fetch" in self.sent

    @property
    def listed_refs(self) -> bool:
        return b"command=ls-refs" in self.sent


class CountingProxy:
    """Forward 127.0.0.1:<port> to the git daemon, recording every connection."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.connections: list[Connection] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._closed = False
        threading.Thread(target=self._accept, name="git-proxy", daemon=True).start()

    def reset(self) -> None:
        with self._lock:
            self.connections = []

    def snapshot(self) -> list[Connection]:
        with self._lock:
            return list(self.connections)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            record = Connection()
            with self._lock:
                self.connections.append(record)
            threading.Thread(target=self._serve, args=(client, record), daemon=True).start()

    def _serve(self, client: socket.socket, record: Connection) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=30)
        except OSError:  # the git daemon is gone (stopping): the client sees a closed socket
            client.close()
            return

        def pump(source: socket.socket, target: socket.socket, upward: bool) -> None:
            with contextlib.suppress(OSError):
                while chunk := source.recv(65536):
                    if upward:
                        record.sent.extend(chunk)
                    else:
                        record.received += len(chunk)
                    target.sendall(chunk)
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_WR)

        up = threading.Thread(target=pump, args=(client, upstream, True), daemon=True)
        up.start()
        pump(upstream, client, False)
        up.join(timeout=30)
        client.close()
        upstream.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()


@dataclass
class GitServer:
    root: Path
    process: subprocess.Popen[bytes]
    proxy: CountingProxy

    def url(self, name: str) -> str:
        """The URL of ``root/name`` through the counting proxy."""
        return f"git://127.0.0.1:{self.proxy.port}/{name}"

    def stop(self) -> None:
        self.proxy.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(root: Path) -> GitServer:
    """Serve every repository under ``root`` read-only over git:// on 127.0.0.1."""
    root.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    process = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--export-all",
            "--listen=127.0.0.1",
            f"--port={port}",
            f"--base-path={root}",
            str(root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            break
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("git daemon did not start (is git installed with git-daemon?)")
        time.sleep(0.05)
    return GitServer(root, process, CountingProxy(port))
