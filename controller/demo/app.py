"""``batch-gitops demo``: the whole loop on an embedded moto Batch endpoint.

Seeds a local git repository from ``manifests/``, starts moto in-process with
the job queues those manifests use, and runs the controller against it while
a live table shows jobs walking through their states. The user edits and
commits in the printed folder and watches the controller act.

The table fits the terminal (80 columns: job and status whole, other columns as
space allows), invalid manifests are listed under it, and the controller's log
goes to a plain-text file (no colours, no line for a pass that changed nothing).
Without ``--workdir`` everything lives in a temporary folder removed on exit.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import git
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from controller.aws.batch import Boto3Batch
from controller.cli.common import verbosity
from controller.cli.render import error_line, human_console, jobs_table
from controller.engine.observe import refresh_statuses
from controller.engine.reconcile import PassResult, run_pass
from controller.logs import configure
from controller.model.desired import build_desired
from controller.model.manifests import load_files, read_directory
from controller.service.invalid_manifests import InvalidManifestLog
from controller.service.server import Health, make_app, serve
from controller.settings import Settings
from controller.source.manifest_cache import ManifestCache
from controller.source.repository import make_source
from controller.state.stores import open_ledger
from controller.state.writer import writing

DEFAULT_MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"


def _seed_repository(manifests: Path, repo_dir: Path) -> git.Repo:
    shutil.copytree(manifests, repo_dir, dirs_exist_ok=True)
    repo = git.Repo.init(repo_dir, initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", "Demo User")
        config.set_value("user", "email", "demo@example.com")
    repo.git.add(A=True)
    repo.index.commit("demo: the seed's manifests")
    return repo


def run_demo(*, once: bool, manifests: Path | None, workdir: Path | None) -> int:
    console = human_console()
    try:
        from controller.demo import backend as demo_backend
    except ImportError:  # pragma: no cover - depends on the install
        console.print("[red]the demo needs moto: pip install 'batch-gitops[demo]'[/]")
        return 1
    manifests = manifests or DEFAULT_MANIFESTS
    if not manifests.is_dir():
        console.print(f"[red]no manifest folder at {manifests}; pass --manifests DIR[/]")
        return 1
    desired = build_desired(load_files(read_directory(manifests)))
    if desired.errors:
        for error in desired.errors:
            console.print(f"[red]{error}[/]", highlight=False)
        return 1
    root = workdir or Path(tempfile.mkdtemp(prefix="batch-gitops-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        return _run(console, demo_backend, desired, manifests, root, once=once, kept=bool(workdir))
    finally:
        if workdir is None:  # a temp folder of ours: leave nothing behind
            shutil.rmtree(root, ignore_errors=True)


def _run(
    console: Console,
    demo_backend: Any,
    desired: Any,
    manifests: Path,
    root: Path,
    *,
    once: bool,
    kept: bool,
) -> int:
    repo_dir = root / "repo"
    # --once: warnings on stderr, like any one-shot command. Watching: the live table owns
    # the terminal, so the controller's log goes to a plain-text file the user can tail.
    log_path = root / "controller.log"
    log_file = None if once else log_path.open("a", encoding="utf-8")
    if once:
        configure("console", level=max(logging.DEBUG, logging.WARNING - 10 * verbosity()))
    else:
        configure("console", stream=log_file, quiet_idle_passes=True)
    queues = {job.queue for job in desired.jobs.values()}
    console.print(
        f"[bold]batch-gitops demo[/]: starting an embedded AWS Batch (moto) with "
        f"queues {', '.join(sorted(queues))}",
        highlight=False,
    )
    moto = demo_backend.start("walk", step=1.0, run=4.0)
    try:
        moto.create_queues(queues)
        _seed_repository(manifests, repo_dir)
        settings = Settings(
            repo=str(repo_dir),
            branch="main",
            state=root / "ledger.sqlite",
            workdir=root / "cache",
            listen="127.0.0.1:0",
            interval=2.0,
        )
        ledger = open_ledger(settings.state)
        api = Boto3Batch(rate_limit=settings.rate_limit)
        source = make_source(settings)
        cache = ManifestCache()
        health = Health()
        invalid_log = InvalidManifestLog()
        server = serve(settings.listen, make_app(health))
        metrics_url = f"http://127.0.0.1:{server.server_port}/metrics"

        def one_pass() -> PassResult:
            with writing(ledger, "demo") as fence:  # the demo is this ledger's only writer
                result = run_pass(settings, source, api, ledger, cache=cache, fence=fence)
            errors = [e.as_dict() for e in result.errors]
            health.update(
                result=result.result,
                revision=result.revision,
                message=result.message,
                invalid=None if result.desired is None else errors,
            )
            invalid_log.report(result.revision, result.errors)
            return result

        first = one_pass()
        console.print(_summary(first))
        if once:
            second = one_pass()
            console.print(_summary(second))
            refresh_statuses(api, ledger)
            jobs = sorted(ledger.current_jobs().values(), key=lambda r: (r.queue, r.name))
            console.print(jobs_table(console, jobs))
            submitted = {k for k, r in ledger.current_jobs().items() if r.job_id}
            missing = set(desired.jobs) - submitted
            writes = sum(1 for r in second.results)
            ok = first.result == "ok" and not missing and writes == 0
            console.print(
                f"{len(submitted)} of {len(desired.jobs)} jobs submitted; "
                f"second pass made {writes} changes; metrics were at {metrics_url}",
                highlight=False,
            )
            if kept:
                console.print(f"ledger: {settings.state}", highlight=False)
            return 0 if ok else 1

        kept_note = (
            f"{root} is kept, ledger {settings.state}"
            if kept
            else "this demo folder is removed on exit; --workdir keeps one"
        )
        console.print(
            Text.from_markup(
                f"\n[bold]The controller is watching[/] [cyan]{repo_dir}[/] (branch main).\n"
                f"Edit or delete a manifest there, then commit, e.g.:\n"
                f"  cd {repo_dir} && git rm jobs/job-array.json && git commit -m 'drop sweep'\n"
                f"Metrics: {metrics_url}   Controller log: tail -f {log_path}\n"
                f"Stop: Ctrl-C ({kept_note})\n"
            ),
            soft_wrap=True,  # paths and commands stay whole, to copy and paste
        )
        last_revision = first.revision
        next_pass = time.monotonic() + settings.interval
        messages: list[str] = []
        latest = first
        with Live(console=console, refresh_per_second=2) as live:
            while True:
                if time.monotonic() >= next_pass:
                    latest = one_pass()
                    next_pass = time.monotonic() + settings.interval
                    if latest.revision != last_revision or latest.results:
                        messages = [*messages, str(_summary(latest))][-5:]
                        last_revision = latest.revision
                refresh_statuses(api, ledger)
                jobs = sorted(
                    (r for r in ledger.current_jobs().values() if not r.retired),
                    key=lambda r: (r.queue, r.name),
                )
                live.update(_screen(console, jobs, latest, messages))
                time.sleep(1.0)
    except KeyboardInterrupt:
        console.print("\nstopped")
        return 0
    finally:
        moto.stop()
        if log_file is not None:
            log_file.close()


def _screen(console: Console, jobs: list[Any], latest: PassResult, messages: list[str]) -> Group:
    """The live screen: the jobs, every invalid manifest by file and field, the last passes."""
    parts: list[Any] = [jobs_table(console, jobs)]
    if latest.errors:
        lines = [f"Invalid manifests at {latest.revision[:12]} (not applied, not pruned):"]
        lines += [f"  {error_line(e.as_dict())}" for e in latest.errors]
        parts.append(Text("\n".join(lines), style="red"))
    parts.append(Text("\n".join(messages)))
    return Group(*parts)


def _summary(result: PassResult) -> Text:
    counts = ", ".join(f"{k}={v}" for k, v in sorted(result.counts().items()) if v)
    return Text(
        f"pass {result.pass_id}: {result.result} at {result.revision[:12]} "
        f"({counts or 'nothing to do'}) in {result.duration:.2f}s"
    )
