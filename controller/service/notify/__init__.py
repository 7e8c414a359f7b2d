"""Commit statuses (GitHub, GitHub Enterprise, GitLab) and outgoing notifications.

How it is built, top to bottom:

- :mod:`.reporter` — the daemon's hook after each pass: which commits to follow,
  what to tell, and the memo in the ledger's meta that survives a restart;
- :mod:`.commits` — a commit's state and description from its runs (pure);
- :mod:`.forges` — the GitHub and GitLab status requests (pure);
- :mod:`.events` — notification events, their Slack-compatible body, dedup and
  the per-URL rate limit;
- :mod:`.delivery` — the only HTTP client: a bounded queue and a worker thread
  per destination, retries with backoff (urllib3), metrics, logs without secrets;
- :mod:`.config` — settings resolved into targets (tokens, repository, URLs).

``make_reporter`` is what :mod:`controller.service.daemon` calls.
"""

from __future__ import annotations

from controller.service.notify.config import NotifyConfigError, load_config
from controller.service.notify.reporter import Reporter
from controller.settings import Settings
from controller.state.ledger import Ledger

__all__ = ["NotifyConfigError", "Reporter", "make_reporter"]


def make_reporter(settings: Settings, ledger: Ledger) -> Reporter | None:
    """The reporter the settings ask for; None when no forge or URL is configured."""
    config = load_config(settings)
    return Reporter(config, ledger) if config.enabled else None
