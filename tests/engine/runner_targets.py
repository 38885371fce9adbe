"""In-process functions for the runner tests (importable as ``tests.engine.runner_targets``)."""

from __future__ import annotations

import gc
import sqlite3
import time
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


def body_committed(data: Any) -> dict[str, Any]:
    """A while loop's body: fail unless this step is ``running`` in the database and the
    previous iteration's body is ``completed`` there (step ids ``loop_iter_<i>_bump``)."""
    n = data["n"] if isinstance(data, dict) else data.n
    ctx = current_context()
    assert ctx is not None
    iteration = int(ctx.step_id.split("_")[2])
    wanted = {ctx.step_id: "running"}
    if iteration:
        wanted[f"loop_iter_{iteration - 1}_bump"] = "completed"
    conn = sqlite3.connect(DB["path"])
    try:
        for step_id, status in wanted.items():
            row = conn.execute("SELECT status FROM steps WHERE run_id = ? AND step_id = ?",
                               (ctx.run_id, step_id)).fetchone()
            if row is None or row[0] != status:
                raise RuntimeError(f"{step_id} is {row and row[0]!r} while {ctx.step_id} runs")
    finally:
        conn.close()
    return {"n": n + 1}


def chatty(data: Any) -> dict[str, Any]:
    """Print a line, then n + 1."""
    n = data["n"] if isinstance(data, dict) else data.n
    print(f"step {n}")
    return {"n": n + 1}


def quiet(data: Any) -> dict[str, Any]:
    """n + 1, printing nothing."""
    n = data["n"] if isinstance(data, dict) else data.n
    return {"n": n + 1}


#: ``gc.isenabled()`` as ``collector_seen`` found it, step by step (cleared by the test).
COLLECTOR: list[bool] = []


def collector_seen(data: Any) -> dict[str, Any]:
    """Note whether the cyclic garbage collector is enabled, then n + 1."""
    COLLECTOR.append(gc.isenabled())
    n = data["n"] if isinstance(data, dict) else data.n
    return {"n": n + 1}


#: What ``slow`` and ``async_mark`` ran, in order (cleared by the test).
ORDER: list[str] = []


def slow(data: Any) -> dict[str, Any]:
    """Take 30 ms (longer than the driver runs inline steps between yields), then n + 1."""
    ctx = current_context()
    ORDER.append(ctx.block_id if ctx is not None else "?")
    time.sleep(0.03)
    n = data["n"] if isinstance(data, dict) else data.n
    return {"n": n + 1}


async def async_mark(data: Any) -> dict[str, Any]:
    """Note that an async step got the event loop, then n + 1."""
    ORDER.append("async")
    n = data["n"] if isinstance(data, dict) else data.n
    return {"n": n + 1}


#: What ``end_row_seen``/``end_row_seen_async`` found, by body step id (cleared by the test).
END_ROWS: dict[str, str | None] = {}


def _end_row(step_id: str) -> str | None:
    """The status of this body's iteration end sentinel in the database (None: no row)."""
    ctx = current_context()
    assert ctx is not None
    end_id = step_id.rsplit("_", 1)[0] + "_loop_sentinel_end"
    conn = sqlite3.connect(DB["path"])
    try:
        row = conn.execute("SELECT status FROM steps WHERE run_id = ? AND step_id = ?",
                           (ctx.run_id, end_id)).fetchone()
    finally:
        conn.close()
    return None if row is None else row[0]


def end_row_seen(data: Any) -> dict[str, Any]:
    """A while loop's body (``bump``): note its end sentinel's row, then n + 1."""
    ctx = current_context()
    assert ctx is not None
    END_ROWS[ctx.step_id] = _end_row(ctx.step_id)
    n = data["n"] if isinstance(data, dict) else data.n
    return {"n": n + 1}


async def end_row_seen_async(data: Any) -> dict[str, Any]:
    """:func:`end_row_seen` as an ``async def`` (it runs in a worker task, not inline)."""
    return end_row_seen(data)
