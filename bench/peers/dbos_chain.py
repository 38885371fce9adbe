"""DBOS peer: a ``@DBOS.workflow`` calling ``@DBOS.step`` functions, SQLite system database.

- W1 ``chain``: a workflow calling ``bump`` ``steps`` times in a loop, each call's
  output recorded (one committed ``operation_outputs`` row per step) before the next.
- W2 ``fanout``: an async workflow that awaits a ``start`` step, then starts
  ``steps - 1`` async ``bump`` steps at once with ``asyncio.gather`` (DBOS assigns their
  step ids in start order, so the fan-out replays deterministically).

The system database is ``sqlite:///<db>``, as shipped: DBOS opens it with a rollback
journal and SQLite's default ``synchronous=FULL``, whatever stepwell's durability mode.
The wall time covers the workflow call (``DBOS.launch()`` is before it); the persisted
step count is the number of ``operation_outputs`` rows read back from the database.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import sys
import time
from pathlib import Path

from dbos import DBOS

WORKLOADS = ("chain", "fanout")


@DBOS.step()
def bump(n: int) -> int:
    """The trivial step: n + 1."""
    return n + 1


@DBOS.step()
async def bump_async(n: int) -> int:
    """The trivial step as a coroutine, so a workflow can run many at once."""
    return n + 1


@DBOS.workflow()
def chain(steps: int) -> int:
    """W1: ``steps`` steps in a line."""
    n = 0
    for _ in range(steps):
        n = bump(n)
    return n


@DBOS.workflow()
async def fanout(steps: int) -> list[int]:
    """W2: one step, then ``steps - 1`` independent steps started together."""
    n = await bump_async(-1)
    return list(await asyncio.gather(*(bump_async(n) for _ in range(steps - 1))))


def _launch(db: Path) -> None:
    logging.getLogger("dbos").setLevel(logging.WARNING)
    DBOS(config={"name": "stepwell-bench", "system_database_url": f"sqlite:///{db}",
                 "log_level": "WARNING"})
    DBOS.launch()


def run(workload: str, steps: int, db: Path, durability: str) -> tuple[float, int]:
    """One run of ``workload`` in a fresh system database ``db``.

    ``durability`` is accepted for symmetry with the other peers; DBOS's SQLite
    settings are not configurable through its config.

    Returns:
        (wall seconds of the workflow call, persisted steps read back from ``db``).

    Raises:
        SystemExit: the result or the persisted step count is not what the workload
            promises.
    """
    _launch(db)
    try:
        begin = time.perf_counter()
        if workload == "chain":
            result: object = chain(steps)
            expected: object = steps
        else:
            result = asyncio.run(fanout(steps))
            expected = [1] * (steps - 1)
        wall = time.perf_counter() - begin
    finally:
        DBOS.destroy()
    if result != expected:
        raise SystemExit(f"dbos {workload}: unexpected result {str(result)[:200]}")
    with sqlite3.connect(db) as conn:
        written = conn.execute("SELECT count(*) FROM operation_outputs").fetchone()[0]
    conn.close()
    return wall, written


def cold(db: Path) -> None:
    """W4: launch DBOS on ``db``, run a one-step workflow, shut down."""
    _launch(db)
    try:
        chain(1)
    finally:
        DBOS.destroy()


if __name__ == "__main__":
    cold(Path(sys.argv[1]))
