"""A real Prometheus scrapes a live controller daemon (against moto), and every PromQL
expression of the Grafana dashboard returns data through Prometheus's HTTP API."""

from __future__ import annotations

import json
from pathlib import Path

from controller import dashboard
from controller.demo import backend as demo_backend
from tests.conftest import GitRepo
from tests.observability.live import http_get, run_daemon, run_prometheus, wait_until
from tests.observability.tools import require
from tests.support.manifests import definition, job

DEFINITION = definition("trainer")


def _metric_seen(daemon_url: str, fragment: str) -> bool:
    return fragment in http_get(f"{daemon_url}/metrics")[1]


def test_every_dashboard_query_has_data_on_a_live_controller(
    moto: demo_backend.MotoBatch, repo: GitRepo, tmp_path: Path
) -> None:
    """Commit 1 submits three jobs (a clean pass: applied revision set); commit 2 removes one
    (cancel), adds an invalid manifest and a job on a queue that does not exist (an AWS
    error). Prometheus, scraping the daemon every second, then answers every dashboard
    expression with at least one series, and the alert expressions agree with the state."""
    prometheus_bin = require("prometheus")
    demo_backend.set_mode("queued")  # jobs stay SUBMITTED, so removing one cancels it
    repo.write("defs/trainer.json", DEFINITION)
    for name in ("alpha", "beta"):
        repo.write(f"jobs/{name}.json", job(name))
    repo.write("jobs/gamma.json", job("gamma", "cpu-job-queue"))
    repo.commit("three jobs")

    with run_daemon(repo.path, tmp_path) as daemon:
        assert http_get(f"{daemon.url}/healthz")[0] == 200
        wait_until(
            "a clean first pass (/readyz 200)",
            lambda: http_get(f"{daemon.url}/readyz")[0] == 200,
            30,
            0.2,
        )
        target = daemon.url.removeprefix("http://")
        with run_prometheus(prometheus_bin, target, tmp_path) as prometheus:
            wait_until(
                "Prometheus to scrape the daemon",
                lambda: prometheus.query('up{job="batch-gitops"} == 1'),
                20,
                0.2,
            )
            repo.remove("jobs/beta.json")
            repo.write("jobs/broken.json", {"jobName": "broken", "jobQueue": "test-queue"})
            repo.write("jobs/lost.json", job("lost", "no-such-queue"))
            second = repo.commit("drop beta, break things")
            wait_until(
                "the cancel and the failed submit",
                lambda: (
                    _metric_seen(daemon.url, 'action="cancel"')
                    and _metric_seen(daemon.url, 'result="failed"')
                ),
                30,
                0.2,
            )
            # Readiness holds on a degraded pass: the source was read.
            status, body = http_get(f"{daemon.url}/readyz")
            assert status == 200 and json.loads(body)["revision"] == second

            expressions = [e.replace("$__rate_interval", "1m") for e in dashboard.expressions()]
            empty: list[str] = list(expressions)

            def all_have_data() -> bool:
                empty[:] = [e for e in empty if not prometheus.query(e)]
                return not empty

            try:
                wait_until("every dashboard expression to return data", all_have_data, 30, 1.0)
            except AssertionError as exc:
                raise AssertionError(f"{exc}; still empty: {empty}") from exc

            # The numbers are the pipeline's, not just present.
            applied = prometheus.query("batch_gitops_applied_revision_info")
            attempted = prometheus.query("batch_gitops_attempted_revision_info")
            assert applied[0]["metric"]["revision"] != second
            assert attempted[0]["metric"]["revision"] == second
            behind = prometheus.query(
                "count(batch_gitops_attempted_revision_info unless on (revision) "
                "batch_gitops_applied_revision_info) or vector(0)"
            )
            assert float(behind[0]["value"][1]) == 1
            # The applied commit (the first) was made seconds ago; the age grows at scrape time.
            age = prometheus.query("batch_gitops_applied_revision_age_seconds")
            assert 0 < float(age[0]["value"][1]) < 600
            invalid = prometheus.query('sum(batch_gitops_manifests{valid="false"})')
            assert float(invalid[0]["value"][1]) == 1
            submits = prometheus.query(
                'sum(batch_gitops_actions_total{action="submit", result="ok"})'
            )
            assert float(submits[0]["value"][1]) == 3
            errors = prometheus.query(
                'batch_gitops_aws_request_errors_total{operation="SubmitJob"} > 0'
            )
            assert errors and errors[0]["metric"]["code"] == "ClientException"

            # The gauge reads the ledger's statuses: the cancelled job leaves it once the
            # pass that cancelled it recorded the FAILED status it verified.
            def jobs_by_queue() -> dict[str, float]:
                jobs = prometheus.query("sum by (queue) (batch_gitops_managed_jobs)")
                return {s["metric"]["queue"]: float(s["value"][1]) for s in jobs}

            wait_until(
                "the cancelled job to leave the managed-jobs gauge",
                lambda: jobs_by_queue() == {"test-queue": 1, "cpu-job-queue": 1},
                15,
                0.2,
            )
            # Alert expressions on the live state: what is wrong shows, what is fine does not.
            assert not prometheus.query(
                'up{job="batch-gitops"} == 0 or absent(up{job="batch-gitops"})'
            )
            assert prometheus.query('sum by (instance) (batch_gitops_manifests{valid="false"}) > 0')
            # increase() needs two scrapes that differ: the rejected submit is retried each
            # pass, so wait (bounded) for a scrape after the next retry.
            wait_until(
                "the failing-actions alert expression to see the retried submit",
                lambda: bool(
                    prometheus.query(
                        "sum by (instance, action) "
                        '(increase(batch_gitops_actions_total{result="failed"}[15m])) > 0'
                    )
                ),
                15,
                0.2,
            )
            assert not prometheus.query(
                "time() - batch_gitops_last_successful_pass_timestamp_seconds > 900"
            )
