"""What a workload's SQL costs on its own: ``python -m bench.sqlreplay WORKLOAD [STEPS]``.

Runs the workload once while recording every transaction the store commits (each
statement with its parameters, in order), then replays those transactions on a new,
laid-out database file with the store's own connection settings, without the engine:
the same ``BEGIN IMMEDIATE``, statements and ``COMMIT``, nothing between them. The
replay's time per persisted step is what SQLite (and the ``sqlite3`` module's binding)
costs the workload; the rest of ``python -m bench``'s per-step time is Python. The
floor (one committed insert per row) is measured in the same invocation, so the "SQL x
floor" column says how far the statements themselves are from it.

Two more columns split the SQL's time. "in memory" replays the same transactions on an
in-memory database with the same layout and settings: what SQLite's own work and the
``sqlite3`` module's binding cost, without the file system (the file replay's time
beyond it is the writes to the WAL and their locks). "WAL pages/commit" is the pages a
commit appends to the WAL, counted on one more replay with automatic checkpoints off
(the floor's commit appends one): how much a step's commit writes, whatever the
machine's clock says. ``--pages`` says which b-trees those pages belong to (the steps
table's leaves, an index's, the header page that every commit growing the file
rewrites...), per commit.

Recording swaps :meth:`store.connection.Database.write` for the duration of the
recorded run only; the replay uses no stepwell code but the connection settings and the
background WAL checkpointer the store runs (:mod:`store.checkpoint`).
"""

from __future__ import annotations

import gc
import sqlite3
import statistics
import struct
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: One committed transaction: its statements as ("one" | "many", sql, parameters).
Transaction = list[tuple[str, str, Any]]


class _Recorder:
    """The connection ``fn`` sees during a recorded write: statements run and are noted."""

    def __init__(self, conn: Any, into: Transaction) -> None:
        self._conn = conn
        self._into = into

    def execute(self, sql: str, params: Any = ()) -> Any:
        self._into.append(("one", sql, params))
        return self._conn.execute(sql, params)

    def executemany(self, sql: str, rows: Any) -> Any:
        rows = list(rows)
        self._into.append(("many", sql, rows))
        return self._conn.executemany(sql, rows)

    def cursor(self) -> _Recorder:
        """Statements run on a cursor are noted too."""
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@contextmanager
def recording(log: list[Transaction]) -> Iterator[None]:
    """Append every transaction written through a SQLite store's ``Database.write`` to
    ``log`` while the block runs (committed ones only: a rolled-back attempt is dropped)."""
    from store.connection import Database

    original = Database.write

    def write(self: Database, fn: Callable[..., Any], *args: Any) -> Any:
        tx: Transaction = []

        def recorded(conn: Any, *rest: Any) -> Any:
            del tx[:]  # a retried transaction keeps its last attempt only
            return fn(_Recorder(conn, tx), *rest)

        result = original(self, recorded, *args)
        log.append(tx)
        return result

    Database.write = write  # type: ignore[method-assign]
    try:
        yield
    finally:
        Database.write = original  # type: ignore[method-assign]


def replay(log: list[Transaction], path: Path) -> float:
    """Seconds to commit ``log`` again on a new laid-out database at ``path``."""
    from store.checkpoint import Checkpointer

    conn = _new_database(path)
    checkpointer = Checkpointer(str(path))  # as the store: checkpoints off the commits
    try:
        return _run_log(conn, log, checkpointer.committed)
    finally:
        checkpointer.stop()
        conn.close()


def _new_database(path: Path) -> Any:
    """A connection with the store's settings to a new database at ``path`` that holds
    the layout, as a run's database starts."""
    from store.connection import connect
    from store.sqlite import SQLiteStore

    SQLiteStore(path).close()
    return connect(str(path), 30.0, "NORMAL", in_memory=False)


def _run_log(conn: Any, log: list[Transaction], each: Callable[[], None] | None = None
             ) -> float:
    """Seconds to commit every transaction of ``log`` on ``conn`` (``each`` after every
    commit)."""
    gc.collect()
    start = time.perf_counter()
    for tx in log:
        conn.execute("BEGIN IMMEDIATE")
        for kind, sql, params in tx:
            if kind == "one":
                conn.execute(sql, params)
            else:
                conn.executemany(sql, params)
        conn.execute("COMMIT")
        if each is not None:
            each()
    return time.perf_counter() - start


def replay_in_memory(log: list[Transaction]) -> float:
    """Seconds to commit ``log`` on a new in-memory database with the store's layout and
    connection settings: the SQL's cost without the file system."""
    from store.connection import open_database

    db = open_database(":memory:")
    try:
        return _run_log(db.conn, log)
    finally:
        db.conn.close()


