"""The Grafana dashboard works for several controllers (issue 15): every query is scoped
by the namespace/job/instance variables, which list controllers from
batch_gitops_build_info; every (operation, code) label set of the AWS error counters is
exported from the start; and on a real Prometheus scraping two live daemons, choosing one
instance shows only that controller's series."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

from controller import dashboard, metrics
from controller.demo import backend as demo_backend
from tests.conftest import GitRepo
from tests.observability.live import http_get, run_daemon, run_prometheus, wait_until
from tests.observability.tools import require

DEFINITION = {
    "jobDefinitionName": "d",
    "type": "container",
    "containerProperties": {"image": "busybox", "vcpus": 1, "memory": 128},
}
SELECTOR = re.compile(r"\bbatch_gitops_[a-z_]+(\{[^}]*\})?")


def test_every_query_is_scoped_by_the_controller_variables() -> None:
    """Each batch_gitops_* selector of every panel carries namespace, job and instance
    matchers, and the three variables (multi, All = .*) come from build_info."""
    data = json.loads(dashboard.TARGET.read_text())
    exprs = [t["expr"] for p in data["panels"] if p["type"] != "row" for t in p["targets"]]
    assert exprs and exprs == dashboard.expressions()
    for expr in exprs:
        for match in SELECTOR.finditer(expr):
            matchers = match.group(1) or ""
            for name in ("namespace", "job", "instance"):
                assert f'{name}=~"${name}"' in matchers, (expr, match.group(0))
    variables = {v["name"]: v for v in data["templating"]["list"]}
    for name in ("namespace", "job", "instance"):
        variable = variables[name]
        assert "batch_gitops_build_info" in variable["query"]
        assert variable["multi"] and variable["includeAll"] and variable["allValue"] == ".*"


def test_build_info_and_every_aws_error_label_set_exist_from_the_start() -> None:
    """batch_gitops_build_info carries the version; both AWS error counters export every
    (operation, documented code) pair before any error happened."""
    samples = {
        (s.name, tuple(sorted(s.labels.items())))
        for family in REGISTRY.collect()
        for s in family.samples
    }
    build = [labels for name, labels in samples if name == "batch_gitops_build_info"]
    assert len(build) == 1 and dict(build[0])["version"]
    for counter in ("batch_gitops_aws_errors_total", "batch_gitops_aws_request_errors_total"):
        for operation in metrics.AWS_OPERATIONS:
            for code in metrics.AWS_ERROR_CODES:
                labels = tuple(sorted({"operation": operation, "code": code}.items()))
                assert (counter, labels) in samples, (counter, operation, code)


def test_choosing_an_instance_shows_only_that_controller(
    moto: demo_backend.MotoBatch, repo: GitRepo, tmp_path: Path
) -> None:
    """Two daemons (two repositories, two controller ids) scraped by one Prometheus: the
    instance variable's query lists both, and the dashboard's jobs panel with one instance
    chosen returns only that controller's queue."""
    prometheus_bin = require("prometheus")
    other = GitRepo(tmp_path / "other")
    for where, queue in ((repo, "test-queue"), (other, "cpu-job-queue")):
        where.write("defs/d.json", DEFINITION)
        where.write("jobs/j.json", {"jobName": "j", "jobQueue": queue, "jobDefinition": "d"})
        where.commit("one job")
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    with (
        run_daemon(repo.path, tmp_path / "one") as first,
        run_daemon(
            other.path, tmp_path / "two", env={"BATCH_GITOPS_CONTROLLER_ID": "other"}
        ) as second,
    ):
        targets = [d.url.removeprefix("http://") for d in (first, second)]
        for daemon in (first, second):
            wait_until(
                "a managed job on the daemon",
                lambda d=daemon: "batch_gitops_managed_jobs{" in http_get(f"{d.url}/metrics")[1],
                30,
            )
        with run_prometheus(prometheus_bin, targets, tmp_path) as prometheus:
            listed = wait_until(
                "both controllers in build_info",
                lambda: len(prometheus.query("batch_gitops_build_info")) == 2,
                30,
            )
            assert listed
            [jobs_panel] = [
                q.expr
                for p in dashboard.PANELS
                if p.title == "Managed jobs by status per queue"
                for q in p.queries
            ]
            scoped = dashboard.scoped(jobs_panel)
            for target, queue in zip(targets, ("test-queue", "cpu-job-queue"), strict=True):
                # A regex in a PromQL string: its backslashes are escaped once more.
                regex = re.escape(target).replace("\\", "\\\\")
                expr = dashboard.resolve(scoped.replace("$instance", regex))
                series = wait_until(
                    f"the jobs panel for {target}", lambda e=expr: prometheus.query(e), 30
                )
                assert {s["metric"]["queue"] for s in series} == {queue}
