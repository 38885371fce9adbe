"""One measurement per process: ``python -m bench.measure WORKLOAD STEPS DURABILITY``.

Runs the workload ``--repeat`` times in fresh databases inside this process (after one
warm-up run that is not counted) and prints one JSON line: median wall seconds, the
persisted step count (checked against the database), database bytes per step and this
process's peak RSS. Running each workload in its own process keeps peak RSS per workload.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _db_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in db.parent.glob(f"{db.name}*") if p.is_file()
               and not p.name.endswith(".files"))


def measure(workload: str, steps: int, durability: str, repeat: int) -> dict[str, float]:
    """Median wall seconds of ``repeat`` runs of ``workload``, plus size and peak RSS."""
    from bench.workloads import WORKLOADS
    from engine.core import Engine

    walls: list[float] = []
    size = 0
    count = 0
    with tempfile.TemporaryDirectory(prefix="stepwell-bench-") as tmp:
        for index in range(repeat + 1):
            workflow, inputs, count = WORKLOADS[workload](steps)
            db = Path(tmp) / f"{workload}-{index}.db"
            with Engine(db, durability=durability, max_concurrency=8) as engine:
                start = time.perf_counter()
                result = engine.run(workflow, inputs)
                wall = time.perf_counter() - start
                if not result.ok:
                    raise SystemExit(f"{workload} run failed: {result.error}")
                written = len(engine.store.load_steps(result.run_id))
                if written != count:
                    raise SystemExit(f"{workload}: expected {count} steps, found {written}")
            if index:  # the first run warms imports and caches
                walls.append(wall)
                size = _db_bytes(db)
    return {"wall": statistics.median(walls), "steps": count, "bytes_per_step": size / count,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


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