def wal_pages(log: list[Transaction], path: Path) -> int:
    """Pages that committing ``log`` appends to the WAL of a new database at ``path``
    (no checkpoint runs meanwhile, so the WAL holds every one)."""
    conn = _new_database(path)
    try:
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        _run_log(conn, log)
        # PASSIVE answers (busy, frames in the WAL, frames copied): the WAL was never
        # reset, so its frames are every page the log's commits wrote
        return int(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
    finally:
        conn.close()


def pages_by_tree(log: list[Transaction], path: Path) -> dict[str, float]:
    """WAL pages a commit of ``log`` appends, on average, per b-tree and page kind
    (``steps leaf``, ``ux_steps_step_run internal``...; page 1, the header every commit
    that grows the file rewrites, is ``header``): what :func:`wal_pages` counts, said
    where. Replayed on a new database at ``path`` with automatic checkpoints off; each
    commit's frames are read from the WAL file as it is written.

    Raises:
        SystemExit: this SQLite has no ``dbstat`` table to name pages with.
    """
    conn = _new_database(path)
    try:
        try:
            conn.execute("SELECT pageno FROM dbstat LIMIT 1").fetchall()
        except sqlite3.OperationalError as exc:
            raise SystemExit(f"--pages needs SQLite's dbstat table ({exc}); use a SQLite "
                             "built with SQLITE_ENABLE_DBSTAT_VTAB") from exc
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()  # frames from 32 on
        wal = Path(f"{path}-wal")
        frame = 24 + conn.execute("PRAGMA page_size").fetchone()[0]
        offset = 32
        written: list[int] = []

        def read_frames() -> None:  # the page number opens each frame header
            nonlocal offset
            with wal.open("rb") as f:
                f.seek(offset)
                data = f.read()
            whole = len(data) // frame * frame
            written.extend(struct.unpack_from(">I", data, at)[0]
                           for at in range(0, whole, frame))
            offset += whole

        _run_log(conn, log, read_frames)
        trees = {page: f"{name} {kind}" for page, name, kind in
                 conn.execute("SELECT pageno, name, pagetype FROM dbstat")}
    finally:
        conn.close()
    trees[1] = "header"
    counts = Counter(trees.get(page, "other") for page in written)
    commits = max(1, len(log))
    return {key: count / commits for key, count in counts.most_common()}


@dataclass
class Split:
    """A workload's SQL, replayed: per persisted step, and against the floor."""

    workload: str
    steps: int
    commits: int
    statements: int
    sql_us: float
    floor_us: float
    replays_us: list[float] = field(default_factory=list)
    #: The same transactions on an in-memory database (median): SQLite without the disk.
    memory_us: float = 0.0
    #: Pages the transactions appended to the WAL, over the commits.
    wal_pages: int = 0
    #: Those pages per commit by b-tree (:func:`pages_by_tree`), when asked for.
    trees: dict[str, float] = field(default_factory=dict)

    @property
    def pages_per_commit(self) -> float:
        """WAL pages a commit writes, on average (the floor's writes one)."""
        return self.wal_pages / self.commits if self.commits else 0.0

    @property
    def x_floor(self) -> float:
        """The replayed SQL per step over the floor's committed row."""
        return self.sql_us / self.floor_us


def sql_split(workload: str, steps: int | None = None, repeat: int = 5,
              trees: bool = False) -> Split:
    """Record one run of ``workload`` and replay its SQL ``repeat`` times (median);
    with ``trees``, also say which b-trees the WAL pages belong to.

    Raises:
        SystemExit: the recorded run failed.
    """
    from bench.floor import durability_floor
    from bench.workloads import STEPS, WORKLOADS
    from engine.core import Engine

    with tempfile.TemporaryDirectory(prefix="stepwell-sqlreplay-") as tmp:
        folder = Path(tmp)
        workflow, inputs, count = WORKLOADS[workload](steps or STEPS[workload])
        with Engine(folder / "warm.db") as engine:  # imports and the compiled graph
            engine.run(workflow, inputs)
        log: list[Transaction] = []
        with recording(log), Engine(folder / "recorded.db") as engine:
            result = engine.run(workflow, inputs)
        if not result.ok:
            raise SystemExit(f"{workload} run failed: {result.error}")
        times = [replay(log, folder / f"replay-{i}.db") / count * 1e6 for i in range(repeat)]
        memory = [replay_in_memory(log) / count * 1e6 for _ in range(repeat)]
        pages = wal_pages(log, folder / "pages.db")
        by_tree = pages_by_tree(log, folder / "trees.db") if trees else {}
        floor = durability_floor(folder / "floor.db") * 1e6
    return Split(workload=workload, steps=count, commits=len(log),
                 statements=sum(len(tx) for tx in log), sql_us=statistics.median(times),
                 floor_us=floor, replays_us=times, memory_us=statistics.median(memory),
                 wal_pages=pages, trees=by_tree)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, record, replay, print one line per workload."""
    from bench.workloads import workload_args, workload_parser

    parser = workload_parser("python -m bench.sqlreplay", __doc__.split("\n\n")[0],
                             "steps per workload (default: each workload's own size)",
                             repeat=5, repeat_help="replays (median)")
    parser.add_argument("--pages", action="store_true",
                        help="also print a commit's WAL pages by b-tree (table or index, "
                             "leaf or internal page)")
    args, names = workload_args(parser, argv)
    print(f"{'workload':<14} {'steps':>6} {'commits':>7} {'statements':>10} "
          f"{'SQL us/step':>11} {'floor us':>8} {'SQL x floor':>11} "
          f"{'in memory us/step':>17} {'WAL pages/commit':>16}")
    for name in names:
        split = sql_split(name, args.steps, args.repeat, trees=args.pages)
        print(f"{split.workload:<14} {split.steps:>6,} {split.commits:>7,} "
              f"{split.statements:>10,} {split.sql_us:>11.1f} {split.floor_us:>8.1f} "
              f"{split.x_floor:>11.2f} {split.memory_us:>17.1f} "
              f"{split.pages_per_commit:>16.2f}")
        shown = {tree: n for tree, n in split.trees.items() if n >= 0.005}
        for tree, per_commit in shown.items():
            print(f"  {tree:<40} {per_commit:>6.2f} pages/commit")
        if len(shown) < len(split.trees):
            print(f"  ({len(split.trees) - len(shown)} more b-trees under 0.005 pages/commit)")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
