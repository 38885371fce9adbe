"""A minimal worker for the sandbox tests: ``python -m tests.blocks.sandbox_worker``.

It confines itself like the real workers, reads ``{"code": ...}`` on stdin, runs the code
with ``result`` bound to None, and answers ``{"layers": [...], "result": result}``.
"""

from __future__ import annotations

import json
import sys

from blocks.confine import apply_from_argv


def main() -> None:
    """Confine, run the request's code, answer on stdout."""
    layers = apply_from_argv(sys.argv)
    request = json.load(sys.stdin)
    scope: dict[str, object] = {"result": None}
    exec(request["code"], scope)  # noqa: S102 - the test's own code
    sys.stdout.write(json.dumps({"layers": layers, "result": scope["result"]}))


if __name__ == "__main__":
    main()
