"""A function for orphan tests: the first call naps (long enough to be killed in),
every later one returns at once, so a resumed run completes quickly.

``data.marker`` is a file path: the first call creates it before it naps.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def nap_once(data: Any) -> dict[str, Any]:
    """Nap ``data.seconds`` the first time (``data.marker`` missing), then return."""
    plain = data.model_dump() if hasattr(data, "model_dump") else dict(data)
    marker = Path(plain["marker"])
    first = not marker.exists()
    if first:
        marker.write_text("napping")
        time.sleep(float(plain["seconds"]))
    return {"first": first}
