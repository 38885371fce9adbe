"""W5: read latency on a large run (steps list first page, deep page, filter, get)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def build_run(db: Path, steps: int) -> str:
    """Write a run of ``steps`` completed for_each iteration steps through the store."""
    from engine.contracts.events import NewRun, StepEvent
    from engine.contracts.values import LoopFrame, Payload, StepStatus
    from store.sqlite import SQLiteStore

    S = StepStatus
    with SQLiteStore(db) as store:
        store.create_run(NewRun(run_id="run_big", workflow_id="wrk_bench", workflow_name="big",
                                workflow_digest="0", definition={}, inputs={}, metadata={},
                                organization_id="org_local"), now=time.time())
        batch: list[StepEvent] = []
        for i in range(steps):
            kw: dict[str, Any] = {"step_id": f"each_iter_{i}_leaf", "block_id": "leaf",
                                  "block_type": "function", "label": "Leaf",
                                  "scope": (LoopFrame(container_id="each", iteration=i),)}
            if i % 1000 == 999:  # a skipped step now and then, for the filtered read
                batch += [StepEvent(status=S.PENDING, **kw),
                          StepEvent(status=S.SKIPPED, reason="bench", **kw)]
            else:
                batch += [StepEvent(status=S.PENDING, **kw), StepEvent(status=S.QUEUED, **kw),
                          StepEvent(status=S.RUNNING, **kw),
                          StepEvent(status=S.COMPLETED, outputs={
                              "output-json-0": Payload.json({"n": i})}, **kw)]
            if len(batch) >= 4000:
                store.apply("run_big", batch, now=time.time())
                batch = []
        if batch:
            store.apply("run_big", batch, now=time.time())
    return "run_big"


def _median_ms(fn: Callable[[], Any], repeat: int = 21) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def read_latencies(db: Path, steps: int) -> dict[str, float]:
    """Median milliseconds of each read on a freshly built ``steps``-step run."""
    from store.client import Client

    run_id = build_run(db, steps)
    middle = f"each_iter_{steps // 2}_leaf"
    with Client(db) as client:
        api = client.workflows.steps
        return {
            "steps list, first page of 100": _median_ms(lambda: api.list(run_id, limit=100)),
            "steps list, page after the middle": _median_ms(
                lambda: api.list(run_id, limit=100, after=middle)),
            "steps list, status=skipped (1 in 1000)": _median_ms(
                lambda: api.list(run_id, limit=100, status="skipped")),
            "steps get by id": _median_ms(lambda: api.get(middle)),
            "steps get by id and run": _median_ms(lambda: api.get(middle, run_id=run_id)),
        }
