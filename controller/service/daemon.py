"""The long-running controller: one pass at a time, on a timer or on demand.

Passes run on one thread of their own (``pass-runner``), never overlapped. They
start when asked: APScheduler's interval job (with jitter, so a fleet of
controllers does not hit AWS in lockstep) asks when no pass is running, and
``trigger()`` (webhook, cron ticks of schedules, a new lease term) always asks.
A trigger that arrives during a pass is never dropped: it leaves one follow-up
pass pending, which starts as soon as the running pass ends; any number of
triggers during one pass make that one follow-up (coalesced). An interval tick
during a pass is skipped, as APScheduler skipped it before. SIGTERM/SIGINT stop
after the pass in flight.

One writer per ledger: on a ledger file each pass holds its OS lock (a manual
``reconcile`` waits for it, or the pass for the ``reconcile``); on the shared
DynamoDB ledger the writer lock is the replicas' lease, which the leader keeps across
passes (:class:`~controller.aws.lease.LeaseKeeper` renews it) and every pass writes
with its fence. A lease next to a ledger file is refused at start.
"""

from __future__ import annotations

import signal
import threading
from datetime import datetime
from typing import Any

import structlog
from apscheduler.schedulers.background import BackgroundScheduler

from controller import metrics
from controller.aws.batch import BatchApi
from controller.aws.lease import LeaseError, LeaseKeeper, guard_writes
from controller.engine.reconcile import PassResult, run_pass
from controller.model.records import Fence
from controller.service.cron import sync_cron_triggers
from controller.service.invalid_manifests import InvalidManifestLog
from controller.service.notify import Reporter, make_reporter
from controller.service.server import Health
from controller.service.webhook import serve_endpoints
from controller.settings import Settings
from controller.source.manifest_cache import ManifestCache
from controller.source.repository import make_source
from controller.state.ledger import Ledger, WriterBusy
from controller.state.retention import prune_if_due
from controller.state.stores import leader_lease
from controller.state.writer import writing

log = structlog.get_logger(__name__)
JOB_ID = "reconcile"


