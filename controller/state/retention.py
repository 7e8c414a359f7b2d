"""Pruning of old ledger records, without ever causing a resubmit.

AWS forgets a finished job after about a week; the ledger keeps it (that is
what stops a finished job from running twice). This module lets history be
bounded: records older than a cutoff are deleted, except anything that still
matters to the planner.

Never deleted, whatever their age:

* a run that is not over (intent, SUBMITTED ... RUNNING, or a status never read);
* the current run of a job whose manifest is still in git (``retired=0``):
  without it the planner would see the job as new and submit it again;
* the tick of a schedule whose run is not over, and every ACTIVE definition.

Deleted when older than the cutoff (by last update):

* superseded runs (``is_current=0``) and rejected/lost submissions that are over;
* the current run of a removed manifest (``retired=1``) once over — restoring
  that manifest after this runs it again, as for a job never seen;
* finished or skipped schedule ticks and their runs (past ticks are never
  decided again: the schedule's ``last_tick`` is kept);
* INACTIVE (deregistered) definitions, audit ``actions`` and ``passes``.

The age is at least 7 days (``MIN_DAYS``). Called by ``batch-gitops ledger
prune`` and, when ``ledger_retention_days`` is set, by the daemon at most once
an hour.
"""

from __future__ import annotations

import time

import structlog

from controller.state.ledger import Ledger, LedgerError, PruneResult

log = structlog.get_logger(__name__)

DAY = 86_400.0
# AWS keeps finished jobs about a week: pruning younger records gains nothing, and a ledger
# emptier than AWS looks lost (the pass refuses to run on an empty ledger next to our jobs).
MIN_DAYS = 7.0
# The daemon prunes at most this often: a DELETE per pass would be wasted work.
PRUNE_EVERY = 3_600.0
LAST_PRUNE_META = "last_prune_at"


def prune_ledger(
    ledger: Ledger, *, older_than: float, now: float | None = None, dry_run: bool = False
) -> PruneResult:
    """Delete records last updated more than ``older_than`` seconds ago (see module doc)."""
    if older_than < MIN_DAYS * DAY:
        raise ValueError(
            f"must be at least {MIN_DAYS:g} days: AWS itself keeps finished jobs about a week, "
            "and a ledger that forgets sooner could look lost next to them"
        )
    cutoff = (now if now is not None else time.time()) - older_than
    result = ledger.prune(cutoff, dry_run=dry_run)
    if not dry_run:
        log.info("ledger_pruned", **result.as_dict(), older_than_days=round(older_than / DAY, 3))
    return result


def prune_if_due(ledger: Ledger, retention_days: float, now: float | None = None) -> None:
    """The daemon's hook: prune with the configured retention, at most once an hour."""
    if retention_days <= 0:
        return
    now = now if now is not None else time.time()
    last = float(ledger.get_meta(LAST_PRUNE_META) or 0)
    if now - last < PRUNE_EVERY:
        return
    if retention_days < MIN_DAYS:
        log.warning("ledger_retention_raised", configured_days=retention_days, days=MIN_DAYS)
    try:
        prune_ledger(ledger, older_than=max(retention_days, MIN_DAYS) * DAY, now=now)
    except LedgerError:  # the next pass still runs; pruning waits for the next hour
        log.exception("ledger_prune_failed")
    ledger.set_meta(LAST_PRUNE_META, str(now))
