"""In-process function targets for the durability tests."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from blocks.base import current_context
from engine.errors import PermanentError, TransientError

CALLS: dict[str, int] = {}


def flaky(data: Any) -> dict[str, Any]:
    """Fails twice with a transient error, then succeeds."""
    CALLS["flaky"] = CALLS.get("flaky", 0) + 1
    if CALLS["flaky"] <= 2:
        raise TransientError(f"upstream busy (call {CALLS['flaky']})", code="BUSY")
    return {"calls": CALLS["flaky"]}


def broken(data: Any) -> dict[str, Any]:
    """Always fails permanently."""
    CALLS["broken"] = CALLS.get("broken", 0) + 1
    raise PermanentError("the ledger rejected the entry", code="LEDGER_REJECTED")


def record(data: Any) -> Any:
    """Append this call to $STEPWELL_SIDE_FILE, sleep $STEPWELL_STEP_SLEEP, pass data on."""
    side = os.environ.get("STEPWELL_SIDE_FILE")
    value = data if not hasattr(data, "model_dump") else data.model_dump()
    ctx = current_context()
    if side and ctx is not None:
        with Path(side).open("a") as fh:
            fh.write(f"{ctx.step_id}\n")
    time.sleep(float(os.environ.get("STEPWELL_STEP_SLEEP", "0")))
    return value


async def slow(data: Any) -> dict[str, Any]:
    """Sleeps (async) long enough to be cancelled."""
    import anyio

    await anyio.sleep(float(os.environ.get("STEPWELL_SLOW_S", "30")))
    return {"slept": True}
