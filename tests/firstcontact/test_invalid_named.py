"""Finding 1 of issue 15, tried again: the daemon names every invalid manifest where an
operator looks — one `manifest_invalid` log event per file and field when it first reads
a revision (not on every pass), the list in /readyz with a message naming the files, the
`batch_gitops_manifests{valid="false"}` gauge of invalid files, and `status`."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import GitRepo
from tests.firstcontact.conftest import DEFINITION, User, job
from tests.observability.live import http_get, run_daemon, wait_until


def _passes(url: str, result: str) -> int:
    found = re.search(
        rf'batch_gitops_passes_total\{{result="{result}"\}} (\S+)', http_get(f"{url}/metrics")[1]
    )
    return int(float(found.group(1))) if found else 0


def test_invalid_manifests_are_named_in_the_log_readyz_metrics_and_status(
    user: User, repo: GitRepo, tmp_path: Path
) -> None:
    """Two broken files: two `manifest_invalid` events over two or more passes, /readyz
    lists both (and stays ready: the source was read), the gauge reads 2; fixing one in a
    new commit logs the other once more for that revision; `status` lists what is left."""
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/good.json", job("good"))
    repo.write("jobs/typo.json", {**job("typo"), "jobQueu": "test-queue"})
    repo.write("jobs/cut.json", '{"jobName": "cut",')
    repo.commit("one good, two broken")
    with run_daemon(repo.path, tmp_path, env=user.env) as daemon:
        wait_until("two passes", lambda: _passes(daemon.url, "degraded") >= 2, 30)
        status, body = http_get(f"{daemon.url}/readyz")
        ready = json.loads(body)
        assert status == 200 and ready["last_result"] == "degraded"
        assert sorted(e["path"] for e in ready["invalid_manifests"]) == [
            "jobs/cut.json",
            "jobs/typo.json",
        ]
        assert ready["message"].startswith("2 invalid manifests, not applied: jobs/")
        metrics = http_get(f"{daemon.url}/metrics")[1]
        assert 'batch_gitops_manifests{kind="any",valid="false"} 2.0' in metrics
        events = [e for e in daemon.log_events() if e["event"] == "manifest_invalid"]
        assert sorted((e["manifest"], e.get("field")) for e in events) == [
            ("jobs/cut.json", None),
            ("jobs/typo.json", "jobQueu"),
        ]
        assert all(e["level"] == "warning" and e["problem"] for e in events)

        repo.remove("jobs/cut.json")
        fixed = repo.commit("drop the cut file")
        wait_until(
            "the new revision's invalid manifest to be logged",
            lambda: any(
                e["event"] == "manifest_invalid" and e["revision"] == fixed[:12]
                for e in daemon.log_events()
            ),
            30,
        )
        before = _passes(daemon.url, "degraded")
        wait_until("one more pass", lambda: _passes(daemon.url, "degraded") >= before + 1, 30)
        events = [e for e in daemon.log_events() if e["event"] == "manifest_invalid"]
        assert [e["manifest"] for e in events if e["revision"] == fixed[:12]] == ["jobs/typo.json"]
    shown = user.run("status", "--offline", "--state", str(tmp_path / "ledger.sqlite"))
    assert shown.returncode == 0, shown.stderr
    assert f"1 invalid manifest at {fixed[:12]}" in shown.stdout
    assert "jobs/typo.json: jobQueu: unknown field" in shown.stdout
    body = json.loads(
        user.run(
            "status", "--offline", "-o", "json", "--state", str(tmp_path / "ledger.sqlite")
        ).stdout
    )
    assert body["invalid_manifests"]["revision"] == fixed
    assert [e["path"] for e in body["invalid_manifests"]["errors"]] == ["jobs/typo.json"]
