"""Workflows and function targets for the worker tests (imported by worker processes).

Every function appends ``RUN_ID STEP_ID`` to ``$STEPWELL_SIDE_FILE`` when it starts (one
``O_APPEND`` write), so the side file tells what was executed across processes; ``slow``
and ``slow_async`` then pause ``$STEPWELL_STEP_SLEEP`` seconds, so that a test can act
while they run.
"""

from __future__ import annotations

import os
import time
from typing import Any

import anyio

from engine.definition import Workflow
from tests.engine.crash_targets import mark

MODULE = "tests.engine.worker_targets"
SLEEP_ENV = "STEPWELL_STEP_SLEEP"
COUNTER = {"type": "object", "properties": {"n": {"type": "integer"}}}


def slow(data: Any) -> dict[str, Any]:
    """n + 1, after a pause."""
    mark()
    time.sleep(float(os.environ.get(SLEEP_ENV, "0")))
    n = data["n"] if isinstance(data, dict) else data.n
    return {"n": n + 1}


async def slow_async(data: Any) -> dict[str, Any]:
    """n + 1, after a pause that awaits (the step can be interrupted)."""
    mark()
    await anyio.sleep(float(os.environ.get(SLEEP_ENV, "0")))
    n = data["n"] if isinstance(data, dict) else data.n
    return {"n": n + 1}


def book(data: Any) -> dict[str, Any]:
    """The step after a review."""
    mark()
    n = data["n"] if isinstance(data, dict) else data.n
    return {"n": n * 100}


def chain(steps: int, *, awaits: bool = False) -> Workflow:
    """start_json -> s0 -> s1 -> ... (``steps`` functions; ``slow_async`` ones with
    ``awaits``: a synchronous step holds the event loop until it returns)."""
    target = "slow_async" if awaits else "slow"
    b = Workflow.builder(f"chain of {steps}").block("start", "start_json")
    previous = "start"
    for i in range(steps):
        b.block(f"s{i}", "function", config={"python": f"{MODULE}:{target}",
                                             "output_schema": COUNTER})
        b.edge(previous, f"s{i}")
        previous = f"s{i}"
    return b.build()


def reviewed() -> Workflow:
    """start_json -> s0 -> a human review -> book."""
    return (Workflow.builder("reviewed")
            .block("start", "start_json")
            .block("s0", "function", config={"python": f"{MODULE}:slow",
                                             "output_schema": COUNTER})
            .block("gate", "hil", config={"instructions": "check n"})
            .block("book", "function", config={"python": f"{MODULE}:book",
                                               "output_schema": COUNTER})
            .edge("start", "s0").edge("s0", "gate")
            .edge("gate", "book", source_handle="output-json-0")
            .build())
