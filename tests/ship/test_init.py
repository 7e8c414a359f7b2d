"""``batch-gitops init``: the scaffold is a valid manifest repository (``validate``
passes, including its own team policy), its CI files validate on pull requests,
post the plan, and never apply, and its editor settings point at the schema."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pytest
import yaml

from controller.cli.markdown import COMMENT_MARKER
from controller.cli.scaffold import SCHEMA_PATH, template_files
from controller.demo import backend as demo_backend
from controller.model.manifests import Manifest, load_manifest, parse_document
from tests.conftest import EXAMPLES, GitRepo
from tests.support.cli import controller_env, run_cli

ENVELOPE_EXAMPLE = "teams/analytics/jobs/analytics-hello.yaml"
PLAIN_EXAMPLE = "teams/analytics/jobs/analytics-report.json"
DEFINITION_EXAMPLE = "teams/analytics/definitions/analytics-hello.yaml"


cli = run_cli


def test_scaffold_validates(tmp_path: Path) -> None:
    """init writes team folders, the policy, examples, CI files and the schema; then
    `batch-gitops validate` on it exits 0 with the example jobs and definition."""
    target = tmp_path / "batch-manifests"
    created = cli("init", str(target))
    assert created.returncode == 0, created.stderr
    for path in (
        ".batch-gitops/policy.yaml",
        ".github/workflows/batch-gitops.yml",
        ".gitlab-ci.yml",
        ".vscode/settings.json",
        SCHEMA_PATH,
        "teams/analytics/definitions/analytics-hello.yaml",
        "teams/analytics/jobs/analytics-hello.yaml",
        "teams/finance/jobs/.gitkeep",
    ):
        assert (target / path).is_file(), path
    validated = cli("validate", str(target), "--output", "json")
    assert validated.returncode == 0, validated.stdout + validated.stderr
    body = json.loads(validated.stdout)
    assert body["valid"] and body["jobs"] == 2 and body["definitions"] == 1


def test_scaffold_policy_is_enforced(tmp_path: Path) -> None:
    """The scaffolded policy is live: a job on another team's queue fails validate."""
    target = tmp_path / "repo"
    assert cli("init", str(target)).returncode == 0
    (target / "teams/analytics/jobs/sneaky.json").write_text(
        json.dumps(
            {
                "jobName": "analytics-sneaky",
                "jobQueue": "finance-queue",
                "jobDefinition": "analytics-hello",
                "tags": {"CostCenter": "analytics"},
            }
        )
    )
    validated = cli("validate", str(target))
    assert validated.returncode == 1
    assert "sneaky.json" in validated.stdout + validated.stderr


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    """A second init into the same folder fails, names a file it would overwrite and
    leaves an edited file alone; --force overwrites it with the template again."""
    assert cli("init", str(tmp_path)).returncode == 0
    policy = tmp_path / ".batch-gitops/policy.yaml"
    template = policy.read_text()
    policy.write_text("# edited by the team\n")
    again = cli("init", str(tmp_path))
    assert again.returncode == 1 and "--force" in again.stderr
    assert any(f"(e.g. {path})" in again.stderr for path, _ in template_files()), again.stderr
    assert policy.read_text() == "# edited by the team\n"
    assert cli("init", str(tmp_path), "--force").returncode == 0
    assert policy.read_text() == template


def test_ci_templates_validate_and_plan_but_never_apply() -> None:
    """GitHub: validate and plan run on pull_request, plan output is markdown posted as
    a comment; GitLab: same on merge requests. Neither runs reconcile or run."""
    files = dict(template_files())
    github = yaml.safe_load(files[".github/workflows/batch-gitops.yml"])
    triggers = github.get("on", github.get(True))  # YAML 1.1 reads a bare `on` as true
    assert set(triggers) == {"pull_request"}
    steps = {
        name: "\n".join(str(step.get("run", "")) for step in job["steps"])
        for name, job in github["jobs"].items()
    }
    assert "batch-gitops validate" in steps["validate"]
    assert "--output markdown" in steps["plan"] and "gh pr comment" in steps["plan"]
    # The comment is found again by the renderer's marker, so a push updates it.
    assert COMMENT_MARKER in steps["plan"]
    gitlab = yaml.safe_load(files[".gitlab-ci.yml"])
    gitlab_scripts = "\n".join(
        "\n".join(job["script"]) for name, job in gitlab.items() if name.startswith("batch")
    )
    assert "batch-gitops validate" in gitlab_scripts
    assert "--output markdown" in gitlab_scripts and "merge_requests" in gitlab_scripts
    for text in (json.dumps(steps), gitlab_scripts):
        for applying in ("batch-gitops reconcile", "batch-gitops run", "allow-mass-prune"):
            assert applying not in text


