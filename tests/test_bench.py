"""``python -m bench`` runs every workload end to end (tiny sizes) and prints its tables."""

from __future__ import annotations

import subprocess
import sys


def test_bench_prints_every_table() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--steps", "31", "--repeat", "1",
         "--read-steps", "3000", "--peers"],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for label in ("floor (sqlite3)", "chain", "fanout", "for_each", "while",
                  "W4 cold start", "W5 reads", "steps get by id", "LangGraph"):
        assert label in out, f"{label!r} missing from:\n{out}"


def test_workloads_write_the_steps_they_promise() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.measure", "for_each", "40", "full", "--repeat", "1"],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert '"steps": 39' in done.stdout
