"""``python -m bench --peers``: run the peers' workloads and print them next to stepwell's.

Each (peer, workload) is measured by ``bench.peers.measure`` in its own process (median of
``--repeat`` after a warm-up, peak RSS per process); each peer's cold start is the whole
process ``python -m bench.peers.<module> DB``, shell to exit, timed like stepwell's W4.
Without the ``bench`` extra nothing is measured: one line says how to install it and the
reference figures are printed instead, labelled as such.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.coldstart import bytecode_env
from bench.peers import INSTALL_HINT, PEERS, Peer, missing_packages

ROOT = Path(__file__).resolve().parents[2]
#: Workloads the peers run (those that also exist in stepwell's table).
PEER_WORKLOADS = ("chain", "fanout")
#: Reference figures on a 2-core machine, Python 3.11, SQLite, the same trivial steps,
#: every step persisted: (peer, per persisted step, cold start). Not measured here.
REFERENCE = [
    ("langgraph", "LangGraph 1.x + SQLite checkpointer, durability sync", "about 1.9 ms",
     "about 1.0 s"),
    ("dbos", "DBOS 3.x on SQLite", "about 2.0 ms", "about 1.8 s"),
    ("hamilton", "Hamilton with its SQLite cache", "about 1.4 ms", "-"),
    ("prefect", "Prefect 3 (until task states reach its database)", "about 29 ms",
     "10-18 s"),
]


@dataclass(slots=True, kw_only=True)
class StepwellFigures:
    """What the main tables measured: ``bench.measure`` results by workload, W4, floor."""

    results: dict[str, dict[str, float]] = field(default_factory=dict)
    cold_start_s: float | None = None
    floor_us: float = 0.0

    def us_per_step(self, workload: str) -> float | None:
        """stepwell's microseconds per step on ``workload``, if it ran."""
        r = self.results.get(workload)
        return None if r is None else r["wall"] / r["steps"] * 1e6


def peer_name(peer: Peer) -> str:
    """The peer's label with its installed version, e.g. ``LangGraph 1.2.3``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{peer.label} {version(peer.distribution)}"
    except PackageNotFoundError:
        return peer.label


def _measure(peer: Peer, workload: str, steps: int, durability: str,
             repeat: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.peers.measure", peer.key, workload, str(steps),
         durability, "--repeat", str(repeat)], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"peer {peer.key} workload {workload} failed:\n"
                         f"{done.stderr or done.stdout}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def peer_cold_start(peer: Peer, folder: Path, repeat: int) -> float:
    """Median seconds of ``python -m <peer module> DB`` (one persisted step, fresh DB)."""
    env = bytecode_env(folder)  # as stepwell's W4: bytecode cached, like an install
    times = []
    for index in range(repeat + 1):
        db = folder / f"cold-{peer.key}-{index}.sqlite"
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", peer.module, str(db)],
                              capture_output=True, text=True, cwd=ROOT, env=env, check=False)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"peer {peer.key} cold start failed ({done.returncode}): "
                             f"{done.stderr}")
        if index:  # the first run compiles bytecode caches
            times.append(elapsed)
    return statistics.median(times)


def _ratio(value: float, base: float | None) -> str:
    return "-" if base is None else f"{value / base:.1f}"


def _cold(seconds: float | None, base: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.3f} s" + ("" if base is None else f" (x{seconds / base:.1f})")


def measured_table(*, workloads: list[str], steps: dict[str, int], durability: str,
                   repeat: int, cold: bool, folder: Path, ours: StepwellFigures) -> Table:
    """Run every peer on ``workloads`` (those it supports) and build the comparison table."""
    table = Table(title=f"Peers, measured: {durability} durability, median of {repeat}")
    for col in ("peer", "workload", "us/step", "steps/s", "x stepwell", "DB bytes/step",
                "peak RSS MB", "cold start"):
        table.add_column(col, justify="left" if col in ("peer", "workload") else "right")
    runs = [w for w in workloads if w in PEER_WORKLOADS]
    rows = [(name, ours.results[name]) for name in runs if name in ours.results]
    _add_rows(table, "stepwell", rows, ours.cold_start_s, ours)
    for peer in PEERS:
        seconds = peer_cold_start(peer, folder, repeat) if cold else None
        table.add_section()
        _add_rows(table, peer_name(peer),
                  [(name, _measure(peer, name, steps[name], durability, repeat))
                   for name in runs], seconds, ours)
    return table


def _add_rows(table: Table, name: str, rows: list[tuple[str, dict[str, float]]],
              cold_s: float | None, ours: StepwellFigures) -> None:
    if not rows:
        table.add_row(name, "-", "-", "-", "-", "-", "-", _cold(cold_s, ours.cold_start_s))
    for index, (workload, r) in enumerate(rows):
        per_us = r["wall"] / r["steps"] * 1e6
        table.add_row(name if index == 0 else "", workload, f"{per_us:.1f}",
                      f"{r['steps'] / r['wall']:,.0f}",
                      _ratio(per_us, ours.us_per_step(workload)),
                      f"{r['bytes_per_step']:,.0f}", f"{r['peak_rss_mb']:.0f}",
                      _cold(cold_s, ours.cold_start_s) if index == 0 else "")


def reference_table(floor_us: float, synchronous: str, skip: Collection[str] = ()) -> Table:
    """The reference figures (not measured by this command), minus the ``skip`` keys."""
    table = Table(title="Peers, reference figures (not measured by this command)")
    for col in ("peer", "per persisted step (1,000-step chain)", "cold start"):
        table.add_column(col)
    for key, *row in REFERENCE:
        if key not in skip:
            table.add_row(*row)
    table.add_row(f"floor: Python sqlite3, WAL, synchronous={synchronous}, commit per row",
                  f"{floor_us:.0f} us (measured above)", "about 40 ms")
    return table


def print_peers(console: Console, *, workloads: list[str], steps: dict[str, int],
                durability: str, repeat: int, cold: bool, folder: Path,
                ours: StepwellFigures) -> None:
    """Print the measured peers table, or the install hint and the reference figures."""
    synchronous = "FULL" if durability == "full" else "NORMAL"
    missing = missing_packages()
    if missing:
        console.print(f"Peers not measured ({', '.join(missing)} not installed): "
                      f"run {INSTALL_HINT} to measure LangGraph and DBOS here.",
                      markup=False, soft_wrap=True)
        console.print(reference_table(ours.floor_us, synchronous))
        return
    console.print(measured_table(workloads=workloads, steps=steps, durability=durability,
                                 repeat=repeat, cold=cold, folder=folder, ours=ours))
    for peer in PEERS:
        console.print(f"{peer.label}: {peer.storage[durability]}.", markup=False)
    console.print("x stepwell: peer us/step over stepwell's us/step on the same workload "
                  "in this invocation; cold start: whole process, one persisted step.",
                  markup=False)
    console.print(reference_table(ours.floor_us, synchronous, skip={p.key for p in PEERS}))
