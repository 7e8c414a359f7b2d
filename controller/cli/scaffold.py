"""``batch-gitops init``: lay out a new manifest repository from the packaged
templates (``controller/templates/manifest-repo``).

Template paths spell a leading dot as ``dot-`` (``dot-github`` -> ``.github``)
because packaging tools and globs skip dotfiles. The JSON Schema for editors is
written from :func:`controller.model.schema.manifest_schema` at scaffold time, so it
matches the installed botocore model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from controller.model.schema import manifest_schema

TEMPLATE = "manifest-repo"
SCHEMA_PATH = ".batch-gitops/manifest.schema.json"


class ScaffoldError(Exception):
    """The target cannot be scaffolded (files would be overwritten)."""


@dataclass
class Scaffold:
    root: Path
    written: list[str] = field(default_factory=list)


def _target_name(part: str) -> str:
    return "." + part[len("dot-") :] if part.startswith("dot-") else part


def _walk(node: Traversable, prefix: tuple[str, ...] = ()) -> list[tuple[str, bytes]]:
    files: list[tuple[str, bytes]] = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.name == "__pycache__":
            continue
        parts = (*prefix, _target_name(child.name))
        if child.is_dir():
            files += _walk(child, parts)
        else:
            files.append(("/".join(parts), child.read_bytes()))
    return files


def template_files() -> list[tuple[str, bytes]]:
    """``(repo-relative path, content)`` of every file ``init`` writes."""
    files = _walk(resources.files("controller.cli").joinpath("templates", TEMPLATE))
    schema = json.dumps(manifest_schema(), indent=2) + "\n"
    return sorted([*files, (SCHEMA_PATH, schema.encode())])


def scaffold(root: Path, *, force: bool = False) -> Scaffold:
    """Write the layout under ``root``; refuse to overwrite a file unless ``force``."""
    files = template_files()
    existing = [path for path, _ in files if (root / path).exists()]
    if existing and not force:
        raise ScaffoldError(
            f"{root}: {len(existing)} files already exist (e.g. {existing[0]}); "
            "pick an empty directory or pass --force to overwrite them"
        )
    result = Scaffold(root)
    for path, content in files:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        result.written.append(path)
    return result
