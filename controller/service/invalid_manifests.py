"""Invalid manifests, named where an operator looks: the log, once per revision.

A pass reports invalid manifests in its result every time, but an operator
tailing the daemon's log wants each broken file and field once, when the
revision that holds it is first read, not a line every 30 seconds. Used by the
daemon (controller.service.daemon) and the demo after every pass; ``/readyz``
lists the same errors (controller.service.server.Health).
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog

from controller.model.manifests import ManifestError

log = structlog.get_logger(__name__)


class InvalidManifestLog:
    """One ``manifest_invalid`` warning per invalid file and field of each revision."""

    def __init__(self) -> None:
        self.revision = ""
        self.logged: set[tuple[str, str, str]] = set()

    def report(self, revision: str, errors: Iterable[ManifestError]) -> int:
        """Log the errors not logged yet for ``revision``; returns how many were new."""
        if not revision:  # the source was not read: nothing new is known
            return 0
        if revision != self.revision:
            self.revision, self.logged = revision, set()
        new = 0
        for error in errors:
            key = (error.path, error.field, error.message)
            if key in self.logged:
                continue
            self.logged.add(key)
            new += 1
            log.warning(
                "manifest_invalid",
                revision=revision[:12],
                manifest=error.path,
                field=error.field or None,
                problem=error.message,
            )
        return new
