"""``python -m bench``: every measure of issue 6, side by side, against one moto endpoint.

    .venv/bin/python -m bench            # the full sizes of the issue (a few minutes)
    .venv/bin/python -m bench --quick    # small sizes (about a minute), same code
    .venv/bin/python -m bench --only sync,cli --jobs 500

Exit status 0 when every target with a threshold is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import (
    cli_vs_controller,
    endpoint,
    git_server,
    initial_sync,
    machine,
    poll_cost,
    report,
    runtime,
    throttled_commit,
    unchanged_pass,
    webhook_latency,
)

SCENARIOS = ("sync", "cli", "unchanged", "memory", "webhook", "poll", "throttled", "busy")
# The throttled scenario's endpoints: (SubmitJob/s allowed, label).
ACCOUNTS = ((50.0, "alone in the account (SubmitJob 50/s)"), (25.0, "sharing the account (25/s)"))
# Comparison runs of the throttled scenario: (BATCH_GITOPS_* overrides, label).
COMPARISONS = (
    ({"BATCH_GITOPS_RATE_LIMIT": "20", "BATCH_GITOPS_RATE_CONTROL": "fixed"}, "before: fixed 20/s"),
    ({"BATCH_GITOPS_RATE_CONTROL": "botocore"}, "botocore's adaptive limiter instead of AIMD"),
)


@dataclass
class Sizes:
    jobs: int = 1000  # initial sync
    cli_jobs: int = 200  # aws cli vs controller
    manifests: int = 10_000  # unchanged pass and daemon memory
    active: int = 1000
    commits: int = 20  # webhook rounds
    webhook_manifests: int = 1000
    poll_manifests: int = 100
    repeats: int = 3  # initial sync: best of
    throttled_jobs: int = 1000  # commit against the throttling endpoint
    busy_wave: int = 150  # jobs of the pass a push arrives during
    busy_rounds: int = 5
    default_limit: bool = True  # also run the CLI scenario at the default rate limit
    compare: bool = True  # also run the throttled scenario as before and with botocore's
    endpoint_burst: float = 1.0  # the throttling endpoint's bucket, in seconds of its rate


QUICK = Sizes(
    jobs=200,
    cli_jobs=20,
    manifests=1000,
    active=100,
    commits=5,
    webhook_manifests=100,
    poll_manifests=20,
    repeats=1,
    throttled_jobs=200,
    busy_wave=60,
    busy_rounds=2,
)


SIZE_HELP = {
    "jobs": "initial sync: new job manifests",
    "cli_jobs": "aws cli vs controller: new job manifests",
    "manifests": "unchanged pass and daemon memory: manifests in the repository",
    "active": "unchanged pass: how many of them are active jobs",
    "commits": "webhook: commits, one new job each",
    "webhook_manifests": "webhook: manifests already in the repository",
    "poll_manifests": "poll: manifests in the remote repository",
    "repeats": "initial sync: best of this many runs per side",
    "throttled_jobs": "throttled: new jobs in the commit",
    "busy_wave": "busy: jobs of the pass the pushes arrive during",
    "busy_rounds": "busy: rounds of pushes",
}


def run(
    sizes: Sizes,
    workdir: Path,
    only: tuple[str, ...] = SCENARIOS,
    progress: Callable[[str], None] = lambda _: None,
) -> list[report.Row]:
    """Run the chosen scenarios; every one gets its own directory under ``workdir``."""
    previous_logs = runtime.log_to(workdir / "controller.log")
    rows: list[report.Row] = []
    moto = endpoint.start()
    server = git_server.start(workdir / "git") if {"webhook", "poll", "busy"} & set(only) else None
    try:
        if "sync" in only:
            progress(f"initial sync of {sizes.jobs} jobs (best of {sizes.repeats})")
            rows += report.initial_sync(
                initial_sync.measure(moto, workdir / "sync", sizes.jobs, repeats=sizes.repeats)
            )
        if "cli" in only:
            progress(f"aws cli vs controller, {sizes.cli_jobs} jobs")
            rows += report.cli_vs_controller(
                cli_vs_controller.measure(
                    moto, workdir / "cli", sizes.cli_jobs, default_limit=sizes.default_limit
                )
            )
        if {"unchanged", "memory"} & set(only):
            progress(f"unchanged pass, {sizes.manifests} manifests, {sizes.active} active")
            unchanged, big = unchanged_pass.measure(
                moto, workdir / "unchanged", sizes.manifests, sizes.active
            )
            if "unchanged" in only:
                rows += report.unchanged_pass(unchanged)
            if "memory" in only:
                progress("daemon memory")
                rows += report.daemon_memory(
                    unchanged_pass.daemon_memory(moto, big, workdir / "unchanged")
                )
        if "webhook" in only:
            assert server is not None
            progress(f"webhook latency, {sizes.commits} commits")
            moto.fresh()
            rows += report.webhook_latency(
                webhook_latency.measure(
                    server, workdir / "webhook", sizes.webhook_manifests, sizes.commits
                )
            )
        if "poll" in only:
            assert server is not None
            progress("poll of an unchanged remote")
            moto.fresh()
            rows += report.poll_cost(
                poll_cost.measure(server, workdir / "poll", sizes.poll_manifests)
            )
        if "throttled" in only:
            rows += _throttled(moto, workdir / "throttled", sizes, progress)
        if "busy" in only:
            assert server is not None
            progress(f"pushes during a {sizes.busy_wave}-job pass, {sizes.busy_rounds} rounds")
            moto.fresh()
            rows += report.busy_latency(
                webhook_latency.measure_busy(
                    server, workdir / "busy", sizes.busy_wave, sizes.busy_rounds
                )
            )
    finally:
        if server is not None:
            server.stop()
        moto.stop()
        runtime.restore_logs(previous_logs)
    return rows


def _throttled(
    moto: endpoint.MotoEndpoint, workdir: Path, sizes: Sizes, progress: Callable[[str], None]
) -> list[report.Row]:
    rows: list[report.Row] = []
    burst = sizes.endpoint_burst
    for allowed, account in ACCOUNTS:
        label = account if burst == 1.0 else f"{account}, endpoint burst {burst:g} s"
        runs: list[tuple[dict[str, str], str]] = [({}, label)]
        runs += list(COMPARISONS) if sizes.compare else []
        for overrides, name in runs:
            progress(f"{sizes.throttled_jobs}-job commit, {name}")
            result = throttled_commit.measure(
                moto,
                workdir,
                sizes.throttled_jobs,
                allowed=allowed,
                label=name,
                env=overrides,
                burst_seconds=burst,
            )
            rows += report.throttled_commit(result, compared=bool(overrides))
    return rows


def table(rows: list[report.Row]) -> Table:
    out = Table(title="batch-gitops benchmark", show_lines=False)
    out.add_column("measure")
    out.add_column("value")
    out.add_column("target")
    out.add_column("verdict")
    for row in rows:
        style = {True: "green", False: "bold red", None: ""}[row.met]
        out.add_row(row.measure, row.value, row.target, row.verdict, style=style)
    return out


def markdown(rows: list[report.Row]) -> str:
    lines = ["| measure | value | target | verdict |", "|---|---|---|---|"]
    lines += [f"| {r.measure} | {r.value} | {r.target} | {r.verdict} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, same code")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument("--markdown", action="store_true", help="also print a markdown table")
    parser.add_argument("--workdir", type=Path, help="keep repositories, ledgers and logs here")
    for name, default in vars(Sizes()).items():
        if isinstance(default, bool | float):
            continue
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=int,
            default=None,
            help=f"{SIZE_HELP[name]} (full: {default}, quick: {getattr(QUICK, name)})",
        )
    parser.add_argument(
        "--endpoint-burst",
        type=float,
        default=1.0,
        help="throttled scenario: the endpoint's burst, in seconds of its rate (AWS does not "
        "document it; default 1.0)",
    )
    parser.add_argument(
        "--no-compare",
        action="store_true",
        help="throttled scenario: skip the runs as before (fixed 20/s) and with botocore's "
        "adaptive limiter",
    )
    parser.add_argument(
        "--no-default-limit",
        action="store_true",
        help="skip the CLI scenario's run at the default rate limit",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    overrides = {
        name: getattr(args, name)
        for name in vars(sizes)
        if getattr(args, name, None) is not None
        and not isinstance(getattr(sizes, name), bool | float)
    }
    sizes = Sizes(
        **{
            **vars(sizes),
            **overrides,
            "default_limit": not args.no_default_limit,
            "compare": not args.no_compare,
            "endpoint_burst": args.endpoint_burst,
        }
    )
    only = tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {sorted(unknown)}; choose from {', '.join(SCENARIOS)}")

    console = Console(stderr=True)
    started = time.perf_counter()

    def progress(message: str) -> None:
        console.print(f"[dim]{time.perf_counter() - started:6.1f}s[/] {message}")

    with tempfile.TemporaryDirectory(prefix="batch-gitops-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        rows = run(sizes, workdir, only, progress)
    out = Console(width=max(Console().width, 160))
    out.print(table(rows))
    out.print(f"machine: {machine.describe()}")
    out.print(f"total benchmark time: {time.perf_counter() - started:.0f} s")
    if args.markdown:
        print(markdown(rows))
    return 0 if all(row.met is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
