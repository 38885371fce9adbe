"""4 workers x 100 queued runs on one PostgreSQL database.

Four ``stepwell worker`` processes (four runs at a time each) drain 100 queued runs. All
complete; every step was executed once and moved through its lifecycle once (no step
lost, none duplicated); no run saw a deadlock or a serialization failure (those are
retried inside the store and never reach a run).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from engine.core import Engine
from engine.queue import enqueue
from tests.engine import crash_targets, worker_targets
from tests.engine.test_worker import Workers, _executed
from tests.postgres import pg_url  # noqa: F401 - a fixture

RUNS = 100
WORKERS = 4
FUNCTIONS = 3
LIFECYCLE = ["pending", "queued", "running", "completed"]
#: Seconds each function call pauses (three per run: one worker alone needs 100 x 3 x 0.05
#: / 4 = 3.75 s or more for the queue).
STEP_PAUSE = 0.05


def test_four_workers_drain_a_hundred_runs(pg_url: str, tmp_path: Path,  # noqa: F811
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    side = tmp_path / "side.txt"
    monkeypatch.delenv(crash_targets.SIDE_FILE_ENV, raising=False)
    # Each function pauses STEP_PAUSE: a run then lasts long enough that the first worker
    # up cannot drain the queue before the last one has started (on a loaded machine,
    # starting a worker process takes a second or more).
    pool = Workers(pg_url, side, tmp_path, sleep=STEP_PAUSE)
    try:
        with Engine(pg_url) as engine:
            runs = [enqueue(engine, worker_targets.chain(FUNCTIONS), {"start": {"n": i}})
                    for i in range(RUNS)]
            started = time.monotonic()
            procs = [pool.start("--concurrency", "4", "--idle-exit", "2", "--json")
                     for _ in range(WORKERS)]
            stats = [json.loads(proc.communicate(timeout=600)[0]) for proc in procs]
            elapsed = time.monotonic() - started
            for run_id in runs:
                run = engine.store.read_run(run_id)
                assert run.status == "completed" and run.error is None, (run_id, run)
                steps = engine.store.run_steps(run_id)
                assert [s.step_id for s in steps] == ["start", "s0", "s1", "s2"]
                assert all(s.status == "completed" and s.retry_count == 0 for s in steps)
                trail = engine.store.transitions(run_id)
                per_step = Counter(t["step_id"] for t in trail)
                assert per_step == {s.step_id: len(LIFECYCLE) for s in steps}, run_id
    finally:
        pool.stop_all()
    assert sum(s["claimed"] for s in stats) == sum(s["ended"] for s in stats) == RUNS
    assert all(s["claimed"] > 0 for s in stats), stats  # every worker took a share
    executed = _executed(side)
    assert executed == Counter({f"s{i}": RUNS for i in range(FUNCTIONS)})
    print(f"{RUNS} runs by {WORKERS} workers in {elapsed:.1f}s")
