"""The daemon's HTTP server is bounded: idle and slow clients cost a socket, never a
thread, and are dropped; probes and metrics keep answering while the webhook is
flooded; the webhook can have a port of its own; and a flood of sockets never starves
a pass of file descriptors.

Real daemons (in-process, and one ``batch-gitops run`` process under a 256-descriptor
limit) against moto and a real git repository; every client is a real socket on
127.0.0.1, every loop bounded in count and time.
"""

from __future__ import annotations

import json
import os
import resource
import selectors
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from controller.demo import backend as demo_backend
from controller.service.daemon import Daemon
from tests.conftest import Controller, GitRepo
from tests.git_pressure.conftest import DEFINITION, job
from tests.service.pushes import SECRET, push_event, wait_for

JOB = job("a")


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            reply.read()
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def idle_sockets(port: int, count: int, stack: ExitStack) -> list[socket.socket]:
    """``count`` connections that never send a byte."""
    made = []
    for _ in range(count):
        client = stack.enter_context(closing(socket.create_connection(("127.0.0.1", port), 10)))
        made.append(client)
    return made


def closed_by_server(clients: list[socket.socket], timeout: float) -> int:
    """How many of ``clients`` the server closed (EOF or reset) within ``timeout``."""
    selector = selectors.DefaultSelector()
    for client in clients:
        client.setblocking(False)
        selector.register(client, selectors.EVENT_READ)
    closed = 0
    deadline = time.monotonic() + timeout
    while closed < len(clients) and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            try:
                data = sock.recv(1024)
            except ConnectionResetError:
                data = b""
            if not data:
                closed += 1
                selector.unregister(sock)
    selector.close()
    return closed


@pytest.fixture
def daemon_factory(controller: Controller, repo: GitRepo) -> Iterator[Callable[..., Daemon]]:
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/a.json", JOB)
    repo.commit("a")
    started: list[Daemon] = []

    def make(**overrides: Any) -> Daemon:
        settings = controller.settings.model_copy(
            update={
                "interval": 3600.0,
                "listen": "127.0.0.1:0",
                "webhook_secret": SecretStr(SECRET),
                "http_idle_timeout": 1,
                **overrides,
            }
        )
        daemon = Daemon(settings, controller.api, controller.ledger)
        daemon.start()
        started.append(daemon)
        wait_for(lambda: daemon.passes >= 1)
        return daemon

    yield make
    for daemon in started:
        daemon.stop()


def test_400_idle_connections_cost_no_pass_and_are_dropped(
    daemon_factory: Callable[..., Daemon],
) -> None:
    """400 clients connect and send nothing: /healthz, /readyz and /metrics still answer
    200, a triggered pass still runs and succeeds, and the server closes every idle
    connection once it has been silent for http_idle_timeout (1 s here)."""
    daemon = daemon_factory()
    port = daemon.server.server_port
    base = f"http://127.0.0.1:{port}"
    with ExitStack() as stack:
        clients = idle_sockets(port, 400, stack)
        wait_for(lambda: daemon.server.open_connections() >= 400)
        assert [get(f"{base}/healthz"), get(f"{base}/readyz"), get(f"{base}/metrics")] == [
            200,
            200,
            200,
        ]
        before = daemon.passes
        daemon.trigger()
        wait_for(lambda: daemon.passes > before)
        assert daemon.health.last_result == "ok", daemon.health.message
        assert closed_by_server(clients, timeout=30) == 400
    wait_for(lambda: daemon.server.open_connections() == 0)


def test_probes_answer_while_the_webhook_is_flooded(
    daemon_factory: Callable[..., Daemon],
) -> None:
    """On the shared port, 100 clients trickle headers that never end and 8 threads post
    400 badly signed pushes (401 each); meanwhile every /healthz, /readyz and /metrics
    answers 200, and no flood request starts a pass."""
    daemon = daemon_factory()
    port = daemon.server.server_port
    base = f"http://127.0.0.1:{port}"
    before = daemon.passes
    statuses: list[int] = []

    def flood() -> None:
        for _ in range(50):
            statuses.append(push_event(f"{base}/webhook", secret="wrong"))

    with ExitStack() as stack:
        slow = idle_sockets(port, 100, stack)
        for client in slow:
            client.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\n")  # and never the end
        threads = [threading.Thread(target=flood) for _ in range(8)]
        for thread in threads:
            thread.start()
        probes = []
        while any(t.is_alive() for t in threads) and len(probes) < 200:
            probes += [get(f"{base}/healthz"), get(f"{base}/readyz"), get(f"{base}/metrics")]
        for thread in threads:
            thread.join(timeout=60)
    assert probes and set(probes) == {200}
    assert len(statuses) == 400 and set(statuses) == {401}
    assert daemon.passes == before


def test_webhook_on_its_own_port_serves_nothing_else(
    daemon_factory: Callable[..., Daemon],
) -> None:
    """webhook_listen set: the push there is accepted and runs a pass; that port answers
    404 for /metrics and /healthz, and the main port has no /webhook at all."""
    daemon = daemon_factory(webhook_listen="127.0.0.1:0")
    assert daemon.webhook_server is not None
    hook = f"http://127.0.0.1:{daemon.webhook_server.server_port}"
    main = f"http://127.0.0.1:{daemon.server.server_port}"
    before = daemon.passes
    assert push_event(f"{hook}/webhook") == 202
    wait_for(lambda: daemon.passes > before)
    assert [get(f"{hook}/metrics"), get(f"{hook}/healthz")] == [404, 404]
    assert push_event(f"{main}/webhook") == 404
    assert [get(f"{main}/healthz"), get(f"{main}/metrics")] == [200, 200]


def _limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_flood_of_sockets_never_starves_a_pass_of_descriptors(
    moto: demo_backend.MotoBatch, repo: GitRepo, tmp_path: Path
) -> None:
    """``batch-gitops run`` limited to 256 file descriptors (soft = hard) and 400 open
    idle connections: the server takes at most a quarter of the limit, and the passes
    that follow keep succeeding (each reads git, SQLite and AWS)."""
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/a.json", JOB)
    repo.commit("a")
    port = _free_port()
    log = tmp_path / "daemon.log"
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_BATCH": moto.endpoint,
        "BATCH_GITOPS_REPO": str(repo.path),
        "BATCH_GITOPS_STATE": str(tmp_path / "ledger.sqlite"),
        "BATCH_GITOPS_WORKDIR": str(tmp_path / "cache"),
        "BATCH_GITOPS_LISTEN": f"127.0.0.1:{port}",
        "BATCH_GITOPS_INTERVAL": "1s",
        "BATCH_GITOPS_HTTP_IDLE_TIMEOUT": "30",
        "BATCH_GITOPS_LOG_FORMAT": "json",
    }

    def passes() -> list[str]:
        lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
        return [str(x.get("result")) for x in lines if x.get("event") == "pass"]

    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "controller", "run"],
            env=env,
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            preexec_fn=_limit_descriptors,
        )
        try:
            wait_for(lambda: len(passes()) >= 1, timeout=60)
            with ExitStack() as stack:
                idle_sockets(port, 400, stack)
                seen = len(passes())
                wait_for(lambda: len(passes()) >= seen + 3, timeout=60)
                after = passes()[seen:]
        finally:
            process.terminate()
            process.wait(timeout=30)
    assert after and set(after) == {"ok"}, log.read_text()[-2000:]
