"""The README cannot drift from the code: the configuration reference is the
current output of ``config-reference``; every ``batch-gitops`` command and flag
shown in a code block exists; every envelope option is documented; every
repository file and in-page anchor it links to exists; the quick start's test
command is the one ``.ci/run`` runs, and its demo command names real parts."""

from __future__ import annotations

import re
import tomllib

import click

from controller.cli.main import main
from controller.model.manifests import DefinitionOptions, JobOptions, ScheduleOptions
from tests.support.cli import run_cli
from tests.support.paths import ROOT

README = (ROOT / "README.md").read_text()
CI_RUN = ROOT / ".ci" / "run"


def _code_lines() -> list[str]:
    """Lines of fenced code blocks, shell continuations joined."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", README, flags=re.S)
    text = "\n".join(blocks).replace("\\\n", " ")
    return [line.strip() for line in text.splitlines()]


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, flags=re.S | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def test_config_reference_is_current() -> None:
    """`batch-gitops config-reference --check README.md` passes: every setting (env var,
    flag, default, description) and every command flag matches the code."""
    result = run_cli("config-reference", "--check", "README.md", cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_config_reference_names_every_setting() -> None:
    """Belt and braces: each BATCH_GITOPS_* variable of Settings appears in the README."""
    from controller.settings import Settings

    missing = [
        f"BATCH_GITOPS_{name.upper()}"
        for name in Settings.model_fields
        if f"`BATCH_GITOPS_{name.upper()}`" not in README
    ]
    assert missing == []


def test_every_command_in_the_readme_exists() -> None:
    """Each `batch-gitops <command>` in the README's prose or code is listed by
    `batch-gitops --help`, and each --flag on a code line exists on that command."""
    ctx = click.Context(main)
    commands = set(main.list_commands(ctx))
    # Where the README runs the command: inline code and code-block lines (not prose
    # like "what batch-gitops promises", nor `git notes --ref=batch-gitops show`).
    invocation = re.compile(r"(?:^|&&|\||;)\s*(?:\S*/)?batch-gitops ([a-z][a-z-]+)")
    spans = re.findall(r"`([^`\n]+)`", README) + _code_lines()
    mentioned = {m for span in spans for m in invocation.findall(span.strip())}
    assert {"validate", "plan", "schema", "init", "config-reference"} <= mentioned
    help_text = run_cli("--help").stdout
    unknown = sorted(name for name in mentioned if name not in commands)
    assert unknown == [], f"README mentions commands that do not exist: {unknown}"
    for name in mentioned:
        assert re.search(rf"^\s+{re.escape(name)}\b", help_text, flags=re.M), name
    checked = 0
    for line in _code_lines():
        match = re.match(r"(?:\.venv/bin/)?batch-gitops ([a-z-]+)(.*)", line)
        if not match or match.group(1) not in commands:
            continue
        command = main.get_command(ctx, match.group(1))
        assert command is not None
        rest = match.group(2)
        if isinstance(command, click.Group):  # e.g. `batch-gitops ledger rebuild ...`
            sub, _, rest = rest.strip().partition(" ")
            command = command.get_command(ctx, sub)
            assert command is not None, f"`{line}`: {match.group(1)} has no {sub}"
        known = {
            o
            for p in command.params
            for o in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])
        } | {"--help"}
        for flag in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", rest.split("#")[0]):
            assert flag in known, f"`{line}`: {match.group(1)} has no {flag}"
            checked += 1
    assert checked >= 5


def test_every_envelope_option_is_documented() -> None:
    """Every option of the envelope models (by its YAML name) is in the manifest reference."""
    section = _section("Manifest reference")
    for model in (JobOptions, DefinitionOptions, ScheduleOptions):
        for name, info in model.model_fields.items():
            assert f"`{info.alias or name}`" in section, f"{model.__name__}.{info.alias or name}"


def test_links_resolve() -> None:
    """Relative links point at files in the repository; #anchors at headings."""
    anchors = {
        re.sub(r"[^\w\- ]", "", heading.lower()).strip().replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", README, flags=re.M)
    }
    for target in re.findall(r"\]\(([^)]+)\)", README):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        if target.startswith("#"):
            assert target[1:] in anchors, target
        else:
            assert (ROOT / target.split("#")[0]).exists(), target


def _ci_test_command() -> str:
    """The command .ci/run runs after its comment "The README's test command:"."""
    lines = CI_RUN.read_text().splitlines()
    marker = next(i for i, line in enumerate(lines) if "The README's test command" in line)
    [command] = [line.strip() for line in lines[marker + 1 :] if line.strip()]
    return command


def _quick_start_commands() -> list[str]:
    """The code-block lines of the README's Quick start section, in order."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", _section("Quick start"), flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_readme_test_command_is_what_ci_runs() -> None:
    """The quick start's test command is, character for character, the command .ci/run
    runs (its last line), so the README's way to run the suite is the one CI proves."""
    command = _ci_test_command()
    assert command.endswith("python -m pytest"), command
    assert command in _quick_start_commands()


def test_readme_demo_command_names_real_parts() -> None:
    """The quick start's demo command installs an extra pyproject.toml defines, and runs
    the console script pyproject.toml declares with a command the CLI has."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    [demo] = [c for c in _quick_start_commands() if c.endswith(" demo")]
    extra = re.search(r"pip install (?:-q )?-e '\.\[(\w+)\]'", demo)
    assert extra is not None and extra.group(1) in pyproject["optional-dependencies"], demo
    script = re.search(r"\.venv/bin/([\w-]+) (\w+)$", demo)
    assert script is not None, demo
    assert script.group(1) in pyproject["scripts"]
    assert script.group(2) in main.list_commands(click.Context(main))
