"""In-process functions for the runner tests (importable as ``tests.engine.runner_targets``)."""

from __future__ import annotations

import sqlite3
from typing import Any

from engine.contracts.blocks import current_context

#: Set by the test: the database file the check below reads with its own connection.
DB: dict[str, str] = {}


def upstream_committed(data: Any) -> dict[str, Any]:
    """Fail unless the step that fed this one is ``completed`` in the database already."""
    n = data["n"] if isinstance(data, dict) else data.n
    ctx = current_context()
    assert ctx is not None
    if n:
        conn = sqlite3.connect(DB["path"])
        try:
            row = conn.execute("SELECT status FROM steps WHERE run_id = ? AND step_id = ?",
                               (ctx.run_id, f"f{n - 1}")).fetchone()
        finally:
            conn.close()
        if row is None or row[0] != "completed":
            raise RuntimeError(f"f{n - 1} is {row and row[0]!r} while {ctx.step_id} runs")
    return {"n": n + 1}


def block_the_loop(data: Any) -> dict[str, Any]:
    """Hold the event loop for 2.6 s, then report how fresh the run's heartbeat is."""
    import time

    ctx = current_context()
    assert ctx is not None
    started = time.time()
    time.sleep(2.6)
    conn = sqlite3.connect(DB["path"])
    try:
        beat = conn.execute("SELECT heartbeat_at FROM runs WHERE id = ?",
                            (ctx.run_id,)).fetchone()[0]
    finally:
        conn.close()
    return {"beat_during_sleep": beat > started}