def _schema_errors(validator: jsonschema.Draft7Validator, document: Any) -> str:
    return "; ".join(error.message for error in validator.iter_errors(document))


def _broken_examples(root: Path) -> dict[str, tuple[Any, str]]:
    """Known-bad documents made from the scaffold's own examples, each with the key or
    value the schema must name: typos, a bad enum, a wrong type, a missing field."""
    envelope = parse_document("hello.yaml", (root / ENVELOPE_EXAMPLE).read_bytes())
    plain = parse_document("report.json", (root / PLAIN_EXAMPLE).read_bytes())
    definition = parse_document("def.yaml", (root / DEFINITION_EXAMPLE).read_bytes())
    assert isinstance(envelope, dict) and isinstance(plain, dict)
    assert isinstance(definition, dict)
    without_queue = {k: v for k, v in plain.items() if k != "jobQueue"}
    return {
        "spec typo": ({**envelope, "spec": {**envelope["spec"], "jobQeue": "x"}}, "jobQeue"),
        "options typo": ({**envelope, "options": {"onChnage": "keep"}}, "onChnage"),
        "bad onChange": ({**envelope, "options": {"onChange": "kep"}}, "kep"),
        "bad kind": ({**envelope, "kind": "Jobs"}, "Jobs"),
        "missing jobQueue": (without_queue, "jobQueue"),
        "bad dependency type": (
            {**plain, "dependsOn": [{"jobId": "analytics-hello", "type": "SEQUENTAIL"}]},
            "SEQUENTAIL",
        ),
        "bad definition type": ({**definition, "type": "contianer"}, "contianer"),
        "wrong type": ({**definition, "retryStrategy": {"attempts": "two"}}, "two"),
    }


def test_editor_settings_point_at_the_schema(tmp_path: Path) -> None:
    """`init` writes .vscode/settings.json mapping YAML and JSON manifests to the schema
    file it also writes; that file is exactly what the installed `batch-gitops schema`
    prints, a valid Draft 7 schema that accepts the scaffold's examples and the
    repository's manifests/, and rejects known-bad documents (made from the scaffold's
    own examples), naming the offending key or value, as `validate` does."""
    target = tmp_path / "scaffold"
    assert cli("init", str(target)).returncode == 0
    settings = json.loads((target / ".vscode/settings.json").read_text())
    assert f"./{SCHEMA_PATH}" in settings["yaml.schemas"]
    assert settings["json.schemas"][0]["url"] == f"./{SCHEMA_PATH}"
    schema = json.loads((target / SCHEMA_PATH).read_text())
    console_script = Path(sys.executable).parent / "batch-gitops"
    printed = subprocess.run(
        [str(console_script), "schema"], capture_output=True, text=True, timeout=60
    )
    assert printed.returncode == 0, printed.stderr
    assert schema == json.loads(printed.stdout)
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)

    examples = sorted(
        p for p in (target / "teams").rglob("*") if p.suffix in (".json", ".yaml", ".yml")
    )
    assert [p.relative_to(target).as_posix() for p in examples] == sorted(
        [ENVELOPE_EXAMPLE, PLAIN_EXAMPLE, DEFINITION_EXAMPLE]
    )
    for path in [*examples, *sorted(EXAMPLES.rglob("*.json")), *sorted(EXAMPLES.rglob("*.yaml"))]:
        document = parse_document(path.name, path.read_bytes())
        assert _schema_errors(validator, document) == "", path

    for name, (document, needle) in _broken_examples(target).items():
        errors = _schema_errors(validator, document)
        assert needle in errors, f"{name}: schema said {errors!r}"
        raw = json.dumps(document).encode()
        assert not isinstance(load_manifest("x.json", raw), Manifest), name


def _check_jsonschema() -> str:
    found = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("check-jsonschema is not installed: it comes with the [test] extra")
    return found


