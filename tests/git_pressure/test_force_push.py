"""A force-push is just another revision: diffed against what is live, never a reason
to run finished jobs again. Over ``git daemon`` on 127.0.0.1, with moto."""

from __future__ import annotations

from typing import Any

from controller.demo import backend as demo_backend
from tests.conftest import GitRepo
from tests.git_pressure.conftest import DEFINITION, job, jobs_by_name
from tests.git_pressure.servers import BareRemote, GitDaemon


def test_force_push_to_an_older_revision_resubmits_nothing(
    watch: Any, repo: GitRepo, remote: BareRemote, git_daemon: GitDaemon, batch: Any
) -> None:
    """a, b (finished) stay as they are when the branch is forced back to the commit before c
    was added; c (finished) is only retired; forcing the branch forward again restores c's
    record without a second run. Every job exists exactly once in AWS."""
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/a.json", job("a"))
    repo.write("jobs/b.json", job("b"))
    older = repo.commit("a, b")
    repo.write("jobs/c.json", job("c"))
    newer = repo.commit("c")
    remote.push()
    watched = watch(git_daemon.url())
    first = watched.run()
    assert first.result == "ok"
    # Outcomes, not HTTP attempts: a transport retry on a loaded machine is not a change.
    assert sorted((r.action.action, r.result) for r in first.results) == [
        ("register", "ok"),
        ("submit", "ok"),
        ("submit", "ok"),
        ("submit", "ok"),
    ]
    watched.writes()  # forget the first pass's calls

    repo.git("reset", "-q", "--hard", older)
    remote.push(force=True)
    dropped = watched.run()
    assert dropped.result == "ok" and dropped.revision == older
    assert watched.writes() == []
    assert dropped.plan is not None and dropped.plan.retire == [("test-queue", "c")]

    repo.git("reset", "-q", "--hard", newer)
    remote.push(force=True)
    restored = watched.run()
    assert restored.result == "ok" and restored.revision == newer
    assert watched.writes() == []
    assert {name: len(runs) for name, runs in jobs_by_name(batch).items()} == {
        "a": 1,
        "b": 1,
        "c": 1,
    }


def test_force_push_dropping_a_commit_stops_only_its_active_job(
    watch: Any, repo: GitRepo, remote: BareRemote, git_daemon: GitDaemon, batch: Any
) -> None:
    """Dropping the commit that added a still-queued job cancels that job (it is no
    longer in git, as after any removal) and touches nothing else."""
    demo_backend.set_mode("queued")
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/a.json", job("a"))
    older = repo.commit("a")
    repo.write("jobs/c.json", job("c"))
    repo.commit("c")
    remote.push()
    watched = watch(git_daemon.url())
    assert watched.run().result == "ok"
    watched.writes()

    repo.git("reset", "-q", "--hard", older)
    remote.push(force=True)
    outcome = watched.run()
    assert outcome.result == "ok"
    assert [(r.action.action, r.action.name, r.result) for r in outcome.results] == [
        ("cancel", "c", "ok")
    ]
    assert watched.writes() == ["CancelJob"]
    runs = jobs_by_name(batch)
    assert runs["a"][0]["status"] == "SUBMITTED" and runs["c"][0]["status"] == "FAILED"


def test_force_push_back_to_an_older_spec_runs_it_like_a_revert(
    watch: Any, repo: GitRepo, remote: BareRemote, git_daemon: GitDaemon, batch: Any
) -> None:
    """A job whose spec the force-push turns back is 'changed' against what is live (the
    newer spec's run) and runs once with the old spec, exactly as a revert commit would;
    the unchanged job next to it is left alone."""
    repo.write("defs/trainer.json", DEFINITION)
    repo.write("jobs/a.json", job("a"))
    repo.write("jobs/b.json", job("b"))
    older = repo.commit("a, b")
    repo.write("jobs/a.json", job("a", parameters={"epochs": "2"}))
    repo.commit("a: 2 epochs")
    remote.push()
    watched = watch(git_daemon.url())
    assert watched.run().result == "ok"
    watched.writes()

    repo.git("reset", "-q", "--hard", older)
    remote.push(force=True)
    outcome = watched.run()
    assert outcome.result == "ok"
    assert [(r.action.action, r.action.name, r.action.reason) for r in outcome.results] == [
        ("submit", "a", "changed")
    ]
    assert watched.writes() == ["SubmitJob"]
    assert {name: len(runs) for name, runs in jobs_by_name(batch).items()} == {"a": 2, "b": 1}
