"""``batch-gitops ledger ...``: maintenance of the ledger (``rebuild``, ``backup``,
``migrate``, ``create-table``).

Registered at the bottom of :mod:`controller.cli.main`; the work is in
:mod:`controller.state.rebuild`, :mod:`controller.state.copy` and the store modules.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from controller.cli.common import OUTPUT, VERBOSE, WAIT, build_settings, hold_writer, open_runtime


@click.group()
def ledger() -> None:
    """Maintain the ledger (a file, or a shared dynamodb://TABLE)."""


@ledger.command()
@click.option("--repo", metavar="SRC", help="Repository whose manifests name the queues to scan.")
@click.option("--branch", help="Branch of --repo. [env: BATCH_GITOPS_BRANCH]")
@click.option("--path", "path", metavar="SUBDIR", help="Manifest sub-directory of --repo.")
@click.option("--queue", "queues", multiple=True, help="A job queue to scan (repeatable).")
@click.option(
    "--state",
    metavar="LEDGER",
    help="Ledger to create: a file, or an empty dynamodb://TABLE. [env: BATCH_GITOPS_STATE]",
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
    state: str | None,
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
    if replace and not isinstance(settings.state, Path):
        raise click.UsageError(
            "--replace moves a ledger file aside; for a DynamoDB ledger, rebuild into a new "
            "table (ledger create-table) and point --state at it"
        )
    moved = _move_aside(settings.state) if isinstance(settings.state, Path) and replace else None
    api, ledger_file = open_runtime(settings)
    try:
        with hold_writer(ledger_file, "ledger rebuild", wait, api):
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
    "--state", metavar="LEDGER", help="Ledger file or dynamodb://TABLE. [env: BATCH_GITOPS_STATE]"
)
@VERBOSE
def backup(destination: Path, state: str | None) -> None:
    """Copy the ledger to DESTINATION (a SQLite file), safely while the daemon writes.

    A ledger file: SQLite's online backup API (a plain `cp` of a live ledger can miss
    everything still in its write-ahead log). A DynamoDB ledger: an export of every
    item (see docs/state.md; point-in-time recovery is the AWS-side backup). Restore by
    pointing --state at the copy, or with `ledger migrate --state COPY --to ...`.
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
    "--state", metavar="LEDGER", help="Ledger file or dynamodb://TABLE. [env: BATCH_GITOPS_STATE]"
)
@VERBOSE
def rebind(repo: str, path: str | None, state: str | None) -> None:
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


@ledger.command()
@click.option(
    "--state", metavar="LEDGER", help="The ledger to copy (a file). [env: BATCH_GITOPS_STATE]"
)
@click.option(
    "--to",
    "target",
    required=True,
    metavar="LEDGER",
    help="Where to copy it: an empty dynamodb://TABLE (create it with `ledger create-table`).",
)
@OUTPUT
@WAIT
def migrate(state: str | None, target: str, output: str, wait: str) -> None:
    """Copy every record of a ledger into an empty one, and verify the counts.

    Stop the controller first (or pass --wait): the source's writer lock is held while
    copying, and the target's too. Then point every replica's --state at the target.
    """
    from controller.logs import configure
    from controller.state.copy import copy_ledger
    from controller.state.ledger import LedgerError
    from controller.state.stores import open_ledger

    settings = build_settings(state=state)
    configure(settings.log_format)
    try:
        target_settings = build_settings(state=target)
    except click.UsageError as exc:
        raise click.BadParameter(str(exc), param_hint="--to") from exc
    if str(target_settings.state) == str(settings.state):
        raise click.BadParameter("the target is the source", param_hint="--to")
    if isinstance(settings.state, Path) and not settings.state.exists():
        raise click.ClickException(f"{settings.state}: no ledger here; pass --state")
    try:
        source = open_ledger(settings.state, settings)
        destination = open_ledger(target_settings.state, settings)
    except LedgerError as exc:
        raise click.ClickException(str(exc)) from exc
    if not hasattr(source, "export_rows") or not hasattr(destination, "import_rows"):
        raise click.ClickException("these stores cannot be copied")
    try:
        with (
            hold_writer(source, "ledger migrate", wait),
            hold_writer(destination, "ledger migrate", wait),
        ):
            counts = copy_ledger(source, destination)  # type: ignore[arg-type]
    except LedgerError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        source.close()
        destination.close()
    if output == "json":
        click.echo(json.dumps({"from": source.location, "to": destination.location, **counts}))
        return
    click.echo(
        f"{source.location} -> {destination.location}: copied and verified "
        + ", ".join(f"{n} {table}" for table, n in counts.items())
    )


@ledger.command("create-table")
@click.argument("location", metavar="dynamodb://TABLE")
@click.option(
    "--no-point-in-time-recovery",
    "no_pitr",
    is_flag=True,
    help="Do not turn on the table's point-in-time recovery (AWS's continuous backup).",
)
def create_table(location: str, no_pitr: bool) -> None:
    """Create the shared ledger's DynamoDB table (on-demand, with its indexes).

    Idempotent: an existing table with the same keys and indexes is left as it is. Run it
    once with rights to create tables; the controller itself never needs them.
    """
    from controller.state.dynamodb import DynamoLedger
    from controller.state.dynamodb_layout import parse_location
    from controller.state.ledger import LedgerError

    try:
        table = parse_location(location)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="dynamodb://TABLE") from exc
    try:
        created = DynamoLedger(table).create_table(point_in_time_recovery=not no_pitr)
    except LedgerError as exc:
        raise click.ClickException(str(exc)) from exc
    backups = "off" if no_pitr else "on"
    click.echo(
        f"{location}: {'created' if created else 'exists already, with the same layout'} "
        f"(on-demand, point-in-time recovery {backups})"
    )
