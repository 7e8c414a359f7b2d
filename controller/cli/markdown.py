"""A plan as a pull-request comment: GitHub/GitLab-flavoured Markdown.

Called by ``batch-gitops plan --output markdown`` with ``PassResult.as_dict()``;
pure (a dict in, a string out) so golden files pin the exact comment. Sections
appear only when they have rows: definitions to register, jobs to submit, jobs
to cancel or terminate, definitions to deregister, held prunes, keys waiting on
an unknown status, and validation errors. With ``link_base`` (e.g.
``https://github.com/org/repo/blob/<sha>/``) every manifest path is a link.
"""

from __future__ import annotations

from typing import Any

# A marker the CI workflows search for, to update their previous comment in place.
COMMENT_MARKER = "<!-- batch-gitops-plan -->"

_REASONS = {
    "new": "new manifest",
    "changed": "manifest changed",
    "removed": "manifest removed",
    "replaced": "replaced by the changed manifest's new run",
    "retry": "previous submission was rejected or lost",
}


# Pass results that come with a plan; any other result means nothing was planned.
_PLANNED = ("ok", "degraded")


def _cell(text: Any) -> str:
    """Table-cell safe: pipes escaped, newlines flattened."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()


def _code(text: Any) -> str:
    value = _cell(text)
    return f"`{value}`" if value else "-"


def _file(path: str, link_base: str) -> str:
    if not path:
        return "-"
    label = f"`{_cell(path)}`"
    if not link_base:
        return label
    base = link_base if link_base.endswith("/") else link_base + "/"
    return f"[{label}]({base}{path.replace(' ', '%20').replace(')', '%29')})"


def _reason(reason: str) -> str:
    return _cell(_REASONS.get(reason, reason or "-"))


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _error_rows(errors: list[dict[str, Any]], link_base: str) -> list[str]:
    if not errors:
        return []
    out = ["### :x: Validation errors", ""]
    out.append("These files are skipped (their jobs are neither submitted nor stopped):")
    out.append("")
    out += _table(
        ["file", "field", "problem"],
        [
            [_file(e["path"], link_base), _code(e.get("field", "")), _cell(e["message"])]
            for e in errors
        ],
    )
    out.append("")
    return out


def render_plan(data: dict[str, Any], link_base: str = "") -> str:
    """The comment for one dry-run pass (``PassResult.as_dict()``)."""
    actions: list[dict[str, Any]] = data.get("actions", [])
    held: list[dict[str, Any]] = data.get("held", [])
    errors: list[dict[str, Any]] = data.get("errors", [])
    waiting: dict[str, str] = data.get("waiting", {})
    revision = data.get("revision", "")

    register = [a for a in actions if a["action"] == "register"]
    submit = [a for a in actions if a["action"] == "submit"]
    stop = [a for a in actions if a["action"] in ("cancel", "terminate")]
    deregister = [a for a in actions if a["action"] == "deregister"]

    out = [COMMENT_MARKER, "## batch-gitops plan", ""]
    if revision:
        out.append(f"Revision `{revision[:12]}` by {_cell(data.get('author', ''))}.")
        out.append("")
    result = data.get("result", "ok")
    if result not in _PLANNED:
        # source-error, error (e.g. an untrusted empty ledger), rejected (unsigned head,
        # too many files), lease-lost: no plan exists, so nothing may read as "in sync".
        out += [f"**Not planned ({_cell(result)}):** {_cell(data.get('message', ''))}", ""]
        out += _error_rows(data.get("errors", []), link_base)
        return "\n".join(out).rstrip("\n") + "\n"

    if not actions and not held and not errors and not waiting:
        out.append("**In sync:** merging this changes nothing in AWS Batch.")
        return "\n".join(out) + "\n"

    summary = []
    if register:
        summary.append(_plural(len(register), "definition") + " to register")
    if submit:
        summary.append(_plural(len(submit), "job") + " to submit")
    if stop:
        summary.append(_plural(len(stop), "job") + " to cancel or terminate")
    if deregister:
        summary.append(_plural(len(deregister), "definition") + " to deregister")
    if held:
        summary.append(_plural(len(held), "prune") + " held")
    if errors:
        summary.append(_plural(len(errors), "validation error"))
    if waiting:
        summary.append(_plural(len(waiting), "key") + " waiting")
    out += ["**" + ", ".join(summary) + ".**", ""]

    out += _error_rows(errors, link_base)
    if register:
        out += ["### Job definitions to register", ""]
        out += _table(
            ["definition", "manifest", "why"],
            [
                [_code(a["name"]), _file(a["manifest"], link_base), _reason(a["reason"])]
                for a in register
            ],
        )
        out.append("")
    if submit:
        out += ["### Jobs to submit", ""]
        out += _table(
            ["queue", "job", "manifest", "why"],
            [
                [
                    _code(a.get("queue", "")),
                    _code(a["name"]),
                    _file(a["manifest"], link_base),
                    _reason(a["reason"]),
                ]
                for a in submit
            ],
        )
        out.append("")
    if stop:
        out += ["### Jobs to cancel or terminate", ""]
        out += _table(
            ["action", "queue", "job", "job id", "manifest", "why"],
            [
                [
                    a["action"],
                    _code(a.get("queue", "")),
                    _code(a["name"]),
                    _code(a.get("id", "")),
                    _file(a["manifest"], link_base),
                    _reason(a["reason"]),
                ]
                for a in stop
            ],
        )
        out.append("")
    if deregister:
        out += ["### Job definitions to deregister", ""]
        out += _table(
            ["definition", "revision ARN", "manifest"],
            [
                [_code(a["name"]), _code(a.get("id", "")), _file(a["manifest"], link_base)]
                for a in deregister
            ],
        )
        out.append("")
    if held:
        out += ["### :warning: Held prunes", ""]
        if data.get("held_reason"):
            out += [f"> {_cell(data['held_reason'])}", ""]
        out.append(
            "The controller will not stop these until a pass runs with `--allow-mass-prune`"
            " (`BATCH_GITOPS_ALLOW_MASS_PRUNE=true`)."
        )
        out.append("")
        out += _table(
            ["action", "kind", "queue", "name", "manifest"],
            [
                [
                    a["action"],
                    a["kind"],
                    _code(a.get("queue", "")),
                    _code(a["name"]),
                    _file(a["manifest"], link_base),
                ]
                for a in held
            ],
        )
        out.append("")
    if waiting:
        out += ["### Waiting", ""]
        out += _table(
            ["key", "why"], [[_code(key), _cell(why)] for key, why in sorted(waiting.items())]
        )
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"
