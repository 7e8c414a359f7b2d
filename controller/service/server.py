"""HTTP endpoints of the daemon: ``/metrics``, ``/healthz``, ``/readyz``.

``/healthz`` says the process serves requests. ``/readyz`` says the last pass
was recent and could read its source — what a load balancer or Kubernetes
should trust. A threaded WSGI server from the standard library is enough for
a scrape every few seconds.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

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


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


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


def serve(listen: str, app: Callable[..., Iterable[bytes]]) -> WSGIServer:
    """Start serving in a daemon thread; returns the server (``server_port`` is bound)."""
    host, _, port = listen.rpartition(":")
    server = make_server(
        host or "127.0.0.1", int(port), app, server_class=_Server, handler_class=_QuietHandler
    )
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
