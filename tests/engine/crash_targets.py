"""The crash-test workflow and its function targets.

Every function appends ``RUN_ID STEP_ID`` to ``$STEPWELL_SIDE_FILE`` when it starts (one
``O_APPEND`` write per line, so lines from a killed process are whole or absent), sleeps a
little so that a kill can land inside it, and returns a value computed only from its
input: an uninterrupted run and a killed-and-resumed run must end with equal outputs.

The workflow (``build_workflow``): a for_each over eight items whose body routes each item
through a conditional to a sync or an async function, merges the branch, tags it; then a
while_loop that counts to five; then a conditional on the total. 81 steps, 24 of
them function calls.
"""

from __future__ import annotations

import os
import time
from typing import Any

import anyio

from engine.contracts.blocks import current_context
from engine.definition import Workflow

MODULE = "tests.engine.crash_targets"
SIDE_FILE_ENV = "STEPWELL_SIDE_FILE"
ITEMS = 8
LOOP_ROUNDS = 5
OBJECT = {"type": "object"}


def mark() -> None:
    """Append this step's ``RUN_ID STEP_ID`` line to the side file (if one is set)."""
    side = os.environ.get(SIDE_FILE_ENV)
    ctx = current_context()
    if not side or ctx is None:
        return
    fd = os.open(side, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{ctx.run_id} {ctx.step_id}\n".encode())
    finally:
        os.close(fd)


def _plain(data: Any) -> Any:
    return data.model_dump() if hasattr(data, "model_dump") else data


def _pause() -> float:
    return float(os.environ.get("STEPWELL_CRASH_SLEEP", "0.008"))


def prepare(data: Any) -> dict[str, Any]:
    """Pass the items on, each with its square."""
    mark()
    time.sleep(_pause())
    items = _plain(data)["items"]
    return {"items": [{"n": n, "sq": n * n} for n in items]}


def small(data: Any) -> dict[str, Any]:
    """Sync branch for small items."""
    mark()
    time.sleep(_pause())
    item = _plain(data)
    return {"n": item["n"], "value": item["sq"] + 1, "branch": "small"}


async def big(data: Any) -> dict[str, Any]:
    """Async branch for big items (several run at once)."""
    mark()
    await anyio.sleep(_pause() * 3)
    item = _plain(data)
    return {"n": item["n"], "value": item["sq"] * 2, "branch": "big"}


def tag(data: Any) -> dict[str, Any]:
    """Label the merged item."""
    mark()
    time.sleep(_pause())
    item = _plain(data)
    return {**item, "label": f"{item['branch']}-{item['n']}"}


def summarise(data: Any) -> dict[str, Any]:
    """Total of every item's value; the while_loop's initial state."""
    mark()
    time.sleep(_pause())
    items = _plain(data)
    return {"total": sum(i["value"] for i in items), "round": 0,
            "labels": [i["label"] for i in items]}


def bump(data: Any) -> dict[str, Any]:
    """One round of the while_loop."""
    mark()
    time.sleep(_pause())
    state = _plain(data)
    return {**state, "total": state["total"] + state["round"] * 3, "round": state["round"] + 1}


def finish(data: Any) -> dict[str, Any]:
    """Last step of either final branch."""
    mark()
    time.sleep(_pause())
    state = _plain(data)
    return {"result": state["total"], "rounds": state["round"], "labels": state["labels"]}


def _fn(target: str) -> dict[str, Any]:
    return {"python": f"{MODULE}:{target}", "output_schema": OBJECT}


def _over(path: str, value: int, key: str) -> dict[str, Any]:
    return {"conditions": [{"id": key, "name": key, "handle_key": key, "condition": {
        "logical_operator": "and",
        "sub_conditions": [{"path_ref": {"input": "default", "path": path},
                            "operator": "greater_than_or_equal", "value": value}]}}],
            "has_else": True}


def build_workflow() -> Workflow:
    """The crash-test workflow (see the module docstring)."""
    b = Workflow.builder("crash test")
    b.block("start", "start_json")
    b.block("prep", "function", config=_fn("prepare"))
    b.block("each", "for_each", config={"map_method": "iterate_array",
                                        "map_source_path": "items", "max_concurrency": 3})
    b.block("route", "conditional", parent="each", config=_over("n", 4, "big"))
    b.block("big", "function", parent="each", config=_fn("big"))
    b.block("small", "function", parent="each", config=_fn("small"))
    b.block("join", "merge_dicts", parent="each",
            config={"inputs": [{"name": "big"}, {"name": "small"}], "collision": "last_wins"})
    b.block("tag", "function", parent="each", config=_fn("tag"))
    b.block("summary", "function", config=_fn("summarise"))
    b.block("rounds", "while_loop", config={
        "max_iterations": LOOP_ROUNDS + 3,
        "termination_condition": {"logical_operator": "and", "sub_conditions": [
            {"path_ref": {"input": "default", "path": "round"},
             "operator": "greater_than_or_equal", "value": LOOP_ROUNDS}]}})
    b.block("bump", "function", parent="rounds", config=_fn("bump"))
    b.block("check", "conditional", config=_over("total", 100, "high"))
    b.block("high", "function", config=_fn("finish"))
    b.block("low", "function", config=_fn("finish"))
    b.block("final", "merge_dicts", config={"inputs": [{"name": "high"}, {"name": "low"}],
                                            "collision": "last_wins"})
    b.block("done", "end")
    (b.edge("start", "prep")
     .edge("prep", "each", target_handle="fe-left-in")
     .edge("each", "route", source_handle="fe-left-out")
     .edge("route", "big", source_handle="output-json-big")
     .edge("route", "small", source_handle="output-json-else")
     .edge("big", "join", target_handle="input-json-big")
     .edge("small", "join", target_handle="input-json-small")
     .edge("join", "tag")
     .edge("tag", "each", target_handle="fe-right-in")
     .edge("each", "summary", source_handle="fe-right-out")
     .edge("summary", "rounds", target_handle="loop-left-in")
     .edge("rounds", "bump", source_handle="loop-left-out")
     .edge("bump", "rounds", target_handle="loop-right-in")
     .edge("rounds", "check", source_handle="loop-right-out")
     .edge("check", "high", source_handle="output-json-high")
     .edge("check", "low", source_handle="output-json-else")
     .edge("high", "final", target_handle="input-json-high")
     .edge("low", "final", target_handle="input-json-low")
     .edge("final", "done"))
    return b.build()


INPUT = {"items": list(range(ITEMS))}
