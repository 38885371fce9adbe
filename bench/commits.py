"""How long each commit takes: ``python -m bench.commits [WORKLOADS]``.

Runs each workload ``--repeat`` times (after one warm-up run) on a new database file at
``process`` durability, as ``python -m bench`` does, and times every ``COMMIT`` the
store sends, one by one. A step's commit takes microseconds; one that runs SQLite's own
WAL checkpoint (which syncs the WAL and the database file) takes milliseconds, and the
per-step medians of ``python -m bench`` hardly show it. Per workload, one line with the
figures of all runs together: commits per run, the median, mean and 99th percentile
``COMMIT`` in microseconds, the slowest in milliseconds, and the ``COMMIT`` statements
over 1 ms per run with the time they took.

Only the ``COMMIT`` statement is timed (where the WAL is written and checkpoints run),
not the statements before it: a run's first commit, which creates its steps, is not
slow for that reason here.
"""

from __future__ import annotations

import gc
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: A ``COMMIT`` slower than this counts as a stall.
STALL_S = 0.001


class _TimedCursor:
    """The store's transaction cursor, with the time of each ``COMMIT`` noted."""

    def __init__(self, cursor: Any, into: list[float]) -> None:
        self._cursor = cursor
        self._into = into

    def execute(self, sql: str, *params: Any) -> Any:
        """Run ``sql``; a ``COMMIT`` is timed."""
        if sql != "COMMIT":
            return self._cursor.execute(sql, *params)
        start = time.perf_counter()
        try:
            return self._cursor.execute(sql, *params)
        finally:
            self._into.append(time.perf_counter() - start)


@dataclass
class CommitTimes:
    """A workload's ``COMMIT`` times, over its runs."""

    workload: str
    steps: int
    runs: int
    seconds: list[float]

    @property
    def per_run(self) -> float:
        """Commits in one run."""
        return len(self.seconds) / self.runs

    def stalls(self) -> tuple[float, float]:
        """``COMMIT`` statements over :data:`STALL_S` per run, and their milliseconds."""
        slow = [s for s in self.seconds if s > STALL_S]
        return len(slow) / self.runs, sum(slow) * 1e3 / self.runs


def commit_times(workload: str, steps: int | None = None, repeat: int = 3) -> CommitTimes:
    """Time every ``COMMIT`` of ``repeat`` runs of ``workload`` (after a warm-up run).

    Raises:
        SystemExit: a run failed.
    """
    from bench.workloads import STEPS, WORKLOADS
    from engine.core import Engine

    seconds: list[float] = []
    count = 0
    with tempfile.TemporaryDirectory(prefix="stepwell-commits-") as tmp:
        for index in range(repeat + 1):
            workflow, inputs, count = WORKLOADS[workload](steps or STEPS[workload])
            gc.collect()
            into: list[float] = []
            with Engine(Path(tmp) / f"{workload}-{index}.db", max_concurrency=8) as engine:
                db = engine.store.db  # type: ignore[attr-defined]
                db._tx = _TimedCursor(db._tx, into)
                result = engine.run(workflow, inputs)
            if not result.ok:
                raise SystemExit(f"{workload} run failed: {result.error}")
            if index:  # the first run warms imports and caches
                seconds += into
    return CommitTimes(workload, count, repeat, seconds)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run, print one line per workload."""
    from bench.workloads import workload_args, workload_parser

    parser = workload_parser("python -m bench.commits", __doc__.split("\n\n")[0],
                             "steps per workload (default: each workload's own size)",
                             repeat=3, repeat_help="timed runs per workload")
    args, names = workload_args(parser, argv)
    print(f"{'workload':<14} {'steps':>7} {'commits':>7} {'median us':>9} {'mean us':>8} "
          f"{'p99 us':>7} {'slowest ms':>10} {'over 1 ms':>9} {'their ms':>8}")
    for name in names:
        times = commit_times(name, args.steps, args.repeat)
        ordered = sorted(times.seconds)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        stalls, stalled_ms = times.stalls()
        print(f"{name:<14} {times.steps:>7,} {times.per_run:>7,.0f} "
              f"{statistics.median(ordered) * 1e6:>9.1f} "
              f"{statistics.mean(ordered) * 1e6:>8.1f} {p99 * 1e6:>7.1f} "
              f"{ordered[-1] * 1e3:>10.2f} {stalls:>9.1f} {stalled_ms:>8.1f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
