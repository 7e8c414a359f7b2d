"""The moto Batch endpoint in its own process, driven over stdin.

``controller.demo.backend.start("instant")`` runs moto inside the calling
process. The benchmark runs it here, in a child process, so that moto's
request handling and the code being measured do not share one GIL (real AWS
does not run inside the controller either) and so the daemon's resident memory
can be read without moto's in it. The child prints one JSON line with its
endpoint, then obeys one command per line on stdin:

* ``mode <instant|queued|hold>`` — how new jobs behave (``demo_backend.set_mode``)
* ``ping`` — answered with ``ok`` (a barrier)

and exits when stdin closes.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    from controller.demo import backend as demo_backend

    moto = demo_backend.start("instant", export_env=False)
    print(json.dumps({"endpoint": moto.endpoint}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "mode":
            demo_backend.set_mode(words[1])  # type: ignore[arg-type]
        print("ok", flush=True)
    moto.stop()


if __name__ == "__main__":
    main()
