"""``batch-gitops ledger ...``: maintenance of the ledger file (``rebuild``).

Registered at the bottom of :mod:`controller.cli.main`; the work is in
:mod:`controller.state.rebuild`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from controller.cli.common import OUTPUT, VERBOSE, WAIT, build_settings, hold_writer, open_runtime


@click.group()
def ledger() -> None:
    """Maintain the ledger file."""


@ledger.command()
@click.option("--repo", metavar="SRC", help="Repository whose manifests name the queues to scan.")
@click.option("--branch", help="Branch of --repo. [env: BATCH_GITOPS_BRANCH]")
@click.option("--path", "path", metavar="SUBDIR", help="Manifest sub-directory of --repo.")
@click.option("--queue", "queues", multiple=True, help="A job queue to scan (repeatable).")
@click.option(
    "--state",
    type=click.Path(path_type=Path),
    help="Ledger file to create. [env: BATCH_GITOPS_STATE]",
)
@click.option("--controller-id", help="managed-by tag value. [env: BATCH_GITOPS_CONTROLLER_ID]")
@click.option(
    "--replace",
    is_flag=True,
    help="Move an existing (e.g. corrupt) ledger file aside to FILE.replaced-<time> first.",
)
@click.option(
    "--assume-applied",
    is_flag=True,
    help="For plans in CI only: record every job of --branch that AWS no longer lists as "
    "already run, so a pull request's plan shows what it changes (a pass refuses to apply "
    "with such a ledger).",
)
@click.option(
    "--recover",
    is_flag=True,
    help="Recover this controller's own lost ledger: like --assume-applied (every job of "
    "--branch that AWS no longer lists is recorded as already run, so it is not run again), "
    "and the controller may apply with the result.",
)
@OUTPUT
@WAIT
@VERBOSE
def rebuild(
    repo: str | None,
    branch: str | None,
    path: str | None,
    queues: tuple[str, ...],
    state: Path | None,
    controller_id: str | None,
    replace: bool,
    assume_applied: bool,
    recover: bool,
    output: str,
    wait: str,
) -> None:
    """Recreate a lost ledger from the tags on the jobs and definitions in AWS.

    Scans every status of the queues the manifests use (and any --queue), and
    adopts only what carries this controller's managed-by tag. Writes into a new
    (empty) ledger file only. What AWS has forgotten (finished jobs older than
    about a week) cannot be recovered: such jobs would run again.
    """
    from controller.aws.batch import BatchError
    from controller.model.desired import DesiredState, build_desired
    from controller.source.manifest_cache import ManifestCache
    from controller.source.repository import SourceError, make_source
    from controller.state.rebuild import LedgerNotEmpty
    from controller.state.rebuild import rebuild as rebuild_ledger

    settings = build_settings(
        repo=repo, branch=branch, path=path, state=state, controller_id=controller_id
    )
    desired: DesiredState | None = None
    revision: str | None = None
    if settings.repo:
        try:
            snapshot = make_source(settings).snapshot()
        except SourceError as exc:
            raise click.ClickException(str(exc)) from exc
        desired = build_desired(ManifestCache().load(snapshot))
        revision = snapshot.revision
    assume = assume_applied or recover
    if assume and revision is None:
        flag = "--recover" if recover else "--assume-applied"
        raise click.UsageError(f"{flag} needs --repo (the branch whose jobs ran)")
    scan = set(queues) | ({key[0] for key in desired.jobs} if desired else set())
    if not scan:
        raise click.UsageError(
            "no queue to scan: give --repo (its job manifests name the queues) or --queue"
        )
    moved = _move_aside(settings.state) if replace else None
    api, ledger_file = open_runtime(settings)
    try:
        with hold_writer(ledger_file, "ledger rebuild", wait):
            result = rebuild_ledger(
                api,
                ledger_file,
                scan,
                settings.controller_id,
                desired,
                assume_applied=revision if assume else None,
                plans_only=not recover,
                progress_interval=settings.progress_interval,
            )
    except LedgerNotEmpty as exc:
        raise click.ClickException(str(exc)) from exc
    except BatchError as exc:
        raise click.ClickException(
            f"cannot read AWS Batch ({exc}); {settings.state} is incomplete: delete it and "
            "run the rebuild again"
        ) from exc
    finally:
        ledger_file.close()
    if output == "json":
        body = {"state": str(settings.state), "moved_aside": str(moved or ""), **result.as_dict()}
        click.echo(json.dumps(body, indent=2))
    else:
        click.echo(
            f"{settings.state}: rebuilt {result.jobs} job runs ({result.keys} jobs) and "
            f"{result.definitions} definition revisions from AWS tags; scanned "
            f"{result.listed} jobs in {', '.join(result.queues)}"
            + (
                f"; {result.assumed} jobs of {revision[:12]} AWS no longer lists assumed run"
                + ("" if recover else " (for plans only)")
                if assume and revision
                else ""
            )
            + (f"; the old file is {moved}" if moved else "")
        )


def _move_aside(state: Path) -> Path | None:
    """Rename the ledger (and its WAL/shm) to ``<state>.replaced-<time>``; None if absent."""
    if not state.exists():
        return None
    aside = state.with_name(f"{state.name}.replaced-{time.strftime('%Y%m%dT%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{state}{suffix}")
        if source.exists():
            source.rename(Path(f"{aside}{suffix}"))
    return aside


@ledger.command()
@click.argument("destination", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--state", type=click.Path(path_type=Path), help="Ledger file. [env: BATCH_GITOPS_STATE]"
)
@VERBOSE
def backup(destination: Path, state: Path | None) -> None:
    """Copy the ledger to DESTINATION, consistently, even while the daemon is writing.

    Uses the store's own online backup (SQLite's backup API: a plain `cp` of a live
    ledger can miss everything still in its write-ahead log). Restore by pointing
    --state at the copy (or copying it back while the controller is stopped).
    """
    from controller.cli.common import configure_logs, open_ledger_for

    settings = build_settings(state=state)
    configure_logs(settings)
    if destination.exists():
        raise click.ClickException(f"{destination} exists; choose a new file")
    ledger_file = open_ledger_for(settings, "read")  # an existing ledger, never a new one
    try:
        ledger_file.backup(destination)
    finally:
        ledger_file.close()
    click.echo(f"{settings.state}: backed up to {destination}")


@ledger.command()
@click.option("--repo", metavar="SRC", required=True, help="The repository's new location.")
@click.option("--path", "path", metavar="SUBDIR", help="Manifest sub-directory of --repo.")
@click.option(
    "--state", type=click.Path(path_type=Path), help="Ledger file. [env: BATCH_GITOPS_STATE]"
)
@VERBOSE
def rebind(repo: str, path: str | None, state: Path | None) -> None:
    """Bind the ledger to a renamed repository (a pass refuses a ledger of another one)."""
    from controller.cli.common import configure_logs, open_ledger_for
    from controller.engine.reconcile import REPOSITORY_META
    from controller.source.repository import repository_name

    settings = build_settings(repo=repo, path=path, state=state)
    configure_logs(settings)
    ledger_file = open_ledger_for(settings, "read")
    try:
        before = ledger_file.get_meta(REPOSITORY_META)
        after = repository_name(settings.repo, settings.path)
        ledger_file.set_meta(REPOSITORY_META, after)
    finally:
        ledger_file.close()
    click.echo(f"{settings.state}: bound to repository {after!r} (was {before!r})")