class Daemon:
    def __init__(self, settings: Settings, api: BatchApi, ledger: Ledger) -> None:
        self.settings = settings
        self.api = api
        self.ledger = ledger
        self.source = make_source(settings)
        self.cache = ManifestCache()
        self.health = Health(ready_after=settings.ready_after)
        self.invalid_log = InvalidManifestLog()
        self.stopped = threading.Event()
        # Held by every scheduled pass; stop() waits on it instead of on the scheduler.
        self.pass_lock = threading.Lock()
        self.passes = 0
        # Set by trigger(): a pass is wanted. The runner clears it as a pass *starts*, so
        # a trigger during the pass sets it again and the runner goes round once more.
        self._wanted = threading.Event()
        self._running = False
        self._stopping = False
        self.runner: threading.Thread | None = None
        self.scheduler = BackgroundScheduler(
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        )
        self.server: Any = None
        self.webhook_server: Any = None
        # Replicas (a shared ledger): only the lease holder runs passes, each with the
        # lease's fence, and every Batch write re-checks the lease just before it is sent.
        # A lease next to a ledger file raises LedgerError: replicas need a shared ledger.
        self.lease = leader_lease(ledger, settings)
        self.lease_keeper: LeaseKeeper | None = None
        if self.lease is not None:
            guard_writes(api, self.lease)
        # Commit statuses and notifications (controller.service.notify); None: not configured.
        self.reporter: Reporter | None = make_reporter(settings, ledger)

    def run_once(self) -> PassResult:
        standby = self._standby()
        if standby is not None:
            return standby
        try:
            outcome = self._pass()
        except WriterBusy as exc:
            outcome = PassResult(pass_id="", result="busy", message=str(exc))
            metrics.WRITER_BUSY.inc()
            log.warning("pass_skipped_writer_busy", message=str(exc))
        self.passes += 1
        self.health.update(
            result=outcome.result,
            revision=outcome.revision,
            message=outcome.message,
            invalid=None if outcome.desired is None else [e.as_dict() for e in outcome.errors],
        )
        self.invalid_log.report(outcome.revision, outcome.errors)
        if outcome.desired is not None:  # a cron trigger per schedule starts a pass at its tick
            sync_cron_triggers(self.scheduler, outcome.desired.schedules, self.trigger)
        return outcome

    def _report(self, outcome: PassResult) -> None:
        """Commit statuses and notifications of this pass: queued, never blocking or failing it."""
        if self.reporter is not None:
            self.reporter.after_pass(outcome)

    def _standby(self) -> PassResult | None:
        """Renew the lease right before a pass; without it, report standby and skip."""
        if self.lease is None:
            return None
        try:
            if self.lease.try_acquire():
                return None
            outcome = PassResult(pass_id="", result="standby")
            outcome.message = (
                f"standby: lease {self.lease.name!r} is held by "
                f"{self.lease.current_holder or 'nobody yet'}"
            )
        except LeaseError as exc:
            outcome = PassResult(pass_id="", result="error", message=str(exc))
            log.error("lease_misconfigured", error=str(exc))
        self.health.update(result=outcome.result, revision="", message=outcome.message)
        return outcome

    def _pass(self) -> PassResult:
        """One pass as the ledger's only writer."""
        if self.lease is not None:
            # The lease is the writer lock: held (``_standby`` just renewed it) and kept.
            fence = self.lease.fence()
            if fence is None:  # it ran out between the renewal and now: nothing written
                return PassResult(pass_id="", result="lease-lost", message="lease not held")
            return self._pass_as_writer(fence)
        # A ledger file: a manual `reconcile` (or a second daemon on the same file) holds
        # its lock for its pass; this pass waits a while, then tries next time.
        with writing(self.ledger, "run", wait=min(self.settings.interval, 60.0)) as fence:
            return self._pass_as_writer(fence)

    def _pass_as_writer(self, fence: Fence | None) -> PassResult:
        outcome = run_pass(
            self.settings, self.source, self.api, self.ledger, cache=self.cache, fence=fence
        )
        # Ledger writes of their own: under the same lock as the pass.
        prune_if_due(self.ledger, self.settings.ledger_retention_days)
        self._report(outcome)
        return outcome

    @property
    def pass_pending(self) -> bool:
        """A pass has been asked for and has not started yet."""
        return self._wanted.is_set()

    def trigger(self) -> None:
        """Run a pass now, or as soon as the one in flight ends (one follow-up, however
        many triggers arrive during it)."""
        if self._running:
            log.info("pass_requested", follow_up=True)
        self._wanted.set()

    def _interval_tick(self) -> None:
        # A tick during a pass is skipped: the pass in flight already reads the branch.
        if not self._running:
            self._wanted.set()

    def _run_passes(self) -> None:
        while True:
            self._wanted.wait()
            if self._stopping:
                return
            with self.pass_lock:
                self._wanted.clear()  # triggers from here on ask for one more pass
                self._running = True
                try:
                    self.run_once()
                except Exception:  # a crashed pass must not end the daemon's passes
                    log.exception("pass_crashed")
                finally:
                    self._running = False

    def start(self) -> None:
        self.server, self.webhook_server = serve_endpoints(self.settings, self.health, self.trigger)
        hook = self.webhook_server
        log.info(
            "daemon_started",
            listen=f"{self.server.server_name}:{self.server.server_port}",
            webhook_listen=f"{hook.server_name}:{hook.server_port}" if hook else "",
            repo=self.settings.repo,
            branch=self.settings.branch,
            interval_seconds=self.settings.interval,
            ledger=str(self.settings.state),
        )
        self.runner = threading.Thread(target=self._run_passes, name="pass-runner", daemon=True)
        self.runner.start()
        self.scheduler.add_job(
            self._interval_tick,
            "interval",
            id=JOB_ID,
            seconds=self.settings.interval,
            jitter=max(1, int(self.settings.interval * 0.1)),
            next_run_time=datetime.now().astimezone(),
        )
        self.scheduler.start()
        if self.lease is not None:  # standby: take over as soon as the leader goes silent
            self.lease_keeper = LeaseKeeper(self.lease, on_acquired=self.trigger)
            self.lease_keeper.start()

    def stop(self) -> None:
        self._stopping = True
        if self.scheduler.running:
            # APScheduler's shutdown(wait=True) holds the job-store lock while it waits
            # for its jobs, and a pass touches the job store (cron triggers): a SIGTERM
            # mid-pass deadlocked. Stop scheduling, then wait for the pass.
            self.scheduler.shutdown(wait=False)
        self._wanted.set()  # wake the runner: it ends after the pass in flight
        if self.runner is not None:
            self.runner.join()
        with self.pass_lock:
            pass
        if self.reporter is not None:  # send what is queued (a few seconds at most)
            self.reporter.close()
        if self.lease_keeper is not None:
            self.lease_keeper.stop()
        if self.lease is not None:  # after the last pass: a standby may take over now
            self.lease.release()
        for server in (self.server, self.webhook_server):
            if server is not None:
                server.shutdown()
        self.stopped.set()
        log.info("daemon_stopped", passes=self.passes)

    def run_forever(self) -> None:
        def on_signal(signum: int, _: Any) -> None:
            log.info("signal", signal=signal.Signals(signum).name)
            threading.Thread(target=self.stop, daemon=True).start()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.start()
        self.stopped.wait()
