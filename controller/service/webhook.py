"""``POST /webhook``: a GitHub or GitLab push event asks for a pass now.

The event is only a doorbell. Its payload is never read for content — the pass
fetches the branch itself — so a forged body can at most cause one extra fetch,
and only with the shared secret. GitHub signs the body with HMAC-SHA256
(``X-Hub-Signature-256: sha256=<hex>``); GitLab sends the secret as
``X-Gitlab-Token``. Both are compared in constant time. Each delivery id
(``X-GitHub-Delivery`` / ``X-Gitlab-Event-UUID``) is accepted once: a replayed
request is refused like an unsigned one (401), with a metric and a log line,
and never triggers a pass. :func:`serve_endpoints` mounts it for the daemon: beside
``/metrics`` on ``listen``, or alone on ``webhook_listen`` (its own port, as Flux's
notification receiver and Argo CD's webhook do), so that what GitHub can reach
serves nothing else and a flood of it cannot slow a health probe.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import structlog
from pydantic import SecretStr

from controller import metrics
from controller.service.server import Health, HttpServer, make_app, serve
from controller.settings import Settings

log = structlog.get_logger(__name__)

StartResponse = Callable[..., Any]
PUSH_EVENTS = {"github": {"push"}, "gitlab": {"Push Hook", "Tag Push Hook"}}
# GitHub's connectivity check: acknowledged, never a pass.
PING_EVENTS = {"github": {"ping"}, "gitlab": set()}


def load_secret(value: SecretStr | None, file: Path | None) -> SecretStr | None:
    """The webhook secret from a mounted file (wins) or the environment; never the repo."""
    if file is not None:
        text = file.read_text(encoding="utf-8").strip()
        if not text:
            raise ValueError(f"{file}: the webhook secret file is empty")
        return SecretStr(text)
    if value is not None and not value.get_secret_value():
        return None
    return value


class ReplayGuard:
    """Delivery ids seen recently; bounded in count and age so memory stays flat."""

    def __init__(self, capacity: int = 10_000, ttl: float = 7 * 24 * 3600.0) -> None:
        self.capacity = capacity
        self.ttl = ttl
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, delivery: str) -> bool:
        now = time.monotonic()
        with self._lock:
            while self._seen and (
                len(self._seen) >= self.capacity or now - next(iter(self._seen.values())) > self.ttl
            ):
                self._seen.popitem(last=False)
            if delivery in self._seen:
                return False
            self._seen[delivery] = now
            return True


class Webhook:
    """The WSGI route. ``on_push`` is called (with no payload) for each accepted push."""

    def __init__(
        self,
        secret: SecretStr,
        on_push: Callable[[], None],
        *,
        max_bytes: int = 1024 * 1024,
        replays: ReplayGuard | None = None,
    ) -> None:
        self._secret = secret.get_secret_value().encode()
        self.on_push = on_push
        self.max_bytes = max_bytes
        self.replays = replays or ReplayGuard()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        provider = _provider(environ)
        status, result, detail = self._handle(environ, provider)
        metrics.WEBHOOK_REQUESTS.labels(provider=provider, result=result).inc()
        log_event = log.info if result in ("accepted", "ignored") else log.warning
        log_event("webhook", provider=provider, result=result, detail=detail)
        body = json.dumps({"result": result, "detail": detail}).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        if status.startswith("405"):
            headers.append(("Allow", "POST"))
        start_response(status, headers)
        return [body]

    def _handle(self, environ: dict[str, Any], provider: str) -> tuple[str, str, str]:
        if environ.get("REQUEST_METHOD") != "POST":
            return "405 Method Not Allowed", "bad-request", "use POST"
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return "400 Bad Request", "bad-request", "bad Content-Length"
        if length > self.max_bytes or length < 0:
            return "413 Payload Too Large", "too-large", f"body over {self.max_bytes} bytes"
        # Read exactly Content-Length (never "until EOF") and no more than the cap.
        body = environ["wsgi.input"].read(length) if length else b""
        if provider == "github":
            given = str(environ.get("HTTP_X_HUB_SIGNATURE_256", ""))
            expected = "sha256=" + hmac.new(self._secret, body, hashlib.sha256).hexdigest()
            authentic = hmac.compare_digest(given.encode(), expected.encode())
            event = str(environ.get("HTTP_X_GITHUB_EVENT", ""))
            delivery = str(environ.get("HTTP_X_GITHUB_DELIVERY", ""))
        elif provider == "gitlab":
            given = str(environ.get("HTTP_X_GITLAB_TOKEN", ""))
            authentic = hmac.compare_digest(given.encode(), self._secret)
            event = str(environ.get("HTTP_X_GITLAB_EVENT", ""))
            delivery = str(environ.get("HTTP_X_GITLAB_EVENT_UUID", ""))
        else:
            return "401 Unauthorized", "unauthorized", "neither a GitHub nor a GitLab request"
        if not authentic:
            return "401 Unauthorized", "unauthorized", "bad or missing signature"
        if not delivery or len(delivery) > 200:
            return "401 Unauthorized", "unauthorized", "missing delivery id"
        if not self.replays.first_time(f"{provider}:{delivery}"):
            return "401 Unauthorized", "replay", "delivery already seen"
        if event in PING_EVENTS[provider]:
            return "200 OK", "ignored", "ping"
        if event not in PUSH_EVENTS[provider]:
            return "202 Accepted", "ignored", "not a push event"
        self.on_push()
        return "202 Accepted", "accepted", "pass requested"


def _provider(environ: dict[str, Any]) -> str:
    if "HTTP_X_GITHUB_EVENT" in environ or "HTTP_X_HUB_SIGNATURE_256" in environ:
        return "github"
    if "HTTP_X_GITLAB_EVENT" in environ or "HTTP_X_GITLAB_TOKEN" in environ:
        return "gitlab"
    return "unknown"


Route = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def webhook_routes(settings: Settings, on_push: Callable[[], None]) -> dict[str, Route]:
    """``{"/webhook": Webhook}`` when a secret is configured, else no route at all."""
    secret = load_secret(settings.webhook_secret, settings.webhook_secret_file)
    if secret is None:
        return {}
    return {"/webhook": Webhook(secret, on_push, max_bytes=settings.webhook_max_bytes)}


def serve_endpoints(
    settings: Settings, health: Health, on_push: Callable[[], None]
) -> tuple[HttpServer, HttpServer | None]:
    """Start the daemon's HTTP servers: ``listen`` (metrics, probes and, unless it has
    its own, the webhook) and ``webhook_listen`` when set (only the webhook)."""
    routes = webhook_routes(settings, on_push)  # {} unless a secret is set
    idle, most = settings.http_idle_timeout, settings.http_max_connections
    if not settings.webhook_listen:
        main = serve(
            settings.listen,
            make_app(health, extra=routes),
            max_body_bytes=settings.webhook_max_bytes,
            idle_timeout=idle,
            max_connections=most,
        )
        return main, None
    main = serve(settings.listen, make_app(health), idle_timeout=idle, max_connections=most)
    hook = serve(
        settings.webhook_listen,
        _only(routes),
        threads=2,
        max_body_bytes=settings.webhook_max_bytes,
        name="webhook-http",
        idle_timeout=idle,
        max_connections=most,
    )
    return main, hook


def _only(routes: dict[str, Route]) -> Route:
    """A WSGI app serving ``routes`` and 404 for everything else (no metrics, no probes)."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        route = routes.get(environ.get("PATH_INFO", ""))
        if route is not None:
            return route(environ, start_response)
        body = b'{"error": "not found"}'
        start_response(
            "404 Not Found",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return app
