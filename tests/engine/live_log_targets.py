"""In-process targets for the live step-log tests: print, then wait for the test."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def ticks(item: Any) -> dict[str, Any]:
    """Print ``tick 0`` and ``tick 1``, note it in ``$LIVE_SIDE_FILE``, then wait (at most
    60 s) for ``$LIVE_RELEASE_FILE`` to exist before printing ``done``."""
    print("tick 0")
    print("tick 1")
    Path(os.environ["LIVE_SIDE_FILE"]).write_text("printed", encoding="utf-8")
    release = Path(os.environ["LIVE_RELEASE_FILE"])
    deadline = time.monotonic() + 60
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    print("done")
    return {"sku": item["sku"]}


def echo(data: Any) -> Any:
    """Return the input as is."""
    return data
