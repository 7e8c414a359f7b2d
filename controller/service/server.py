"""HTTP endpoints of the daemon: ``/metrics``, ``/healthz``, ``/readyz``.

``/healthz`` says the process serves requests. ``/readyz`` says the last pass
was recent and could read its source — what a load balancer or Kubernetes
should trust.

Served by waitress, whose bounds are the point: one event loop reads every
request in full (a slow or idle client costs a socket, never a thread), a small
fixed pool of worker threads runs the app, a connection silent for
``idle_timeout`` seconds is closed, open connections are capped (the rest wait
in the listen backlog), and so is a request's body. At start the process's
soft file-descriptor limit is raised to its hard limit (as Go's runtime does),
and the connection cap never takes more than a quarter of it: a flood of
sockets cannot starve a pass of the descriptors its git, SQLite and AWS calls need.
"""

from __future__ import annotations

import json
import resource
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import waitress
from prometheus_client import make_wsgi_app
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.task import ErrorTask, WSGITask
from waitress.utilities import RequestEntityTooLarge

StartResponse = Callable[..., Any]
# Pass results that mean the branch head is not being applied: the source could
# not be read, the pass crashed, or the head was refused (unsigned, too large).
NOT_READY = frozenset({"source-error", "error", "untrusted", "rejected"})


@dataclass
class Health:
    """What the daemon knows about itself; updated after every pass."""

    ready_after: float = 300.0
    started_at: float = field(default_factory=time.time)
    last_pass_at: float = 0.0
    last_success_at: float = 0.0
    source_ok: bool = False
    last_result: str = "pending"
    revision: str = ""
    message: str = ""
    # Invalid manifests of the last revision read: {"path", "field", "message"} each.
    invalid: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def update(
        self,
        *,
        result: str,
        revision: str,
        message: str,
        invalid: list[dict[str, str]] | None = None,
    ) -> None:
        """``invalid``: the pass's manifest errors; None keeps the last known (a pass that
        did not read the source knows none)."""
        with self.lock:
            now = time.time()
            self.last_pass_at = now
            self.last_result = result
            self.source_ok = result not in NOT_READY
            if revision:
                self.revision = revision
            if invalid is not None:
                self.invalid = list(invalid)
            self.message = message or _invalid_message(self.invalid)
            if self.source_ok:
                self.last_success_at = now

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        with self.lock:
            age = time.time() - self.last_success_at if self.last_success_at else None
            ready = self.source_ok and age is not None and age <= self.ready_after
            return ready, {
                "ready": ready,
                "last_result": self.last_result,
                "revision": self.revision,
                "seconds_since_last_good_pass": None if age is None else round(age, 1),
                "message": self.message,
                "invalid_manifests": self.invalid,
            }


def _invalid_message(invalid: list[dict[str, str]]) -> str:
    """``2 invalid manifests, not applied: jobs/a.json, jobs/b.json`` ('' if none)."""
    paths = list(dict.fromkeys(error["path"] for error in invalid))
    if not paths:
        return ""
    shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
    noun = "manifest" if len(paths) == 1 else "manifests"
    return f"{len(paths)} invalid {noun}, not applied: {shown} (see invalid_manifests)"


def make_app(
    health: Health,
    extra: dict[str, Callable[[dict[str, Any], StartResponse], Iterable[bytes]]] | None = None,
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    metrics_app = make_wsgi_app()
    routes = dict(extra or {})

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics_app(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            return _json(start_response, "200 OK", {"alive": True})
        if path == "/readyz":
            ready, body = health.readiness()
            return _json(start_response, "200 OK" if ready else "503 Service Unavailable", body)
        if path in routes:
            return routes[path](environ, start_response)
        return _json(start_response, "404 Not Found", {"error": "not found"})

    return app


def _json(start_response: StartResponse, status: str, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]


# Worker threads: requests are tiny (a scrape, a probe, a webhook doorbell) and are read
# in full before a worker sees them, so a few threads serve hundreds of clients.
WORKER_THREADS = 4
# Connections the kernel may hold before we accept them (listen(2) backlog).
LISTEN_BACKLOG = 1024
# Largest request body on these endpoints when none is given (the webhook passes its own).
MAX_BODY_BYTES = 1024 * 1024


@dataclass
class HttpServer:
    """A running server: ``server_name``/``server_port`` are bound; ``shutdown()`` stops it."""

    server: Any
    socket_map: dict[int, Any]
    thread: threading.Thread

    @property
    def server_name(self) -> str:
        return str(self.server.effective_host)

    @property
    def server_port(self) -> int:
        return int(self.server.effective_port)

    @property
    def connection_limit(self) -> int:
        return int(self.server.adj.connection_limit)

    def open_connections(self) -> int:
        """Client connections open right now (the listening socket and waker excluded)."""
        return len(self.server.active_channels)

    def shutdown(self) -> None:
        """Stop serving and close every socket (idempotent)."""
        if not self.thread.is_alive():
            return
        # Close every socket from inside the event loop (the only thread that touches
        # them); the loop ends when its map is empty. Then stop the workers.
        self.server.trigger.pull_trigger(lambda: wasyncore.close_all(self.socket_map))
        self.thread.join(timeout=10)
        self.server.task_dispatcher.shutdown()

    def server_close(self) -> None:
        """socketserver's name for closing the listening socket: shutdown() does it."""
        self.shutdown()


def _error_task(channel: Any, request: Any) -> Any:
    """waitress refuses a body over the limit from its Content-Length alone, before
    reading it; let the route answer that refusal (the webhook's JSON 413, its metric and
    log line) instead of waitress's text page. The connection closes after it."""
    if isinstance(request.error, RequestEntityTooLarge) and not request.chunked:
        task = WSGITask(channel, request)
        task.set_close_on_finish()
        return task
    return ErrorTask(channel, request)


class _Channel(HTTPChannel):  # type: ignore[misc]
    error_task_class = staticmethod(_error_task)


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def serve(
    listen: str,
    app: Callable[..., Iterable[bytes]],
    *,
    idle_timeout: int = 10,
    max_connections: int = 1000,
    threads: int = WORKER_THREADS,
    max_body_bytes: int = MAX_BODY_BYTES,
    name: str = "http",
) -> HttpServer:
    """Start serving in a daemon thread; returns the server (``server_port`` is bound)."""
    host, _, port = listen.rpartition(":")
    fd_limit = raise_fd_limit()
    socket_map: dict[int, Any] = {}
    server = waitress.create_server(
        app,
        map=socket_map,
        host=(host or "127.0.0.1").strip("[]"),
        port=int(port),
        threads=threads,
        backlog=LISTEN_BACKLOG,
        connection_limit=max(4, min(max_connections, fd_limit // 4)),
        channel_timeout=idle_timeout,
        cleanup_interval=max(1, idle_timeout // 2),
        # waitress answers 413 itself from Content-Length, before reading the body.
        max_request_body_size=max_body_bytes + 1,
        asyncore_use_poll=True,  # select() breaks on descriptors above 1024
        ident="batch-gitops",
    )
    server.channel_class = _Channel
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    return HttpServer(server, socket_map, thread)
