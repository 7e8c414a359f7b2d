"""A stand-in for the forge and chat APIs the controller calls, on 127.0.0.1.

It implements only what batch-gitops uses, and checks each request against the
shape GitHub and GitLab document, recording a problem (``errors``) instead of
guessing:

- GitHub (``/repos/{owner}/{repo}/statuses/{sha}``, and under ``/api/v3`` as GitHub
  Enterprise serves it): POST, ``Authorization: Bearer <token>`` (or ``token``),
  ``Accept: application/vnd.github+json``, ``X-GitHub-Api-Version``, a
  ``User-Agent``; JSON ``state`` in pending/success/failure/error, ``description``
  of at most 140 characters, ``context``, optional ``target_url``; 201 with the status.
- GitLab (``/api/v4/projects/:id/statuses/:sha``): POST, ``PRIVATE-TOKEN``, ``:id``
  numeric or a URL-encoded path (``group%2Fname``); JSON ``state`` in
  pending/running/success/failed/canceled, ``name``, ``target_url``, ``description``.
  Like GitLab, posting the state a status already has (running -> running) is a
  400 "Cannot transition status"; a finished status is replaced by a new one.
- A Slack-style incoming webhook (``/hooks/...``): POST with a JSON ``text``; "ok".

``fail_next(code, times)`` makes the next requests answer ``code`` (500, 401, ...).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GITHUB_STATES = {"pending", "success", "failure", "error"}
GITLAB_STATES = {"pending", "running", "success", "failed", "canceled"}
GITLAB_FINISHED = {"success", "failed", "canceled"}
SHA = re.compile(r"^[0-9a-f]{40}$")
GITHUB_PATH = re.compile(
    r"^(?:/api/v3)?/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/statuses/(?P<sha>[^/]+)$"
)
GITLAB_PATH = re.compile(r"^/api/v4/projects/(?P<project>[^/]+)/statuses/(?P<sha>[^/]+)$")


@dataclass
class Received:
    method: str
    path: str  # raw, as sent (percent-encoding kept)
    headers: dict[str, str]
    body: Any
    answered: int = 0


@dataclass
class ForgeState:
    github_token: str = "ghp-stand-in-token"
    gitlab_token: str = "glpat-stand-in-token"
    received: list[Received] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # (repo or project, sha, context) -> states posted, in order
    statuses: dict[tuple[str, str, str], list[dict[str, Any]]] = field(default_factory=dict)
    hooks: list[dict[str, Any]] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    echo_token_in_errors: bool = False
    fail_only: str = ""  # fail_next applies only to paths starting with this
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, code: int, times: int = 1) -> None:
        with self.lock:
            self.failures = [code] * times

    def posted(self, sha: str, kind: str = "github") -> list[dict[str, Any]]:
        with self.lock:
            return [
                status
                for (where, commit, _), states in self.statuses.items()
                if commit == sha and where.startswith(kind + ":")
                for status in states
            ]

    def count(self, prefix: str) -> int:
        with self.lock:
            return sum(1 for r in self.received if r.path.startswith(prefix))


class _Handler(BaseHTTPRequestHandler):
    state: ForgeState

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._reply(405, {"message": "only POST is implemented"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        record = Received("POST", self.path, dict(self.headers), body)
        state = self.state
        with state.lock:
            state.received.append(record)
            applies = state.failures and self.path.startswith(state.fail_only)
            forced = state.failures.pop(0) if applies else None
        if forced is not None:
            record.answered = forced
            message = "Bad credentials" if forced == 401 else "Server Error"
            if state.echo_token_in_errors:  # a hostile forge: the token must still not leak
                message += (
                    " for "
                    + self.headers.get("Authorization", "")
                    + self.headers.get("PRIVATE-TOKEN", "")
                )
            self._reply(forced, {"message": message})
            return
        if self.path.startswith("/hooks/"):
            code, answer = self._hook(body)
        elif GITHUB_PATH.match(self.path):
            code, answer = self._github(GITHUB_PATH.match(self.path), body)  # type: ignore[arg-type]
        elif GITLAB_PATH.match(self.path):
            code, answer = self._gitlab(GITLAB_PATH.match(self.path), body)  # type: ignore[arg-type]
        else:
            code, answer = 404, {"message": "Not Found"}
            self._error(f"unexpected path {self.path}")
        record.answered = code
        self._reply(code, answer)

    def _error(self, text: str) -> None:
        with self.state.lock:
            self.state.errors.append(text)

    def _hook(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            self._error(f"webhook body without text: {body!r}")
            return 400, "invalid_payload"
        with self.state.lock:
            self.state.hooks.append(body)
        return 200, "ok"

    def _github(self, match: re.Match[str], body: Any) -> tuple[int, Any]:
        auth = self.headers.get("Authorization", "")
        if auth not in (f"Bearer {self.state.github_token}", f"token {self.state.github_token}"):
            return 401, {"message": "Bad credentials"}
        if "application/vnd.github+json" not in self.headers.get("Accept", ""):
            self._error(f"GitHub Accept header: {self.headers.get('Accept')!r}")
        if not self.headers.get("X-GitHub-Api-Version"):
            self._error("GitHub request without X-GitHub-Api-Version")
        if not self.headers.get("User-Agent"):
            self._error("GitHub request without User-Agent (GitHub rejects those)")
        if "application/json" not in self.headers.get("Content-Type", ""):
            self._error(f"GitHub Content-Type: {self.headers.get('Content-Type')!r}")
        if not SHA.match(match["sha"]):
            self._error(f"not a commit SHA: {match['sha']}")
        if not isinstance(body, dict):
            self._error(f"GitHub body is not an object: {body!r}")
            return 422, {"message": "Invalid request."}
        problems = []
        if body.get("state") not in GITHUB_STATES:
            problems.append(f"state {body.get('state')!r}")
        description = body.get("description")
        if description is not None and (not isinstance(description, str) or len(description) > 140):
            problems.append(f"description {description!r} (at most 140 characters)")
        if not isinstance(body.get("context", "default"), str):
            problems.append("context")
        if "target_url" in body and not isinstance(body["target_url"], str | None):
            problems.append("target_url")
        extra = set(body) - {"state", "description", "context", "target_url"}
        if extra:
            problems.append(f"unknown fields {sorted(extra)}")
        if problems:
            self._error("GitHub status: " + ", ".join(problems))
            return 422, {"message": "Validation Failed"}
        key = (
            f"github:{match['owner']}/{match['repo']}",
            match["sha"],
            body.get("context", "default"),
        )
        with self.state.lock:
            self.state.statuses.setdefault(key, []).append(body)
        return 201, {"id": len(self.state.received), **body}

    def _gitlab(self, match: re.Match[str], body: Any) -> tuple[int, Any]:
        if self.headers.get("PRIVATE-TOKEN") != self.state.gitlab_token:
            return 401, {"message": "401 Unauthorized"}
        project = match["project"]
        if not (project.isdigit() or "%2F" in project):
            self._error(f"GitLab project id is neither numeric nor URL-encoded: {project!r}")
        if not SHA.match(match["sha"]):
            self._error(f"not a commit SHA: {match['sha']}")
        if not isinstance(body, dict) or body.get("state") not in GITLAB_STATES:
            self._error(f"GitLab state: {body!r}")
            return 400, {"message": "state does not have a valid value"}
        extra = set(body) - {
            "state",
            "name",
            "context",
            "target_url",
            "description",
            "ref",
            "pipeline_id",
            "coverage",
        }
        if extra:
            self._error(f"GitLab status: unknown fields {sorted(extra)}")
        key = (f"gitlab:{project}", match["sha"], body.get("name", "default"))
        with self.state.lock:
            history = self.state.statuses.setdefault(key, [])
            last = history[-1]["state"] if history else None
            if last == body["state"] and last not in GITLAB_FINISHED:
                verb = "run" if last == "running" else "enqueue"
                return 400, {"message": f"Cannot transition status via :{verb} from :{last}"}
            if last == "running" and body["state"] == "pending":
                return 400, {"message": "Cannot transition status via :enqueue from :running"}
            history.append(body)
        return 201, {"id": len(self.state.received), "status": body["state"]}


class ForgeServer:
    """The stand-in, serving on 127.0.0.1 in a thread."""

    def __init__(self) -> None:
        self.state = ForgeState()
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
