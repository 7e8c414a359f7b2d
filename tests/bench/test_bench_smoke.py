"""The benchmark suite (``python -m bench``) run with tiny sizes, so that it cannot rot.

No wall time is asserted (the machine is shared; that is the benchmark's job).
What is asserted is what must hold at any size: every scenario submits exactly
the jobs it wrote, a pass over an unchanged revision makes no write call and at
most one DescribeJobs per 100 active jobs plus one call per queue, the daemon
makes no write call either, and polling an unchanged remote is one ls-remote
with no fetch. Real parts throughout: moto over HTTP in its own process, real
git repositories, a real ``git daemon``, the ``aws`` CLI and ``batch-gitops``
processes.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import (
    cli_vs_controller,
    endpoint,
    git_server,
    initial_sync,
    poll_cost,
    runtime,
    throttled_commit,
    unchanged_pass,
    webhook_latency,
)
from bench.__main__ import main as bench_command


@pytest.fixture(scope="module")
def moto() -> Iterator[endpoint.MotoEndpoint]:
    process = endpoint.start()
    yield process
    process.stop()  # also restores the AWS_* variables other tests rely on


@pytest.fixture(scope="module")
def git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[git_server.GitServer]:
    if shutil.which("git") is None:
        pytest.fail("git is required (installed by .ci/run)")
    server = git_server.start(tmp_path_factory.mktemp("git"))
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def logs_to_file(tmp_path: Path) -> Iterator[Path]:
    """The controller logs to a file during the benchmark; other tests get their config back."""
    log = tmp_path / "controller.log"
    previous = runtime.log_to(log)
    yield log
    runtime.restore_logs(previous)


def test_initial_sync_submits_every_job_on_both_sides(
    moto: endpoint.MotoEndpoint, tmp_path: Path
) -> None:
    """The bare loop and the controller each leave exactly N jobs in moto; the ratio exists."""
    result = initial_sync.measure(moto, tmp_path, jobs=15)
    assert result.submitted == 15 and result.result == "ok"
    assert len(moto.client().list_jobs(jobQueue=endpoint.QUEUE)["jobSummaryList"]) == 15
    assert result.bare_seconds > 0 and result.ratio > 0


def test_aws_cli_and_controller_processes_submit_the_same_jobs(
    moto: endpoint.MotoEndpoint, tmp_path: Path
) -> None:
    """One ``aws batch submit-job`` per file and one ``batch-gitops reconcile`` process both
    submit all N files (checked inside ``measure`` against moto's job list)."""
    result = cli_vs_controller.measure(moto, tmp_path, jobs=3, default_limit=False)
    assert result.jobs == 3 and result.cli_seconds > 0 and result.controller_seconds > 0
    assert '"action": "submit"' in (tmp_path / "controller.log").read_text()


def test_unchanged_pass_makes_no_writes_and_bounded_reads(
    moto: endpoint.MotoEndpoint, tmp_path: Path
) -> None:
    """Warm (every pass) and after a restart: 0 write calls, reads <= ceil(active/100) + queues,
    and with 150 active jobs that bound really needs two DescribeJobs batches."""
    result, big = unchanged_pass.measure(moto, tmp_path, manifests=180, active=150, warm_runs=2)
    assert result.read_bound == math.ceil(150 / 100) + 1
    assert [p.label for p in result.passes] == ["warm, median of 2", "first after a restart"]
    for cost in result.passes:
        assert cost.result == "ok", cost
        assert cost.writes == 0, cost
        assert 2 <= cost.reads <= result.read_bound, cost  # 150 active: 2 DescribeJobs
    memory = unchanged_pass.daemon_memory(moto, big, tmp_path)
    assert memory.passes >= 2 and memory.writes == 0
    assert 0 < memory.rss_mib <= memory.peak_mib


def test_webhook_rounds_each_submit_their_commit(
    moto: endpoint.MotoEndpoint, git: git_server.GitServer, tmp_path: Path
) -> None:
    """Each pushed commit, announced by a signed push event, leads to its SubmitJob."""
    moto.fresh()
    result = webhook_latency.measure(git, tmp_path, manifests=5, commits=2)
    assert result.via in ("POST /webhook", "Daemon.trigger()")
    assert len(result.latencies) == 2 and all(x > 0 for x in result.latencies)


def test_poll_of_an_unchanged_remote_is_one_ls_remote(
    moto: endpoint.MotoEndpoint, git: git_server.GitServer, tmp_path: Path
) -> None:
    """Unchanged: one connection, ls-refs only, no fetch; a new commit does fetch."""
    moto.fresh()
    result = poll_cost.measure(git, tmp_path, manifests=3, polls=2)
    assert result.unchanged.connections == 1 and result.unchanged.fetches == 0
    assert result.ls_remote.connections == 1 and result.ls_remote.fetches == 0
    assert result.changed.fetches == 1


def test_command_line_runs_and_prints_the_table(
    moto: endpoint.MotoEndpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m bench`` (one scenario, tiny) prints the table and the machine line."""
    del moto  # the command starts its own endpoint; this one only keeps the env restored
    code = bench_command(["--only", "sync", "--jobs", "5", "--repeats", "1", "--markdown"])
    out = capsys.readouterr().out
    assert "initial sync of 5 new jobs" in out and "machine:" in out and "nproc=" in out
    assert code in (0, 1)  # wall-time targets are not asserted here


def test_throttled_commit_submits_each_job_once_and_counts_throttles(
    moto: endpoint.MotoEndpoint, tmp_path: Path
) -> None:
    """Against the AWS-like endpoint allowing SubmitJob 10/s (burst 1), a default
    ``batch-gitops reconcile`` process exits 0 with every job in moto exactly once; the
    endpoint's counters add up (sent = throttled + reached)."""
    result = throttled_commit.measure(
        moto, tmp_path, 25, allowed=10.0, label="tiny", burst_seconds=0.1
    )
    assert result.exactly_once, result
    assert result.sent == result.throttled + result.reached
    assert 0 < result.first_submit <= result.last_submit <= result.seconds


def test_pushes_during_a_pass_make_one_follow_up_each_round(
    moto: endpoint.MotoEndpoint, git: git_server.GitServer, tmp_path: Path
) -> None:
    """Ten signed pushes while a 100-job pass runs: one follow-up pass per round, which
    submits the pushed job after the running pass ended."""
    moto.fresh()
    result = webhook_latency.measure_busy(git, tmp_path, wave=100, rounds=1)
    assert [r.follow_ups for r in result.rounds] == [1]
    assert all(r.after_pass > 0 and r.remaining > 0 for r in result.rounds)
