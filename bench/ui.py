"""Web UI render times at size: the runs list over 10,000 runs, the page of a run with a
10,000-item for_each, and the weight of what a browser downloads.

    python -m bench.ui            # or: python -m bench --ui

Two databases are built in a temporary folder: one where 8 real runs
(:mod:`bench.ui_seed`: invoices waiting for a review, a for_each of 30 items of which 4
fail) are copied into ``--runs`` runs (10,000), and one with a single run of a for_each
over ``--items`` items (10,000, one function each: 30,003 steps). Each page is requested
through the ASGI app in process (routing, queries, template rendering; no network),
``--repeat`` times after one warm-up; the table gives the median and the slowest wall
time, the median CPU time of the process (what a request costs when other programs
compete for the cores: the load average is in the title) and the size of the HTML.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

TARGET_MS = 300.0
STATIC = Path(__file__).resolve().parents[1] / "engine" / "server" / "ui" / "static"


def _replicate(db: Path, total: int) -> None:
    """Copy the database's runs (and their steps) until it holds ``total`` runs."""
    conn = sqlite3.connect(db)
    run_cols = [r[1] for r in conn.execute("PRAGMA table_info(runs)")]
    step_cols = [r[1] for r in conn.execute("PRAGMA table_info(steps)") if r[1] != "seq"]
    runs = conn.execute(f"SELECT {', '.join(run_cols)} FROM runs").fetchall()
    steps: dict[str, list[tuple[Any, ...]]] = {}
    for row in conn.execute(f"SELECT {', '.join(step_cols)} FROM steps ORDER BY seq"):
        steps.setdefault(row[step_cols.index("run_id")], []).append(row)
    rid, created = run_cols.index("id"), run_cols.index("created_at")
    srid = step_cols.index("run_id")
    base = time.time() - total
    new_runs, new_steps = [], []
    for i in range(total - len(runs)):
        template = runs[i % len(runs)]
        run_id = f"run_bench{i:015d}"
        row = list(template)
        row[rid], row[created] = run_id, base + i
        new_runs.append(row)
        for step in steps.get(template[rid], []):
            copy = list(step)
            copy[srid] = run_id
            new_steps.append(copy)
    quoted = ", ".join(f'"{c}"' for c in run_cols)
    conn.executemany(f"INSERT INTO runs ({quoted}) VALUES ({', '.join('?' * len(run_cols))})",
                     new_runs)
    conn.executemany(f"INSERT INTO steps ({', '.join(step_cols)}) VALUES "
                     f"({', '.join('?' * len(step_cols))})", new_steps)
    conn.commit()
    conn.close()


def build_runs_db(folder: Path, total: int) -> tuple[Path, dict[str, str]]:
    """The 10,000-run database and a few of its ids."""
    from bench.ui_seed import seed_runs
    from engine import Engine

    db = folder / "runs.db"
    with Engine(db) as engine:
        seeded = [seed_runs(engine, items=30) for _ in range(4)]
        review = engine.store.reviews(run_id=seeded[0].review)[0].id
    _replicate(db, total)
    return db, {"items": seeded[0].items, "review": review}


def build_items_db(folder: Path, items: int) -> tuple[Path, str]:
    """One run of a for_each over ``items`` items."""
    from bench.workloads import for_each
    from engine import Engine

    db = folder / "items.db"
    workflow, inputs, _ = for_each(3 + 3 * items)
    with Engine(db) as engine:
        result = engine.run(workflow, inputs)
    assert result.status == "completed", result
    return db, result.run_id


