"""Function targets for the executor tests (imported by Dask worker processes too).

``where`` records which process ran it; ``slow_first`` blocks its first attempt (so that
a test can kill the Dask worker running it) and answers at once on the next one.
"""

from __future__ import annotations

import os
import time
from typing import Any

from engine.contracts.blocks import current_context
from engine.definition import Workflow

MODULE = "tests.engine.executor_targets"
OBJECT = {"type": "object"}


def where(data: Any) -> dict[str, Any]:
    """The item, with the pid of the process that ran this attempt."""
    item = data.model_dump() if hasattr(data, "model_dump") else data
    return {"n": item["n"] * 10, "pid": os.getpid()}


def slow_first(data: Any) -> dict[str, Any]:
    """Append ``PID ATTEMPT`` to the file ``data["pid_file"]`` names; hang on the first
    attempt, answer on the others."""
    ctx = current_context()
    attempt = ctx.attempt if ctx is not None else 0
    item = data.model_dump() if hasattr(data, "model_dump") else data
    with open(item["pid_file"], "a", encoding="utf-8") as fh:
        fh.write(f"{os.getpid()} {attempt}\n")
    if attempt == 0:
        time.sleep(120)
    return {"attempt": attempt}


def fan(items: int) -> Workflow:
    """start_json -> for_each over ``items`` items -> ``where`` per item -> end."""
    return (Workflow.builder("fan")
            .block("start", "start_json")
            .block("each", "for_each", config={"map_method": "iterate_array",
                                               "map_source_path": "items",
                                               "max_concurrency": 8})
            .block("work", "function", parent="each",
                   config={"python": f"{MODULE}:where", "output_schema": OBJECT})
            .block("done", "end")
            .edge("start", "each", target_handle="fe-left-in")
            .edge("each", "work", source_handle="fe-left-out")
            .edge("work", "each", target_handle="fe-right-in")
            .edge("each", "done", source_handle="fe-right-out")
            .build())


def lone() -> Workflow:
    """start_json -> ``slow_first``."""
    return (Workflow.builder("lone")
            .block("start", "start_json")
            .block("slow", "function",
                   config={"python": f"{MODULE}:slow_first", "output_schema": OBJECT})
            .edge("start", "slow")
            .build())
