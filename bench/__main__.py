"""``python -m bench``: stepwell's performance table, against the sqlite3 floor.

Workloads (each in its own process, so peak RSS is per workload):

- W1 ``chain``: start_json then 999 functions in a line (1,000 steps);
- W2 ``fanout``: start_json feeding 999 independent functions;
- W2b ``for_each``: a for_each over 3,332 items with one function per item (9,999 steps
  with sentinels and container);
- W3 ``while``: a while_loop of 1,000 iterations (3,003 steps);
- W4 cold start: ``stepwell run`` of a one-step workflow, whole process;
- W5 reads: ``steps list`` / ``steps get`` on a 100,000-step run;
- W6 stubbed test: a docs/testing.md-style test (fresh database file, stubs, one run,
  ``assert_step``), per test after the imports (bench/stubbed.py);
- ``for_each_100k`` (only when named in ``--workloads``): W2b over 100,000 items
  (300,003 steps), for peak RSS at scale;
- ``chain_printing`` (only when named): W1 whose functions each print a line, for what
  a step's log costs (it goes in the step's own commit).

Per-step time is (wall time of the run) / (persisted steps), measured in-process. The
floor is one committed sqlite3 row: measured once at the start (the first row), and
again in each workload's process right before each of its timed runs. "x floor" is the
median of each run's per-step time over the floor measured just before it, and "floor
us" the median of those floors: a shared machine's speed drifts within minutes, so each
run is compared with the machine as it was when it ran. W4 is divided by a bare
``python -c`` that commits one row. Each run builds its workflow and Engine anew; the
compiled graph is shared between runs of one process, so the warm-up run pays for
compiling and the "compile ms" column says what that costs.
Every figure is the median of ``--repeat`` runs after one warm-up run.

``--peers`` also runs W1, W2 and W4 on LangGraph (SQLite checkpointer) and DBOS (SQLite
system database), each in its own process, and prints them next to stepwell's figures;
their packages come with the ``bench`` extra (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.coldstart import cold_start, python_floor
from bench.floor import FLOOR_ROWS, durability_floor
from bench.reads import read_latencies
from bench.workloads import DEFAULT_STEPS, STEPS
from store.connection import empty_database_bytes

#: Workloads run only when named: name -> (workload, steps).
EXTRA = {"for_each_100k": ("for_each", 300_003),
         "chain_printing": ("chain_printing", STEPS["chain_printing"])}
#: Per-step targets in multiples of the floor: (process durability, full durability).
TARGETS_X: dict[str, tuple[float | None, float | None]] = {
    "chain": (5, 2), "fanout": (4, None), "for_each": (3, None), "while": (5, None),
    "for_each_100k": (3, None), "chain_printing": (None, None)}
READ_TARGETS_MS = {"steps list, first page of 100": 20.0, "steps get by id": 5.0,
                   "steps get by id and run": 5.0}
COLD_START_TARGET_S = 0.250
STUBBED_TEST_TARGET_MS = 10.0
#: DB bytes per step of the chain; peak RSS of the 100,000-item for_each.
DB_BYTES_TARGET = 800
RSS_TARGET_MB = 250


def _run_workload(name: str, steps: int, durability: str, repeat: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.measure", name, str(steps), durability,
         "--repeat", str(repeat)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"workload {name} failed:\n{done.stderr or done.stdout}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _stubbed_tests() -> dict[str, float]:
    """W6 in its own process (a fresh interpreter, as a pytest session starts)."""
    done = subprocess.run([sys.executable, "-m", "bench.stubbed"], capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SystemExit(f"W6 stubbed test failed:\n{done.stderr or done.stdout}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _mark(ok: bool) -> str:
    return "[green]yes[/]" if ok else "[red]no[/]"


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run the workloads, print the tables."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=None,
                        help="steps per workload (default: each workload's own size)")
    parser.add_argument("--repeat", type=int, default=3, help="measured runs (median)")
    parser.add_argument("--workloads", default=",".join(DEFAULT_STEPS),
                        help=f"comma-separated subset of {', '.join(DEFAULT_STEPS)}, "
                             f"or {', '.join(EXTRA)}")
    parser.add_argument("--durability", default="process", choices=["process", "full"])
    parser.add_argument("--read-steps", type=int, default=100_000,
                        help="size of the run W5 reads (0 to skip W5)")
    parser.add_argument("--no-cold-start", action="store_true", help="skip W4")
    parser.add_argument("--no-stubbed", action="store_true", help="skip W6")
    parser.add_argument("--ui", action="store_true",
                        help="also time the web UI's pages at size (bench/ui.py)")
    parser.add_argument("--peers", action="store_true",
                        help="also run the workloads on LangGraph and DBOS (needs the bench "
                             "extra) and print them side by side")
    args = parser.parse_args(argv)
    console = Console(width=max(Console().width, 150))
    full = args.durability == "full"
    names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for name in names:
        if name not in DEFAULT_STEPS and name not in EXTRA:
            raise SystemExit(f"unknown workload {name!r}; choose from "
                             f"{', '.join([*DEFAULT_STEPS, *EXTRA])}")
    steps = {name: args.steps or DEFAULT_STEPS[name] for name in DEFAULT_STEPS}
    steps.update({name: args.steps or size for name, (_kind, size) in EXTRA.items()})
    results: dict[str, dict[str, float]] = {}
    cold: float | None = None
    with tempfile.TemporaryDirectory(prefix="stepwell-bench-") as tmp:
        folder = Path(tmp)
        floor = durability_floor(folder / "floor.db", args.durability)
        table = Table(title=f"stepwell bench: {args.durability} durability, "
                            f"median of {args.repeat}")
        for col in ("workload", "steps", "wall s", "us/step", "steps/s", "floor us",
                    "x floor", "target x", "met", "DB bytes/step", "beyond layout",
                    "peak RSS MB", "compile ms"):
            table.add_column(col, justify="left" if col == "workload" else "right",
                             no_wrap=col == "workload")
        table.add_row("floor (sqlite3)", f"{FLOOR_ROWS:,}", f"{floor * FLOOR_ROWS:.3f}",
                      f"{floor * 1e6:.1f}", f"{1 / floor:,.0f}", f"{floor * 1e6:.1f}", "1.0",
                      "-", "-", "-", "-", "-", "-")
        empty = empty_database_bytes()
        for name in names:
            kind = EXTRA[name][0] if name in EXTRA else name
            r = results[name] = _run_workload(kind, steps[name], args.durability, args.repeat)
            per_us = r["wall"] / r["steps"] * 1e6
            x_floor = r["x_floor"]
            target = TARGETS_X[name][1 if full else 0]
            table.add_row(name, f"{int(r['steps']):,}", f"{r['wall']:.3f}", f"{per_us:.1f}",
                          f"{r['steps'] / r['wall']:,.0f}", f"{r['floor_us']:.1f}",
                          f"{x_floor:.1f}",
                          "-" if target is None else f"{target:g}",
                          "-" if target is None else _mark(x_floor <= target),
                          f"{r['bytes_per_step']:,.0f}",
                      f"{r['bytes_per_step'] - empty / r['steps']:,.0f}",
                      f"{r['peak_rss_mb']:.0f}",
                          f"{r['compile_s'] * 1000:.1f}")
        console.print(table)
        console.print(f"Targets: chain under {DB_BYTES_TARGET} DB bytes per step; "
                      f"for_each_100k under {RSS_TARGET_MB} MB peak RSS. DB bytes/step is "
                      "the whole file over the steps; 'beyond layout' leaves out the "
                      f"{empty / 1024:.0f} KiB of a new, empty database (a page for each "
                      "table and index).")
        if not args.no_cold_start:
            cold = cold_start(folder, args.repeat)
            bare = python_floor(folder, args.repeat)
            t = Table(title="W4 cold start (whole process, shell to exit, bytecode cached)")
            for col in ("command", "seconds", "x floor", "target", "met"):
                t.add_column(col, justify="left" if col == "command" else "right")
            t.add_row("stepwell run (one-step workflow)", f"{cold:.3f}", f"{cold / bare:.1f}",
                      f"{COLD_START_TARGET_S:.3f}", _mark(cold <= COLD_START_TARGET_S))
            t.add_row("floor: python -c (sqlite3, one commit)", f"{bare:.3f}", "1.0", "-", "-")
            console.print(t)
        if not args.no_stubbed:
            stubbed = _stubbed_tests()
            t = Table(title="W6 stubbed workflow test (fresh database file, median of 21)")
            for col in ("test", "ms", "target ms", "met"):
                t.add_column(col, justify="left" if col == "test" else "right")
            for label, ms in stubbed.items():
                t.add_row(label, f"{ms:.1f}", f"{STUBBED_TEST_TARGET_MS:g}",
                          _mark(ms <= STUBBED_TEST_TARGET_MS))
            console.print(t)
        if args.read_steps:
            latencies = read_latencies(folder / "reads.db", args.read_steps)
            t = Table(title=f"W5 reads on a {args.read_steps:,}-step run (median of 21)")
            for col in ("read", "ms", "target ms", "met"):
                t.add_column(col, justify="left" if col == "read" else "right")
            for label, ms in latencies.items():
                target_ms = READ_TARGETS_MS.get(label)
                t.add_row(label, f"{ms:.2f}", "-" if target_ms is None else f"{target_ms:g}",
                          "-" if target_ms is None else _mark(ms <= target_ms))
            console.print(t)
        if args.ui:
            from bench.ui import ui_tables

            for ui_table in ui_tables(repeat=args.repeat):
                console.print(ui_table)
        if args.peers:
            from bench.peers.report import StepwellFigures, print_peers

            print_peers(console, workloads=names, steps=steps, durability=args.durability,
                        repeat=args.repeat, cold=not args.no_cold_start, folder=folder,
                        ours=StepwellFigures(results=results, cold_start_s=cold,
                                             floor_us=floor * 1e6))


if __name__ == "__main__":
    main()
