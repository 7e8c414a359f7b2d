"""Where the team policy comes from: a git revision (every pass, ``plan``) or a
working tree (``validate``), or a trusted ref (``--policy-from REF`` in CI, so a
pull request cannot loosen the policy it is checked against).

The I/O half of :mod:`controller.model.policy`; the evaluation itself stays pure.
"""

from __future__ import annotations

from pathlib import Path

import git

from controller.model.manifests import LoadResult, ManifestError
from controller.model.policy import Policy, block_all, enforce, load_policy


def read_at(repo: git.Repo, ref: str, path: str) -> bytes | None:
    """The file at ``ref`` (a branch, tag or SHA), None if the file is not there.

    Raises ValueError when ``ref`` itself does not exist.
    """
    try:
        commit = repo.commit(ref)
    except (git.BadName, ValueError) as exc:
        raise ValueError(f"ref {ref!r} does not exist in {repo.git_dir}") from exc
    try:
        blob = commit.tree / path
    except KeyError:
        return None
    if not isinstance(blob, git.Blob) or blob.mode == 0o120000:
        return None  # a directory or a symlink is not a policy
    return bytes(blob.data_stream.read())


def gate(loaded: LoadResult, raw: bytes | None, label: str, path_prefix: str = "") -> LoadResult:
    """Apply the policy in ``raw`` (None: no policy) to loaded manifests."""
    if raw is None:
        return loaded
    policy = load_policy(label, raw)
    if not isinstance(policy, Policy):
        return block_all(loaded, policy)
    return enforce(policy, loaded, path_prefix)


def fetch_trusted_ref(repo: git.Repo, branch: str, timeout: float = 60.0) -> str:
    """A mirror of a remote holds only the applied branch: fetch the trusted branch
    (again on every call: it moves) into a ref of its own and return that ref."""
    local = f"refs/batch-gitops/policy/{branch}"
    try:
        repo.git.fetch(
            "origin", f"+refs/heads/{branch}:{local}", "--no-tags", kill_after_timeout=timeout
        )
    except git.GitCommandError as exc:
        raise ValueError(f"cannot fetch the trusted branch {branch!r} from origin") from exc
    return local


def gate_revision(
    loaded: LoadResult,
    repo: git.Repo,
    revision: str,
    policy_file: str,
    policy_from: str = "",
    *,
    remote: bool = False,
) -> LoadResult:
    """The pass's gate: the policy of the applied revision, or of ``policy_from``
    (fetched first when ``repo`` mirrors a remote)."""
    ref = policy_from or revision
    try:
        if policy_from and remote:
            ref = fetch_trusted_ref(repo, policy_from)
        raw = read_at(repo, ref, policy_file)
    except ValueError as exc:
        return block_all(loaded, [ManifestError(policy_file, "", f"--policy-from: {exc}")])
    if raw is None and policy_from:
        missing = ManifestError(policy_file, "", f"no policy file at the trusted ref {ref!r}")
        return block_all(loaded, [missing])
    label = policy_file if not policy_from else f"{policy_file}@{policy_from}"
    return gate(loaded, raw, label)


def gate_directory(
    loaded: LoadResult, directory: Path, policy_file: str, policy_from: str = ""
) -> LoadResult:
    """``validate``'s gate: paths are matched relative to the repository root when
    ``directory`` is inside a git work tree (team prefixes are repository paths)."""
    try:
        repo: git.Repo | None = git.Repo(directory, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        repo = None
    root = Path(repo.working_tree_dir) if repo is not None and repo.working_tree_dir else None
    prefix = ""
    if root is not None:
        relative = directory.resolve().relative_to(root.resolve()).as_posix()
        prefix = "" if relative == "." else relative + "/"
    if policy_from:
        if repo is None:
            error = ManifestError(policy_file, "", f"--policy-from: {directory} is not in git")
            return block_all(loaded, [error])
        try:
            raw = read_at(repo, policy_from, policy_file)
        except ValueError as exc:
            return block_all(loaded, [ManifestError(policy_file, "", f"--policy-from: {exc}")])
        if raw is None:
            missing = ManifestError(
                policy_file, "", f"no policy file at the trusted ref {policy_from!r}"
            )
            return block_all(loaded, [missing])
        return gate(loaded, raw, f"{policy_file}@{policy_from}", prefix)
    on_disk = (root or directory) / policy_file
    if on_disk.is_symlink() or not on_disk.is_file():
        return loaded
    return gate(loaded, on_disk.read_bytes(), policy_file, prefix)