@pytest.mark.parametrize(
    ("path", "builtin"),
    [
        (".github/workflows/batch-gitops.yml", "vendor.github-workflows"),
        (".gitlab-ci.yml", "vendor.gitlab-ci"),
    ],
)
def test_ci_templates_match_the_ci_schemas(tmp_path: Path, path: str, builtin: str) -> None:
    """The workflow and the GitLab snippet validate against GitHub's and GitLab's own
    schemas (vendored by check-jsonschema, offline); a misspelt key does not."""
    content = dict(template_files())[path]
    good = tmp_path / "good.yml"
    good.write_bytes(content)
    checked = subprocess.run(
        [_check_jsonschema(), "--builtin-schema", builtin, str(good)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    bad = tmp_path / "bad.yml"
    broken = content.replace(b"runs-on:", b"runs-onn:").replace(b"  script:", b"  scripts:")
    assert broken != content
    bad.write_bytes(broken)
    rejected = subprocess.run(
        [_check_jsonschema(), "--builtin-schema", builtin, str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rejected.returncode == 1, rejected.stdout


def pull_request_checkout(moto: demo_backend.MotoBatch, tmp_path: Path) -> tuple[Path, str]:
    """A scaffolded upstream whose main the controller applied (its own ledger), and a
    clone detached at a pull-request head that adds one job, as CI checks it out."""
    upstream = GitRepo(tmp_path / "upstream")
    assert cli("init", str(upstream.path)).returncode == 0
    upstream.commit("scaffold")
    # The controller has applied the target branch (its ledger is elsewhere).
    moto.create_queues(["analytics-queue"])
    env = controller_env(
        moto.endpoint,
        None,
        tmp_path / "controller.sqlite",
        BATCH_GITOPS_WORKDIR=str(tmp_path / "controller-cache"),
    )
    applied = cli("reconcile", "--repo", str(upstream.path), env=env)
    assert applied.returncode == 0, applied.stderr
    clone = tmp_path / "checkout"
    subprocess.run(["git", "clone", "-q", str(upstream.path), str(clone)], check=True)
    pr = GitRepo(clone)  # re-initialising a clone only sets the test identity
    pr.git("config", "user.name", "Pat Contributor")
    pr.git("config", "user.email", "pat@example.com")
    pr.write(
        "teams/analytics/jobs/extra.json",
        {
            "jobName": "analytics-extra",
            "jobQueue": "analytics-queue",
            "jobDefinition": "analytics-hello",
            "tags": {"CostCenter": "analytics"},
        },
    )
    head = pr.commit("add a job")
    pr.git("checkout", "-q", "--detach", head)
    return clone, head


def test_github_plan_step_runs_in_a_pull_request_checkout(
    moto: demo_backend.MotoBatch, tmp_path: Path
) -> None:
    """The workflow's own validate and Plan scripts, run with bash in a detached
    checkout of a PR head (as actions/checkout leaves it), with the variables GitHub
    sets, after the controller applied main: validate passes against origin/main's
    policy; the Plan step rebuilds a throw-away ledger from AWS tags (main's jobs AWS
    has forgotten assumed run), so plan.md lists only the PR's new job (linked), not
    main's jobs again, forgotten or not; the step summary has it, and exit=2 is
    recorded."""
    clone, head = pull_request_checkout(moto, tmp_path)
    # One of main's jobs ended long ago and AWS has forgotten it; the controller's ledger
    # (not at hand in CI) remembers it, so the pull request must not plan it again.
    listed = moto.client().list_jobs(jobQueue="analytics-queue", jobStatus="SUCCEEDED")
    demo_backend.forget_job(listed["jobSummaryList"][0]["jobId"])

    workflow = yaml.safe_load(dict(template_files())[".github/workflows/batch-gitops.yml"])
    steps = {s.get("name", s.get("run", "")): s for s in workflow["jobs"]["plan"]["steps"]}
    validate_run = workflow["jobs"]["validate"]["steps"][-1]["run"]
    outputs, summary = tmp_path / "github_output", tmp_path / "step_summary"
    # The step's env block, with GitHub's expressions substituted as GitHub would.
    step_env = {
        name: value.replace("${{ github.base_ref }}", "main")
        .replace("${{ github.event.pull_request.head.sha }}", head)
        .replace("${{ runner.temp }}", str(tmp_path))
        .replace("${{ github.server_url }}", "https://github.com")
        .replace("${{ github.repository }}", "example/batch-manifests")
        for name, value in steps["Plan"]["env"].items()
    }
    env = {
        **os.environ,
        **step_env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "AWS_ENDPOINT_URL_BATCH": moto.endpoint,
        "BATCH_GITOPS_WORKDIR": str(tmp_path / "cache"),
        "GITHUB_OUTPUT": str(outputs),
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    assert "${{" not in json.dumps(step_env)
    assert env["LINK_BASE"] == f"https://github.com/example/batch-manifests/blob/{head}/"
    # GitHub expressions the scripts use, as GitHub would substitute them.
    validate_script = validate_run.replace("${{ github.base_ref }}", "main")
    validated = subprocess.run(
        ["bash", "-e", "-c", validate_script],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert validated.returncode == 0, validated.stdout + validated.stderr
    planned = subprocess.run(
        ["bash", "-e", "-c", steps["Plan"]["run"]],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert planned.returncode == 0, planned.stderr
    assert "rebuilt 1 job runs (1 jobs) and 1 definition revisions" in planned.stderr
    assert "1 jobs of " in planned.stderr and "AWS no longer lists assumed run" in planned.stderr
    comment = (clone / "plan.md").read_text()
    assert comment.startswith(COMMENT_MARKER)
    assert f"]({env['LINK_BASE']}teams/analytics/jobs/extra.json)" in comment
    # Only the pull request's change: what main already ran is not planned again.
    assert "**1 job to submit.**" in comment, comment
    assert outputs.read_text().strip() == "exit=2"
    assert summary.read_text() == comment


class _NoteCatcher(BaseHTTPRequestHandler):
    """The GitLab notes API, as far as the snippet uses it: records each POST."""

    received: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, dict(self.headers), body))
        self.send_response(201)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_GET(self) -> None:  # the listing the snippet searches first: no notes yet
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.send_header("X-Next-Page", "")
        self.end_headers()
        self.wfile.write(b"[]")

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_gitlab_plan_job_posts_the_note(moto: demo_backend.MotoBatch, tmp_path: Path) -> None:
    """The GitLab snippet's own plan script, run with bash in a merge-request checkout
    with GitLab's variables, posts one note (to a local stand-in of the notes API)
    whose body is the plan comment listing only the merge request's new job, and
    exits 0 for 'changes pending'."""
    clone, head = pull_request_checkout(moto, tmp_path)
    gitlab = yaml.safe_load(dict(template_files())[".gitlab-ci.yml"])
    script = "\n".join(gitlab["batch-gitops:plan"]["script"])
    _NoteCatcher.received.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NoteCatcher)
    # A short poll interval: shutdown() waits for it.
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    env = gitlab_merge_request_env(
        moto, tmp_path, clone, head, server.server_port, "glpat-test-token"
    )
    try:
        ran = subprocess.run(
            ["bash", "-e", "-c", script],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert ran.returncode == 0, ran.stderr
    assert len(_NoteCatcher.received) == 1
    path, headers, body = _NoteCatcher.received[0]
    assert path == "/api/v4/projects/42/merge_requests/7/notes"
    assert headers["PRIVATE-TOKEN"] == "glpat-test-token"
    note = json.loads(body)["body"]
    assert note.startswith(COMMENT_MARKER) and "**1 job to submit.**" in note
    link = f"{env['CI_PROJECT_URL']}/-/blob/{head}/teams/analytics/jobs/extra.json"
    assert link in note


def gitlab_merge_request_env(
    moto: demo_backend.MotoBatch, tmp_path: Path, clone: Path, head: str, api_port: int, token: str
) -> dict[str, str]:
    """The variables GitLab gives a merge-request pipeline (project 42, MR 7, target
    main), its API at a local stand-in on ``api_port``, AWS at moto."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "AWS_ENDPOINT_URL_BATCH": moto.endpoint,
        "BATCH_GITOPS_WORKDIR": str(tmp_path / "cache"),
        "CI_PROJECT_DIR": str(clone),
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
        "CI_COMMIT_SHA": head,
        "CI_PROJECT_URL": "https://gitlab.example.com/data/batch-manifests",
        "CI_API_V4_URL": f"http://127.0.0.1:{api_port}/api/v4",
        "CI_PROJECT_ID": "42",
        "CI_MERGE_REQUEST_IID": "7",
        "BATCH_GITOPS_NOTE_TOKEN": token,
    }
