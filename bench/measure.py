"""One measurement per process: ``python -m bench.measure WORKLOAD STEPS DURABILITY``.

Runs the workload ``--repeat`` times in fresh databases inside this process (after one
warm-up run that is not counted) and prints one JSON line: median wall seconds, the
persisted step count (checked against the database), the median ratio to the floor
measured before each run and that floor, database bytes per step, this process's peak
RSS, and the time to compile the workflow once. Running each workload in
its own process keeps peak RSS per workload.

Each run builds its workflow anew and opens a new Engine, as a process running the same
workflow again and again does; the runs share the compiled graph
(:func:`engine.graph.compile_shared`), so the warm-up run pays for compiling and
``compile_s`` reports what that costs, measured on its own.

Right before each timed run the floor (:func:`bench.floor.durability_floor`: one committed
sqlite3 row, at the durability's ``synchronous``) is measured in this process, and the
run's per-step time is divided by it: ``x_floor`` is the median of those ratios and
``floor_us`` the median floor. A shared machine's speed drifts within minutes; a floor
measured beside each run compares the run with the machine as it was then, where one
floor measured at the start of ``python -m bench`` compares it with the machine as it
was a minute or more before.

Before each timed run the cyclic garbage of the previous one (its workflow, Engine and
store objects) is collected (:func:`settle_heap`): otherwise a full collection that this
harness's own garbage brings due lands inside whichever run comes next, adding 35 to 60
ms to it on a 2-CPU machine. What a run allocates is still collected during it, as in any
process.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _db_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in db.parent.glob(f"{db.name}*") if p.is_file()
               and not p.name.endswith(".files"))


def settle_heap() -> None:
    """Collect the cyclic garbage the previous run left, so that the next timed run pays
    only for the collections its own allocations bring due (peers' runs too)."""
    gc.collect()


def measure(workload: str, steps: int, durability: str, repeat: int) -> dict[str, float]:
    """Median wall seconds of ``repeat`` runs of ``workload``, its median ratio to the
    floor measured right before each run, plus size and peak RSS."""
    from bench.floor import durability_floor
    from bench.workloads import WORKLOADS
    from engine.core import Engine

    walls: list[float] = []
    floors: list[float] = []
    ratios: list[float] = []
    size = 0
    count = 0
    with tempfile.TemporaryDirectory(prefix="stepwell-bench-") as tmp:
        for index in range(repeat + 1):
            workflow, inputs, count = WORKLOADS[workload](steps)
            db = Path(tmp) / f"{workload}-{index}.db"
            # beside each timed run (the warm-up run's would be thrown away)
            floor = durability_floor(Path(tmp) / f"floor-{index}.db", durability) if index else 0.0
            settle_heap()
            with Engine(db, durability=durability, max_concurrency=8) as engine:
                start = time.perf_counter()
                result = engine.run(workflow, inputs)
                wall = time.perf_counter() - start
                if not result.ok:
                    raise SystemExit(f"{workload} run failed: {result.error}")
            written = _count_steps(db, result.run_id)  # the engine has closed the file
            if written != count:
                raise SystemExit(f"{workload}: expected {count} steps, found {written}")
            if index:  # the first run warms imports and caches
                walls.append(wall)
                floors.append(floor)
                ratios.append(wall / count / floor)
                size = _db_bytes(db)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"wall": statistics.median(walls), "steps": count, "bytes_per_step": size / count,
            "floor_us": statistics.median(floors) * 1e6, "x_floor": statistics.median(ratios),
            "peak_rss_mb": peak_rss_mb, "compile_s": _compile_seconds(workload, steps)}


def _count_steps(db: Path, run_id: str) -> int:
    """The step rows of ``run_id``, counted in SQL (loading them would inflate peak RSS)."""
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM steps WHERE run_id = ?",
                                (run_id,)).fetchone()[0])
    finally:
        conn.close()


def _compile_seconds(workload: str, steps: int) -> float:
    """Seconds to validate and compile the workload's workflow once, without the cache."""
    from bench.workloads import WORKLOADS
    from blocks.registry import default_registry
    from engine.graph import compile_workflow

    workflow, _, _ = WORKLOADS[workload](steps)
    registry = default_registry()
    start = time.perf_counter()
    compile_workflow(workflow, registry)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, measure, print one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m bench.measure")
    parser.add_argument("workload")
    parser.add_argument("steps", type=int)
    parser.add_argument("durability", choices=["process", "full"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    json.dump(measure(args.workload, args.steps, args.durability, args.repeat), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
