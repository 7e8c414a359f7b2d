"""The README and docs/ cannot drift from the code: the configuration reference
(docs/configuration.md) is the current output of ``config-reference``; every
``batch-gitops`` command and flag shown in a code block exists; every envelope
option is documented (docs/manifests.md); every repository file and in-page
anchor the README links to exists; the quick start's test
command is the one ``.ci/run`` runs, and its demo command names real parts.
The site itself (mkdocs --strict, nav, runbooks) is tests/ship/test_docs_site.py."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import click

from controller.cli.main import main
from controller.model.manifests import DefinitionOptions, JobOptions, ScheduleOptions

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
REFERENCE = ROOT / "docs" / "configuration.md"
# Everything a user reads: the README and every page of the site.
DOCS = "\n".join([README, *(page.read_text() for page in sorted((ROOT / "docs").glob("*.md")))])
CI_RUN = ROOT / ".ci" / "run"


def _code_lines() -> list[str]:
    """Lines of fenced code blocks, shell continuations joined."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", DOCS, flags=re.S)
    text = "\n".join(blocks).replace("\\\n", " ")
    return [line.strip() for line in text.splitlines()]


def _section(title: str) -> str:
    text = (ROOT / "docs" / "manifests.md").read_text()
    match = re.search(rf"^#+ {re.escape(title)}\n(.*?)\Z", text, flags=re.S | re.M)
    assert match, f"docs/manifests.md has no '{title}' heading"
    return match.group(1)


def test_config_reference_is_current() -> None:
    """`batch-gitops config-reference --check docs/configuration.md` passes: every setting
    (env var, flag, default, description) and every command flag matches the code."""
    result = subprocess.run(
        [sys.executable, "-m", "controller", "config-reference", "--check", str(REFERENCE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_config_reference_names_every_setting() -> None:
    """Belt and braces: each BATCH_GITOPS_* variable of Settings is in the reference."""
    from controller.settings import Settings

    reference = REFERENCE.read_text()
    missing = [
        f"BATCH_GITOPS_{name.upper()}"
        for name in Settings.model_fields
        if f"`BATCH_GITOPS_{name.upper()}`" not in reference
    ]
    assert missing == []


def test_every_command_in_the_readme_exists() -> None:
    """Each `batch-gitops <command>` in the README's or the docs' prose or code is listed
    by `batch-gitops --help`, and each --flag on a code line exists on that command."""
    ctx = click.Context(main)
    commands = set(main.list_commands(ctx))
    # Where the README runs the command: inline code and code-block lines (not prose
    # like "what batch-gitops promises", nor `git notes --ref=batch-gitops show`).
    invocation = re.compile(r"(?:^|&&|\||;)\s*(?:\S*/)?batch-gitops ([a-z][a-z-]+)")
    spans = re.findall(r"`([^`\n]+)`", DOCS) + _code_lines()
    mentioned = {m for span in spans for m in invocation.findall(span.strip())}
    assert {"validate", "plan", "schema", "init", "config-reference"} <= mentioned
    help_text = subprocess.run(
        [sys.executable, "-m", "controller", "--help"], capture_output=True, text=True, timeout=60
    ).stdout
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
    section = _section("Manifests")
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
    match = re.search(r"^## Quick start\n(.*?)(?=^## |\Z)", README, flags=re.S | re.M)
    assert match, "README has no '## Quick start' section"
    blocks = re.findall(r"```[a-z]*\n(.*?)```", match.group(1), flags=re.S)
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
