"""In-process functions a shared server allowlists in the security tests."""

from __future__ import annotations

import time
from typing import Any


def echo(data: Any) -> dict[str, Any]:
    """Return the input as a plain dict."""
    return {"echo": dict(data) if hasattr(data, "keys") else data}


def spin(data: Any) -> dict[str, Any]:
    """Hold the CPU (and the event loop) for ``seconds``: nothing can interrupt it."""
    seconds = float(data["seconds"])
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass
    return {"spun": seconds}
