"""The GitLab snippet edits its plan note in place, as the GitHub workflow edits its
comment: run twice (two pushes) against a stand-in of GitLab's notes API on
127.0.0.1, it creates one note, then updates that note, found by its marker across
pages, and never touches anyone else's."""

from __future__ import annotations

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import yaml

from controller.cli.markdown import COMMENT_MARKER
from controller.cli.scaffold import template_files
from controller.demo import backend as demo_backend
from tests.ship.test_init import gitlab_merge_request_env, pull_request_checkout

NOTES = "/api/v4/projects/42/merge_requests/7/notes"
TOKEN = "glpat-note-token"
PAGE_SIZE = 2  # fewer than asked for, as GitLab may: the snippet must follow X-Next-Page


class _NotesApi(BaseHTTPRequestHandler):
    """GitLab's merge-request notes: list (paginated), create, update one."""

    notes: ClassVar[list[dict[str, Any]]] = []
    calls: ClassVar[list[tuple[str, str]]] = []
    errors: ClassVar[list[str]] = []

    def _reply(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        self.calls.append((self.command, self.path))
        if self.headers.get("PRIVATE-TOKEN") != TOKEN:
            self._reply(401, {"message": "401 Unauthorized"})
            return False
        return True

    def do_GET(self) -> None:
        if not self._authorized():
            return
        url = urlsplit(self.path)
        if url.path != NOTES:
            self.errors.append(f"GET {self.path}")
            self._reply(404, {"message": "404 Not found"})
            return
        page = int(parse_qs(url.query).get("page", ["1"])[0])
        start = (page - 1) * PAGE_SIZE
        more = start + PAGE_SIZE < len(self.notes)
        self._reply(
            200,
            self.notes[start : start + PAGE_SIZE],
            {"X-Next-Page": str(page + 1) if more else "", "X-Page": str(page)},
        )

    def _body(self) -> str:
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        if "application/json" not in self.headers.get("Content-Type", ""):
            self.errors.append(f"Content-Type {self.headers.get('Content-Type')!r}")
        return str(json.loads(raw)["body"])

    def do_POST(self) -> None:
        if not self._authorized():
            return
        if self.path != NOTES:
            self.errors.append(f"POST {self.path}")
        note = {"id": 100 + len(self.notes), "body": self._body(), "system": False}
        self.notes.append(note)
        self._reply(201, note)

    def do_PUT(self) -> None:
        if not self._authorized():
            return
        note_id = int(self.path.rsplit("/", 1)[-1])
        if self.path != f"{NOTES}/{note_id}":
            self.errors.append(f"PUT {self.path}")
        [note] = [n for n in self.notes if n["id"] == note_id]
        note["body"] = self._body()
        self._reply(200, note)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_gitlab_plan_note_is_edited_in_place(moto: demo_backend.MotoBatch, tmp_path: Path) -> None:
    """First run: no marked note yet, one note is created. Second run: the note (on the
    second page, behind a reviewer's note and a system note that quotes the marker) is
    updated with PUT, not duplicated; the others are unchanged."""
    clone, head = pull_request_checkout(moto, tmp_path)
    script = "\n".join(
        yaml.safe_load(dict(template_files())[".gitlab-ci.yml"])["batch-gitops:plan"]["script"]
    )
    _NotesApi.notes = [
        {"id": 1, "body": "LGTM", "system": False},
        {"id": 2, "body": f"{COMMENT_MARKER} quoted by a system note", "system": True},
    ]
    _NotesApi.calls, _NotesApi.errors = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotesApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = gitlab_merge_request_env(moto, tmp_path, clone, head, server.server_port, TOKEN)
    try:
        for _ in range(2):
            ran = subprocess.run(
                ["bash", "-e", "-c", script],
                cwd=clone,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert ran.returncode == 0, ran.stderr
    finally:
        server.shutdown()
        server.server_close()
    assert _NotesApi.errors == []
    writes = [(method, path) for method, path in _NotesApi.calls if method != "GET"]
    assert writes == [("POST", NOTES), ("PUT", f"{NOTES}/102")]
    assert [n["id"] for n in _NotesApi.notes] == [1, 2, 102]
    assert _NotesApi.notes[0]["body"] == "LGTM"
    assert _NotesApi.notes[1]["body"].endswith("quoted by a system note")
    plan = _NotesApi.notes[2]["body"]
    assert plan.startswith(COMMENT_MARKER) and "**1 job to submit.**" in plan
    # The second run read both pages before choosing the note to edit.
    pages = [path for method, path in _NotesApi.calls if method == "GET"]
    assert any("page=2" in path for path in pages)
