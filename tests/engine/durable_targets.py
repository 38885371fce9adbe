"""In-process function targets for the durability tests."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from engine.contracts.blocks import current_context
from engine.contracts.errors import (
    BlockError,
    ErrorCategory,
    PermanentError,
    QuotaError,
    TransientError,
)

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


async def flaky_async(data: Any) -> dict[str, Any]:
    """Async twin of :func:`flaky` (runs in a worker task, not inline)."""
    CALLS["flaky_async"] = CALLS.get("flaky_async", 0) + 1
    if CALLS["flaky_async"] <= 2:
        raise BlockError(f"socket reset (call {CALLS['flaky_async']})",
                         category=ErrorCategory.TRANSIENT, code="RESET")
    return {"calls": CALLS["flaky_async"]}


def rate_limited(data: Any) -> dict[str, Any]:
    """Fails once with a quota error asking to wait $STEPWELL_RETRY_AFTER seconds."""
    CALLS["rate_limited"] = CALLS.get("rate_limited", 0) + 1
    if CALLS["rate_limited"] == 1:
        raise QuotaError("429 Too Many Requests", code="HTTP_429",
                         retry_after=float(os.environ.get("STEPWELL_RETRY_AFTER", "0.3")))
    return {"calls": CALLS["rate_limited"]}


def prints_nul(data: Any) -> dict[str, Any]:
    """Prints a NUL and a lone surrogate, which PostgreSQL's text and UTF-8 cannot hold."""
    print("a\x00b \ud83e")
    return {}
