"""Real git remotes on 127.0.0.1 that tests can break and restore.

* :class:`BareRemote`: a bare repository fed by pushes from a working
  :class:`~tests.conftest.GitRepo` (force-push and branch deletion included);
  reachable as ``file://`` or through a :class:`GitDaemon`;
* :class:`GitDaemon`: ``git daemon`` serving a base directory on a fixed port,
  stopped and started again on the same port;
* :class:`Blackhole`: a TCP listener that accepts connections and never answers
  (``hang``: a hung server), closes them at once (``close``: a flaky one), or
  forwards them to a real port (``forward``; ``forward-once`` relays one
  connection, then closes the following ones);
* :class:`GitHttp`: ``git http-backend`` over HTTP with a bearer token, which can
  hang or answer 503.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path

from tests.conftest import GitRepo
from tests.support.ports import free_port
from tests.support.waiting import wait_until


def accepts(port: int) -> bool:
    """Whether something accepts a connection on 127.0.0.1:``port`` right now."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def wait_port(port: int, timeout: float = 5.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:``port``."""
    wait_until(f"something to listen on 127.0.0.1:{port}", lambda: accepts(port), timeout, 0.02)


class BareRemote:
    """``<base>/batch.git``, pushed to from ``work``."""

    def __init__(self, base: Path, work: GitRepo) -> None:
        self.base = base
        self.path = base / "batch.git"
        self.work = work
        base.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "init", "-q", "--bare", "-b", "main", str(self.path)],
            check=True,
            capture_output=True,
        )
        # a remote's default branch can be deleted by a push (forges allow it too)
        subprocess.run(
            ["git", "-C", str(self.path), "config", "receive.denyDeleteCurrent", "ignore"],
            check=True,
        )
        work.git("remote", "add", "origin", str(self.path))

    @property
    def file_url(self) -> str:
        return self.path.as_uri()

    def push(self, *, force: bool = False, ref: str = "main") -> None:
        args = ["push", "-q", "origin", f"{ref}:refs/heads/main"]
        self.work.git(*([*args, "--force"] if force else args))

    def delete_branch(self) -> None:
        self.work.git("push", "-q", "origin", ":refs/heads/main")

    def move_away(self) -> Path:
        aside = self.path.with_name("moved-away.git")
        self.path.rename(aside)
        return aside

    def move_back(self, aside: Path) -> None:
        aside.rename(self.path)

    def remove(self) -> None:
        shutil.rmtree(self.path)


class GitDaemon:
    """``git daemon`` on 127.0.0.1:``port`` exporting every repository under ``base``."""

    def __init__(self, base: Path, port: int | None = None) -> None:
        self.base = base
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, name: str = "batch.git") -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "git",
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--informative-errors",
                f"--base-path={self.base}",
                "--listen=127.0.0.1",
                f"--port={self.port}",
                str(self.base),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its per-connection children die with it
        )
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc is None:
            return
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=5)
        self.proc = None
        # The port must really refuse before the test goes on.
        port = self.port
        wait_until("git daemon to stop answering", lambda: not accepts(port), 5, 0.02)


class Blackhole:
    """A port that hangs every connection (``hang``) or relays it to ``target`` (``forward``)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.mode = "hang"
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.held: list[socket.socket] = []
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.mode == "hang":
                self.held.append(conn)  # accepted, read nothing, answer nothing
                continue
            if self.mode == "close":
                conn.close()
                continue
            if self.mode == "forward-once":
                self.mode = "close"
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    def url(self, name: str = "batch.git") -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()
        for conn in self.held:
            conn.close()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class GitHttp:
    """Smart HTTP for the repositories under ``base``: ``git http-backend`` behind a tiny
    threaded HTTP server on 127.0.0.1, requiring ``Authorization: Bearer <token>``.

    ``mode``: ``serve``; ``hang`` (read the request, never answer); ``down`` (HTTP 503).
    """

    def __init__(self, base: Path, token: str) -> None:
        self.base, self.token, self.mode = base, token, "serve"
        self.release = threading.Event()  # lets hung handlers go at close()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                outer._handle(self)

            def do_POST(self) -> None:
                outer._handle(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, name: str = "batch.git") -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def _handle(self, request: http.server.BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        if self.mode == "hang":
            self.release.wait(60)
            return
        if self.mode == "down":
            request.send_response(503)
            request.end_headers()
            return
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            request.send_response(401)
            request.send_header("WWW-Authenticate", 'Bearer realm="git"')
            request.end_headers()
            return
        path, _, query = request.path.partition("?")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.base),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": request.command,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_CONTENT_ENCODING": request.headers.get("Content-Encoding", ""),
            "GIT_PROTOCOL": request.headers.get("Git-Protocol", ""),
            "REMOTE_ADDR": "127.0.0.1",
        }
        out = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, timeout=30
        ).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode().splitlines():
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.split()[0])
            else:
                headers.append((key, value.strip()))
        request.send_response(status)
        for key, value in headers:
            request.send_header(key, value)
        request.end_headers()
        request.wfile.write(payload)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
