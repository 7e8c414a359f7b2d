"""The pure parts of commit statuses: a commit's state and description from its runs,
the forge requests, and settings resolved into targets."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from controller.model.records import JobRecord
from controller.service.notify.commits import commit_report, run_outcome
from controller.service.notify.config import (
    ForgeTarget,
    NotifyConfigError,
    load_config,
    remote_path,
)
from controller.service.notify.forges import gitlab_verdict, status_request
from controller.settings import Settings

SHA = "a" * 40


def run(name: str, status: str | None = "SUCCEEDED", **changes: object) -> JobRecord:
    base = JobRecord(
        token=f"t-{name}",
        queue="q",
        name=name,
        manifest=f"jobs/{name}.json",
        spec_hash="h",
        revision=SHA,
        author="Ada",
        committed_at=0.0,
        job_id=f"id-{name}",
        state="submitted",
        status=status,
        status_reason=None,
        array_summary=None,
        prune=True,
        is_current=True,
        retired=False,
        created_at=0.0,
        updated_at=0.0,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_states_from_runs() -> None:
    """Queued and running jobs keep a commit pending (running wins), any FAILED or
    rejected job makes it a failure at once, invalid manifests alone an error; a job
    the controller stopped for a later commit is neither success nor failure."""
    assert commit_report([run("a", "RUNNABLE")]).state == "queued"  # type: ignore[union-attr]
    mixed = commit_report([run("a", "RUNNING"), run("b", "SUBMITTED")])
    assert mixed is not None and mixed.state == "running" and mixed.active
    failed = commit_report([run("a", "FAILED"), run("b", "RUNNING")])
    assert failed is not None and failed.state == "failure" and failed.active
    assert failed.description == "2 jobs: 1 failed, 1 running - failed: a"
    stopped = run("a", "FAILED", status_reason="batch-gitops: manifest changed at abc")
    assert run_outcome(stopped) == "replaced"
    assert commit_report([stopped]).state == "success"  # type: ignore[union-attr]
    assert run_outcome(run("a", "RUNNING", is_current=False)) == "replaced"
    error = commit_report([], ["jobs/x.json"])
    assert error is not None and error.state == "error"
    assert error.description == "1 invalid manifest: jobs/x.json"
    assert commit_report([]) is None
    # A job submitted again by the same commit (after a lost reply): the newest run counts.
    again = [run("a", None, state="lost"), dataclasses.replace(run("a"), token="t-a2")]
    assert commit_report(again).description == "1 job: 1 succeeded"  # type: ignore[union-attr]


def test_the_description_fits_github_and_names_what_failed() -> None:
    """50 failed jobs with long names: the description stays within GitHub's 140
    characters, starts with the counts, and ends with '+N more'."""
    runs = [run(f"nightly-feature-extraction-{n:02d}", "FAILED") for n in range(50)]
    report = commit_report(runs)
    assert report is not None
    assert len(report.description) <= 140
    assert report.description.startswith("50 jobs: 50 failed - failed: nightly-feature-")
    assert report.description.endswith("more")


def test_status_requests_match_the_documented_shapes() -> None:
    """GitHub: POST /repos/{owner}/{repo}/statuses/{sha}, Bearer token, the API version
    header; GitLab: the project path URL-encoded (nested groups too), PRIVATE-TOKEN,
    running and failed as GitLab names them; {sha} in the target URL is filled in."""
    report = commit_report([run("a", "RUNNING")])
    assert report is not None
    github = status_request(
        ForgeTarget("github", "https://ghe.example.com/api/v3", "o/r", SecretStr("ghp-x")),
        SHA,
        report,
        context="batch-gitops",
        target_url="https://ci.example.com/{sha}",
    )
    assert github.url == f"https://ghe.example.com/api/v3/repos/o/r/statuses/{SHA}"
    assert github.headers["Authorization"] == "Bearer ghp-x"
    assert github.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert github.body == {
        "state": "pending",
        "description": "1 job: 1 running",
        "context": "batch-gitops",
        "target_url": f"https://ci.example.com/{SHA}",
    }
    gitlab = status_request(
        ForgeTarget("gitlab", "https://gitlab.example.com/api/v4", "a/b/c", SecretStr("gl")),
        SHA,
        report,
        context="batch-gitops",
        target_url="",
    )
    assert gitlab.url == f"https://gitlab.example.com/api/v4/projects/a%2Fb%2Fc/statuses/{SHA}"
    assert gitlab.headers == {"PRIVATE-TOKEN": "gl"}
    assert gitlab.body == {
        "state": "running",
        "name": "batch-gitops",
        "description": "1 job: 1 running",
    }
    transition = json.dumps({"message": "Cannot transition status via :run from :running"})
    assert gitlab_verdict(400, transition.encode()) == "sent"
    assert gitlab_verdict(400, b'{"message": "state is invalid"}') == "rejected"
    assert gitlab_verdict(503, b"") == "failed"


@pytest.mark.parametrize(
    ("repo", "path"),
    [
        ("https://github.com/data-team/batch-manifests.git", "data-team/batch-manifests"),
        ("https://x-access-token:ghs-secret@github.com/o/r", "o/r"),
        ("git@github.com:o/r.git", "o/r"),
        ("ssh://git@gitlab.example.com:2222/group/sub/project.git", "group/sub/project"),
        ("/srv/git/manifests", ""),
        ("file:///srv/git/manifests.git", ""),
    ],
)
def test_the_repository_comes_from_the_remote_url(repo: str, path: str) -> None:
    """owner/name (or a GitLab group path) from https, scp-like and ssh remotes,
    credentials dropped; nothing from a local path."""
    assert remote_path(repo) == path


def test_settings_resolve_into_targets(tmp_path: Path) -> None:
    """A token file wins over the environment's token; the repository is derived from the
    remote; an empty token file and a non-http API URL are errors naming the setting."""
    token = tmp_path / "token"
    token.write_text("from-file\n")
    settings = Settings(
        repo="git@github.com:o/r.git",
        github_token=SecretStr("from-env"),
        github_token_file=token,
        gitlab_token=SecretStr("gl"),
        notify_urls=SecretStr("https://hooks.slack.com/services/A/B/C, https://chat.example.com/x"),
    )
    config = load_config(settings)
    github, gitlab = config.forges
    assert github.token.get_secret_value() == "from-file" and github.repository == "o/r"
    assert github.api_url == "https://api.github.com"
    assert gitlab.repository == "o/r" and gitlab.api_url == "https://gitlab.com/api/v4"
    assert len(config.webhook_urls) == 2
    assert "/services/A/B/C" in config.secrets()  # the path alone is scrubbed too
    token.write_text("\n")
    with pytest.raises(NotifyConfigError, match=r"BATCH_GITOPS_GITHUB_TOKEN_FILE: .* is empty"):
        load_config(settings)
    bad_api = settings.model_copy(update={"github_token_file": None, "github_api_url": "ghe"})
    with pytest.raises(NotifyConfigError, match="BATCH_GITOPS_GITHUB_API_URL"):
        load_config(bad_api)
    assert not load_config(Settings(repo="/srv/git")).enabled
