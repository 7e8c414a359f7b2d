"""Findings 5, 6 and 7 of issue 15, tried again on a real terminal (a pty) and a pipe:
human output on stdout without log lines, logs only at warning unless -v, JSON from the
daemon, NO_COLOR honoured by output and logs, no hard wrap off a terminal, tables that fit
80 columns with whole names, and the small traps (status --offline without a region,
plural counts, a JSON syntax error without a `-` field)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import GitRepo
from tests.firstcontact.conftest import DEFINITION, User, job
from tests.support.terminal import run_on_terminal

SGR = re.compile(r"\x1b\[([0-9;]*)m")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def colour_codes(text: str) -> list[str]:
    """SGR sequences that set a colour (30-38, 40-48, 90-97, 100-107), not bold or reset."""
    found = []
    for params in SGR.findall(text):
        codes = [int(p) for p in params.split(";") if p.isdigit()]
        if any(30 <= c <= 38 or 40 <= c <= 48 or 90 <= c <= 97 or 100 <= c <= 107 for c in codes):
            found.append(params)
    return found


def test_one_shot_output_has_no_log_lines_and_the_daemon_logs_json(
    user: User, repo: GitRepo
) -> None:
    """Finding 5: `reconcile` on a terminal prints its summary only (no `[info] action` or
    `pass` lines repeating it); `-v` adds the info logs; `run` logs JSON even on a terminal."""
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/a.json", job("a"))
    repo.commit("a")
    code, text = run_on_terminal(["reconcile", "--repo", str(repo.path)], user.env)
    plain = ANSI.sub("", text)
    assert code == 0, plain
    assert "+ submit     job            test-queue/a" in plain and "2 of 2 changes applied" in plain
    assert "pass_id" not in plain and "[info" not in plain and "action" not in plain
    code, text = run_on_terminal(["plan", "-v", "--repo", str(repo.path)], user.env)
    plain = ANSI.sub("", text)
    assert code == 0 and "pass_id" in plain and "in sync" in plain
    code, text = run_on_terminal(
        ["run", "--repo", str(repo.path), "--listen", "127.0.0.1:0", "--interval", "1s"],
        user.env,
        until='"event": "pass"',
    )
    events = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert code == 0 and {"daemon_started", "pass"} <= {e["event"] for e in events}
    started = next(e for e in events if e["event"] == "daemon_started")
    assert started["ledger"] == str(user.default_ledger())


def test_no_color_is_honoured_by_output_and_logs(user: User, repo: GitRepo) -> None:
    """Finding 5: a failing plan on a terminal has colour in its error and its warning
    log line; with NO_COLOR=1 neither the output nor the logs carry a colour code."""
    repo.write("jobs/a.json", job("a"))
    repo.commit("a")
    args = ["plan", "--repo", str(repo.path), "--branch", "nope"]
    code, coloured = run_on_terminal(args, user.env)
    assert code == 1 and colour_codes(coloured), coloured
    assert "source_unavailable" in coloured  # the warning log line is there too
    code, plain = run_on_terminal(args, {**user.env, "NO_COLOR": "1"})
    assert code == 1 and "source_unavailable" in plain and "no branch" in plain
    assert colour_codes(plain) == []


def test_piped_output_is_never_hard_wrapped(user: User, repo: GitRepo) -> None:
    """Finding 5: `plan | cat` keeps a 120-character manifest path on one line (rich's
    default of 80 columns off a terminal used to split it)."""
    deep = "teams/" + "/".join(["a-rather-long-folder-name"] * 4) + "/nightly-report-job.json"
    assert len(deep) > 110
    repo.write(deep, job("nightly-report"))
    repo.commit("deep")
    planned = user.run("plan", "--repo", str(repo.path))
    assert planned.returncode == 2, planned.stdout + planned.stderr
    assert any(deep in line for line in planned.stdout.splitlines()), planned.stdout


def test_status_fits_80_columns_with_whole_names(user: User, applied: GitRepo) -> None:
    """Finding 6: at 80x24 `status` shows `train-model-42` and `train-model-experiment-42`
    whole in rows no wider than the terminal, says which columns it left out, and shows
    every column on a wide terminal."""
    code, text = run_on_terminal(["status"], user.env, columns=80)
    plain = ANSI.sub("", text)
    assert code == 0, plain
    rows = plain.splitlines()
    assert max(len(row) for row in rows) <= 80, plain
    assert any(row.split()[:1] == ["train-model-42"] for row in rows if row.strip())
    assert any(row.split()[:1] == ["train-model-experiment-42"] for row in rows if row.strip())
    assert "not shown at this width" in plain
    code, wide = run_on_terminal(["status"], user.env, columns=220)
    assert code == 0 and "job id" in wide and "not shown at this width" not in wide


def test_small_traps(user: User, applied: GitRepo, tmp_path: Path) -> None:
    """Finding 7: `status --offline` needs no region; counts are singular when they are
    one; a JSON syntax error reads `path: message`, not `path: -: message`."""
    bare = {k: v for k, v in user.env.items() if k not in ("AWS_DEFAULT_REGION", "AWS_REGION")}
    bare["AWS_CONFIG_FILE"] = str(tmp_path / "no-config")
    offline = User(bare, user.home).run("status", "--offline")
    assert offline.returncode == 0, offline.stderr
    assert "train-model-experiment-42" in offline.stdout
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "trainer.json").write_text(json.dumps(DEFINITION))
    (folder / "a.json").write_text(json.dumps(job("a")))
    one = user.run("validate", str(folder))
    assert one.returncode == 0 and "1 job, 1 job definition, 0 problems" in one.stderr
    (folder / "broken.json").write_text('{"jobName": "b",')
    broken = user.run("validate", str(folder))
    assert broken.returncode == 1
    assert "broken.json: invalid JSON at line 1 column" in broken.stdout
    assert ": -:" not in broken.stdout and "1 problem" in broken.stderr
