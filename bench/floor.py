"""The floor: plain sqlite3, WAL, one committed row per step."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

#: Rows one floor measurement commits (``python -m bench``, beside each timed run, and
#: ``python -m bench.sqlreplay``).
FLOOR_ROWS = 2000
#: SQLite's ``synchronous`` for each of the store's durabilities the bench runs.
SYNCHRONOUS = {"process": "NORMAL", "full": "FULL"}


def sqlite_floor(path: Path, rows: int, synchronous: str = "NORMAL") -> float:
    """Seconds per committed insert of a small JSON row (WAL mode)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, step TEXT, body TEXT)")
    body = json.dumps({"n": 1})
    start = time.perf_counter()
    for i in range(rows):
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t (step, body) VALUES (?, ?)", (f"s{i}", body))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed / rows


def durability_floor(path: Path, durability: str = "process") -> float:
    """Seconds per committed row of :data:`FLOOR_ROWS`, at ``durability``'s
    ``synchronous`` (``process`` or ``full``)."""
    return sqlite_floor(path, FLOOR_ROWS, SYNCHRONOUS[durability])
