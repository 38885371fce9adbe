"""Where a step's time goes, layer by layer: ``python -m bench.layers [WORKLOADS]``.

Each workload runs, in one process and alternating round by round, on three stores:

- ``engine``: a store that keeps the runs but drops every step event (:class:`StepsDropped`):
  what the scheduler, the runner and the blocks cost, with nothing persisted;
- ``memory``: :class:`store.memory.MemoryStore` (the test store: every event kept, in
  Python);
- ``sqlite``: the SQLite file store at ``process`` durability, as ``python -m bench``
  runs it.

Then the run's SQL is recorded and replayed on its own (:func:`bench.sqlreplay.sql_split`),
which splits the SQLite store's share into the SQL (SQLite and the ``sqlite3`` module) and
the store's own Python (planning the batch, encoding, the statements' parameters). Each
line gives the medians in microseconds per persisted step and, in brackets, in multiples
of the floor (one committed sqlite3 row) measured in the same invocation:

    engine + blocks | store's Python | SQL | = SQLite run

The last three columns are differences of medians, so on a busy machine they carry its
swing; the split says which layer a target's gap is in, not the gap to a microsecond.
"""

from __future__ import annotations

import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from store.memory import MemoryStore

#: The stores each round runs, in order.
KINDS = ("engine", "memory", "sqlite")


class StepsDropped(MemoryStore):
    """A :class:`MemoryStore` that keeps runs and their lifecycle but no step events:
    a run on it costs what the engine and the blocks do, and nothing of persisting steps.
    For measuring only (a run on it cannot be inspected or resumed)."""

    def apply(self, run_id: str, events: Sequence[Any], run_update: Any = None, *,
              now: float, logs: Sequence[Any] = ()) -> None:
        """Keep ``run_update`` (the run's lifecycle); drop ``events`` and ``logs``."""
        if run_update is not None:
            super().apply(run_id, [], run_update, now=now)


def layer_times(workload: str, steps: int | None = None, repeat: int = 7
                ) -> dict[str, float]:
    """Median microseconds per persisted step of ``workload`` on each of :data:`KINDS`,
    the replayed SQL's (``sql``) and the floor's (``floor``).

    Raises:
        SystemExit: a run did not complete.
    """
    from bench.floor import durability_floor
    from bench.sqlreplay import sql_split
    from bench.workloads import STEPS, WORKLOADS
    from engine.core import Engine

    size = steps or STEPS[workload]
    times: dict[str, list[float]] = {kind: [] for kind in (*KINDS, "floor")}
    with tempfile.TemporaryDirectory(prefix="stepwell-layers-") as tmp:
        folder = Path(tmp)
        for index in range(repeat + 1):  # the first round warms up and is not counted
            for kind in KINDS:
                workflow, inputs, count = WORKLOADS[workload](size)
                store = {"engine": StepsDropped, "memory": MemoryStore}.get(kind)
                where: dict[str, Any] = ({"store": store()} if store is not None
                                         else {"db": folder / f"{kind}-{index}.db"})
                gc.collect()
                with Engine(**where, durability="process", max_concurrency=8) as engine:
                    start = time.perf_counter()
                    result = engine.run(workflow, inputs)
                    wall = time.perf_counter() - start
                if not result.ok:
                    raise SystemExit(f"{workload} on the {kind} store failed: {result.error}")
                if index:
                    times[kind].append(wall / count * 1e6)
            if index:
                floor_db = folder / f"floor-{index}.db"
                times["floor"].append(durability_floor(floor_db) * 1e6)
    medians = {kind: statistics.median(values) for kind, values in times.items()}
    medians["sql"] = sql_split(workload, size, repeat=max(3, repeat // 2)).sql_us
    return medians


def layers_line(workload: str, t: dict[str, float]) -> str:
    """One printed line: the three layers and the SQLite run, us per step (x floor)."""
    floor = t["floor"]

    def cell(us: float) -> str:
        return f"{us:6.1f} ({us / floor:4.2f}x)"

    python = t["sqlite"] - t["engine"] - t["sql"]
    return (f"{workload:<14} {floor:>8.1f} {cell(t['engine']):>16} {cell(python):>16} "
            f"{cell(t['sql']):>16} {cell(t['sqlite']):>16} {t['memory']:>10.1f}")


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, measure, print one line per workload."""
    from bench.workloads import workload_args, workload_parser

    parser = workload_parser("python -m bench.layers", __doc__.split("\n\n")[0],
                             "steps per workload (default: each workload's own size)",
                             repeat=7, repeat_help="rounds (median)")
    args, names = workload_args(parser, argv)
    print(f"{'workload':<14} {'floor us':>8} {'engine+blocks':>16} {'store Python':>16} "
          f"{'SQL':>16} {'SQLite run':>16} {'memory run':>10}")
    for name in names:
        print(layers_line(name, layer_times(name, args.steps, args.repeat)))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
