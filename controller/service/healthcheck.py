"""``python -m controller.service.healthcheck``: the container's HEALTHCHECK.

Asks this container's own ``/healthz`` on the port of ``BATCH_GITOPS_LISTEN``
(so changing the listen address cannot silently break the check) and exits 0
when it answers 200, 1 otherwise. Standard library only on the request path:
the image has no curl, and the check must stay cheap.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from controller.settings import Settings

TIMEOUT_SECONDS = 4.0


def healthz_url(listen: str) -> str:
    """The loopback URL of ``/healthz`` for a ``host:port`` listen address."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    # A wildcard bind is reachable on loopback; a specific address only on itself.
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{int(port)}/healthz"


def check(listen: str, timeout: float = TIMEOUT_SECONDS) -> tuple[bool, str]:
    url = healthz_url(listen)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200, f"{url}: HTTP {response.status}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return False, f"{url}: {exc}"


def main() -> int:
    healthy, detail = check(Settings().listen)
    if not healthy:
        print(f"unhealthy: {detail}", file=sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
