"""controller/model/policy.py is pure evaluation: nothing it imports, directly or through
another module, talks to AWS, git, the ledger, the network or processes, so it can be
reasoned about (and fuzzed) as a function of its inputs."""

from __future__ import annotations

import grimp

IO_MODULES = {"boto3", "git", "moto", "sqlite3", "subprocess", "socket", "urllib", "http"}


def test_policy_imports_no_io_even_transitively() -> None:
    """Every module controller.model.policy reaches through imports (the whole chain, as
    import-linter sees it) is neither an I/O library nor one of our I/O layers."""
    graph = grimp.build_graph("controller", include_external_packages=True)
    reached = graph.find_upstream_modules("controller.model.policy")
    assert "controller.model.manifests" in reached  # the walk does follow our own imports
    io = {
        name
        for name in reached
        if name.split(".")[0] in IO_MODULES
        or name.startswith(
            ("controller.aws", "controller.source", "controller.state", "controller.engine")
        )
    }
    assert io == set()
