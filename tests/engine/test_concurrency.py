"""Two processes run 50 runs each against one database file, at the same time.

Both workers import everything first, say ``ready``, and start together when the test
writes ``go``. Then: all 100 runs complete, each has exactly the transitions of an
uninterrupted run in a database of its own (counted per step and status), and neither
process saw "database is locked".

The worker is this module: ``python -m tests.engine.test_concurrency DB COUNT DURABILITY``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.engine import crash_targets

ROOT = Path(__file__).resolve().parents[2]
RUNS_PER_PROCESS = 50
INPUT = {"items": [1, 6]}


def transitions(db: Path) -> dict[str, Counter[tuple[str, str]]]:
    """run id -> how many times each (step id, status) transition was recorded."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT run_id, step_id, status FROM transitions").fetchall()
    finally:
        conn.close()
    out: dict[str, Counter[tuple[str, str]]] = {}
    for run_id, step_id, status in rows:
        out.setdefault(run_id, Counter())[(step_id, status)] += 1
    return out


def worker(db: str, count: int, durability: str) -> None:
    """Run the workflow ``count`` times on ``db`` once stdin says go; print the results."""
    from engine import Engine

    workflow = crash_targets.build_workflow()
    with Engine(db, durability=durability) as engine:
        _ = engine.store  # open (and create) the database before the start signal
        print("ready", flush=True)
        sys.stdin.readline()
        results = [engine.run(workflow, {"start": INPUT}) for _ in range(count)]
    print(json.dumps([[r.run_id, r.status.value] for r in results]), flush=True)


def test_two_processes_share_one_database(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from engine import Engine

    monkeypatch.setenv("STEPWELL_CRASH_SLEEP", "0")
    with Engine(tmp_path / "reference.db") as engine:
        ref = engine.run(crash_targets.build_workflow(), {"start": INPUT})
    assert ref.ok, ref.error
    expected = transitions(tmp_path / "reference.db")[ref.run_id]
    assert expected[("each_iter_1_big", "completed")] == 1  # the shape we think it has
    assert expected[("each_iter_1_small", "skipped")] == 1
    for step_id, status in list(expected):
        if status == "completed":
            assert all(expected[(step_id, s)] == 1 for s in ("pending", "queued", "running"))

    db = tmp_path / "shared.db"
    env = {**os.environ, "STEPWELL_CRASH_SLEEP": "0",
           "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT),
                                                       os.environ.get("PYTHONPATH"))))}
    procs = [subprocess.Popen(
        [sys.executable, "-m", "tests.engine.test_concurrency", str(db),
         str(RUNS_PER_PROCESS), "process"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, cwd=tmp_path) for _ in range(2)]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", (
            proc.communicate()[1])
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = [proc.communicate(timeout=300) for proc in procs]

    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert "locked" not in err.lower() and "locked" not in out.lower(), err
        assert proc.returncode == 0, err
    results = [tuple(r) for out, _ in outputs for r in json.loads(out)]
    assert len(results) == 2 * RUNS_PER_PROCESS
    assert {status for _, status in results} == {"completed"}
    recorded = transitions(db)
    assert set(recorded) == {run_id for run_id, _ in results}
    for run_id, _ in results:
        assert recorded[run_id] == expected, f"{run_id}: transitions differ"
    conn = sqlite3.connect(db)
    statuses = conn.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall()
    spans = [conn.execute("SELECT min(created_at), max(completed_at) FROM runs WHERE "
                          "id IN (SELECT value FROM json_each(?))",
                          (json.dumps([r[0] for r in json.loads(out)]),)
                          ).fetchone() for out, _ in outputs]
    conn.close()
    assert statuses == [("completed", 2 * RUNS_PER_PROCESS)]
    (a_start, a_end), (b_start, b_end) = spans
    assert a_start < b_end and b_start < a_end, "the two processes did not overlap"


if __name__ == "__main__":
    worker(sys.argv[1], int(sys.argv[2]), sys.argv[3])
