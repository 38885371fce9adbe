"""``python -m bench``: run the workloads and print per-step overhead against the floor.

Each workload runs ``--repeat`` times in a fresh database; the table shows the median.
Per-step overhead is (wall time of the run) / (persisted steps), measured in-process.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.floor import sqlite_floor
from bench.workloads import WORKLOADS


def _measure(name: str, steps: int, durability: str, folder: Path, index: int) -> dict[str, float]:
    from engine.core import Engine

    workflow, inputs, count = WORKLOADS[name](steps)
    db = folder / f"{name}-{durability}-{index}.db"
    with Engine(db, durability=durability, max_concurrency=8) as engine:
        graph_ready = engine.compile(workflow)
        del graph_ready
        start = time.perf_counter()
        result = engine.run(workflow, inputs)
        wall = time.perf_counter() - start
        if not result.ok:
            raise SystemExit(f"{name} run failed: {result.error}")
    size = sum(p.stat().st_size for p in folder.glob(f"{db.name}*"))
    return {"wall": wall, "steps": count, "bytes": size}


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run the workloads, print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--steps", type=int, default=1000, help="steps per workload")
    parser.add_argument("--repeat", type=int, default=3, help="runs per workload (median)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help=f"comma-separated subset of {', '.join(WORKLOADS)}")
    parser.add_argument("--durability", default="process", choices=["process", "full"])
    args = parser.parse_args(argv)
    console = Console()
    with tempfile.TemporaryDirectory(prefix="stepwell-bench-") as tmp:
        folder = Path(tmp)
        floor = sqlite_floor(folder / "floor.db", 2000,
                             "FULL" if args.durability == "full" else "NORMAL")
        table = Table(title=f"stepwell bench ({args.durability} durability, median of {args.repeat})")
        for col in ("workload", "steps", "wall s", "us/step", "steps/s", "x floor",
                    "DB bytes/step", "peak RSS MB"):
            table.add_column(col, justify="right" if col != "workload" else "left")
        table.add_row("floor: sqlite3 commit/row", "2000", f"{floor * 2000:.3f}",
                      f"{floor * 1e6:.1f}", f"{1 / floor:,.0f}", "1.0", "-", "-")
        for name in [w.strip() for w in args.workloads.split(",") if w.strip()]:
            runs = [_measure(name, args.steps, args.durability, folder, i) for i in range(args.repeat)]
            wall = statistics.median(r["wall"] for r in runs)
            steps = runs[0]["steps"]
            per = wall / steps
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            table.add_row(name, f"{steps:,}", f"{wall:.3f}", f"{per * 1e6:.1f}",
                          f"{steps / wall:,.0f}", f"{per / floor:.1f}",
                          f"{runs[0]['bytes'] / steps:,.0f}", f"{rss:.0f}")
        console.print(table)


if __name__ == "__main__":
    main()
