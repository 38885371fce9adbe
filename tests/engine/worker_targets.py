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
from tests.engine import crash_targets
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


def prepare(data: Any) -> dict[str, Any]:
    """The items to loop over."""
    mark()
    time.sleep(_pause())
    items = data["items"] if isinstance(data, dict) else data.items
    return {"items": [{"n": n} for n in items]}


def square(data: Any) -> dict[str, Any]:
    """One item's value and label."""
    mark()
    time.sleep(_pause())
    n = data["n"] if isinstance(data, dict) else data.n
    return {"n": n, "value": n * n + 1, "label": f"item-{n}"}


def _pause() -> float:
    return float(os.environ.get("STEPWELL_CRASH_SLEEP", "0.008"))


def looped() -> Workflow:
    """The crash workflow for workers: a for_each (``square`` per item), a summary, a
    while_loop of ``bump`` rounds, a last function (``crash_targets``'s summarise, bump
    and finish), then the end: 46 steps, 16 of them function calls."""
    c = crash_targets.MODULE
    return (Workflow.builder("looped")
            .block("start", "start_json")
            .block("prep", "function", config=_fn(f"{MODULE}:prepare"))
            .block("each", "for_each", config={"map_method": "iterate_array",
                                               "map_source_path": "items",
                                               "max_concurrency": 3})
            .block("square", "function", parent="each", config=_fn(f"{MODULE}:square"))
            .block("summary", "function", config=_fn(f"{c}:summarise"))
            .block("rounds", "while_loop", config={
                "max_iterations": crash_targets.LOOP_ROUNDS + 3,
                "termination_condition": {"logical_operator": "and", "sub_conditions": [
                    {"path_ref": {"input": "default", "path": "round"},
                     "operator": "greater_than_or_equal",
                     "value": crash_targets.LOOP_ROUNDS}]}})
            .block("bump", "function", parent="rounds", config=_fn(f"{c}:bump"))
            .block("fin", "function", config=_fn(f"{c}:finish"))
            .block("done", "end")
            .edge("start", "prep")
            .edge("prep", "each", target_handle="fe-left-in")
            .edge("each", "square", source_handle="fe-left-out")
            .edge("square", "each", target_handle="fe-right-in")
            .edge("each", "summary", source_handle="fe-right-out")
            .edge("summary", "rounds", target_handle="loop-left-in")
            .edge("rounds", "bump", source_handle="loop-left-out")
            .edge("bump", "rounds", target_handle="loop-right-in")
            .edge("rounds", "fin", source_handle="loop-right-out")
            .edge("fin", "done")
            .build())


def _fn(target: str) -> dict[str, Any]:
    return {"python": target, "output_schema": {"type": "object"}}


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