def _time(client: Any, path: str, repeat: int, headers: dict[str, str] | None = None
          ) -> tuple[float, float, float, int]:
    """Median and slowest wall time, median CPU time (every thread of this process: what
    the request cost, whatever else the machine runs) and size of a page."""
    client.get(path, headers=headers)  # warm-up: templates compiled, caches filled
    times, cpu, size = [], [], 0
    for _ in range(repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        response = client.get(path, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
        size = len(response.content)
    return statistics.median(times), max(times), statistics.median(cpu), size


def measure(runs: int = 10_000, items: int = 10_000, repeat: int = 7) -> list[dict[str, Any]]:
    """Render times of the pages at size (see the module docstring)."""
    from fastapi.testclient import TestClient

    from engine.server import create_app
    from engine.server.config import ServerConfig

    config = ServerConfig(api_keys={"k": "org_local"}, generated_key="k")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="stepwell-bench-ui-") as tmp:
        folder = Path(tmp)
        runs_db, ids = build_runs_db(folder, runs)
        items_db, big = build_items_db(folder, items)
        pages = [
            (runs_db, f"runs list, {runs:,} runs, first page", "/"),
            (runs_db, "runs list, filtered by status", "/?status=completed"),
            (runs_db, "runs list, text search", "/?q=Invoice"),
            (runs_db, "runs list, a page deep in the list",
             f"/?after=run_bench{runs // 2:015d}"),
            (runs_db, "run page, 30-item for_each", f"/runs/{ids['items']}"),
            (runs_db, "review queue", "/reviews"),
            (runs_db, "review page (PDF pages, form, versions)", f"/reviews/{ids['review']}"),
            (items_db, f"run page, {items:,}-item for_each", f"/runs/{big}"),
            (items_db, "  same, live-update fragment", f"/runs/{big}"),
            (items_db, "  its iterations, a middle page",
             f"/runs/{big}/iterations?step=each&page={items // 100}"),
            (items_db, "  its block `bump` selected", f"/runs/{big}?block=bump"),
            (items_db, f"step page of item {items // 2:,}",
             f"/runs/{big}/steps/each_iter_{items // 2}_bump"),
        ]
        for db in (runs_db, items_db):
            app = create_app(db, config=config)
            with TestClient(app, base_url="http://127.0.0.1:8000") as client:
                for page_db, label, path in pages:
                    if page_db != db:
                        continue
                    headers = {"X-Stepwell-Fragment": "1"} if "fragment" in label else None
                    median, worst, cpu, size = _time(client, path, repeat, headers)
                    rows.append({"page": label, "path": path, "median_ms": median,
                                 "max_ms": worst, "cpu_ms": cpu, "bytes": size})
    return rows


def static_weight() -> list[tuple[str, int, int]]:
    """``(file, bytes, gzipped bytes)`` of the scripts and styles pages load."""
    out = []
    for path in sorted(STATIC.rglob("*")):
        if path.suffix in (".js", ".css"):
            data = path.read_bytes()
            out.append((str(path.relative_to(STATIC)), len(data), len(gzip.compress(data))))
    return out


def ui_tables(runs: int = 10_000, items: int = 10_000, repeat: int = 7) -> list[Table]:
    """The render-time table and the static-weight table."""
    rows = measure(runs, items, repeat)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    timing = Table(title=f"Web UI, server-side render (median of {repeat}; target "
                         f"{TARGET_MS:.0f} ms; load average {load:.1f} on "
                         f"{os.cpu_count()} cores)")
    for column in ("page", "median ms", "max ms", "CPU ms", "HTML KiB", "within target"):
        timing.add_column(column, justify="left" if column == "page" else "right")
    for row in rows:
        timing.add_row(row["page"], f"{row['median_ms']:.1f}", f"{row['max_ms']:.1f}",
                       f"{row['cpu_ms']:.1f}", f"{row['bytes'] / 1024:.1f}",
                       "yes" if row["median_ms"] < TARGET_MS else "NO")
    weight = Table(title="Web UI, static files (each loaded once, then cached)")
    for column in ("file", "KiB", "gzip KiB"):
        weight.add_column(column, justify="left" if column == "file" else "right")
    for name, size, packed in static_weight():
        weight.add_row(name, f"{size / 1024:.1f}", f"{packed / 1024:.1f}")
    return [timing, weight]


def main(argv: list[str] | None = None) -> None:
    """Print the tables."""
    parser = argparse.ArgumentParser(prog="python -m bench.ui", description=__doc__)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    console = Console()
    for table in ui_tables(args.runs, args.items, args.repeat):
        console.print(table)


if __name__ == "__main__":
    main()
