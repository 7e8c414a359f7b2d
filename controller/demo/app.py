"""``batch-gitops demo``: the whole loop on an embedded moto Batch endpoint.

Seeds a local git repository from ``manifests/``, starts moto in-process with
the job queues those manifests use, and runs the controller against it while
a live table shows jobs walking through their states. The user edits and
commits in the printed folder and watches the controller act.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import git
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from controller.aws.batch import Boto3Batch
from controller.cli.render import jobs_table
from controller.engine.observe import refresh_statuses
from controller.engine.reconcile import PassResult, run_pass
from controller.logs import configure
from controller.model.desired import build_desired
from controller.model.manifests import load_files, read_directory
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
    console = Console()
    try:
        from controller.demo import backend as demo_backend
    except ImportError:  # pragma: no cover - depends on the install
        console.print("[red]the demo needs moto: pip install 'batch-gitops[demo]'[/]")
        return 1
    manifests = manifests or DEFAULT_MANIFESTS
    if not manifests.is_dir():
        console.print(f"[red]no manifest folder at {manifests}; pass --manifests DIR[/]")
        return 1
    root = workdir or Path(tempfile.mkdtemp(prefix="batch-gitops-demo-"))
    repo_dir = root / "repo"
    # --once: JSON lines on stderr, for scripts. Watching: the live table owns the
    # terminal, so the controller's log goes to a file the user can tail.
    root.mkdir(parents=True, exist_ok=True)
    log_path = root / "controller.log"
    log_file = None if once else log_path.open("a", encoding="utf-8")
    configure("json" if once else "console", stream=log_file)

    desired = build_desired(load_files(read_directory(manifests)))
    if desired.errors:
        for error in desired.errors:
            console.print(f"[red]{error}[/]")
        return 1
    queues = {job.queue for job in desired.jobs.values()}

    console.print(
        f"[bold]batch-gitops demo[/]: starting an embedded AWS Batch (moto) with "
        f"queues {', '.join(sorted(queues))}"
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
        server = serve(settings.listen, make_app(health))
        metrics_url = f"http://127.0.0.1:{server.server_port}/metrics"

        def one_pass() -> PassResult:
            with writing(ledger, "demo") as fence:  # the demo is this ledger's only writer
                result = run_pass(settings, source, api, ledger, cache=cache, fence=fence)
            health.update(result=result.result, revision=result.revision, message=result.message)
            return result

        first = one_pass()
        console.print(_summary(first))
        if once:
            second = one_pass()
            console.print(_summary(second))
            refresh_statuses(api, ledger)
            console.print(
                jobs_table(sorted(ledger.current_jobs().values(), key=lambda r: (r.queue, r.name)))
            )
            submitted = {k for k, r in ledger.current_jobs().items() if r.job_id}
            missing = set(desired.jobs) - submitted
            writes = sum(1 for r in second.results)
            ok = first.result == "ok" and not missing and writes == 0
            console.print(
                f"{len(submitted)} of {len(desired.jobs)} jobs submitted; "
                f"second pass made {writes} changes; metrics were at {metrics_url}"
            )
            return 0 if ok else 1

        console.print(
            Text.from_markup(
                f"\n[bold]The controller is watching[/] [cyan]{repo_dir}[/] (branch main).\n"
                f"Edit or delete a manifest there, then commit, e.g.:\n"
                f"  cd {repo_dir} && git rm jobs/job-array.json && git commit -m 'drop sweep'\n"
                f"Metrics: {metrics_url}   Controller log: tail -f {log_path}\n"
                f"Stop: Ctrl-C\n"
            ),
            soft_wrap=True,  # paths and commands stay whole, to copy and paste
        )
        last_revision = first.revision
        next_pass = time.monotonic() + settings.interval
        messages: list[str] = []
        with Live(console=console, refresh_per_second=2) as live:
            while True:
                if time.monotonic() >= next_pass:
                    result = one_pass()
                    next_pass = time.monotonic() + settings.interval
                    if result.revision != last_revision or result.results:
                        messages = [*messages, str(_summary(result))][-5:]
                        last_revision = result.revision
                refresh_statuses(api, ledger)
                jobs = sorted(
                    (r for r in ledger.current_jobs().values() if not r.retired),
                    key=lambda r: (r.queue, r.name),
                )
                live.update(Group(jobs_table(jobs), Text("\n".join(messages))))
                time.sleep(1.0)
    except KeyboardInterrupt:
        console.print("\nstopped")
        return 0
    finally:
        moto.stop()
        if log_file is not None:
            log_file.close()


def _summary(result: PassResult) -> Text:
    counts = ", ".join(f"{k}={v}" for k, v in sorted(result.counts().items()) if v)
    return Text(
        f"pass {result.pass_id}: {result.result} at {result.revision[:12]} "
        f"({counts or 'nothing to do'}) in {result.duration:.2f}s"
    )
