"""Step logs in a store: what each attempt of a step wrote, in the order it wrote it.

A step's entries are numbered from 1 across its attempts (``seq``, the cursor of log
pages), so appending never rewrites: entries of attempt 1 follow those of attempt 0.
:func:`append_sqlite` and :func:`page_sqlite` are the SQL side (table ``step_logs``,
:class:`store.models.StepLogRow`; SQLite and PostgreSQL, through :class:`SQLLogWrites`
and :class:`store.sqlite_reads.SQLiteReads`); :class:`MemoryLogs` is the same in dicts
for :class:`store.memory.MemoryStore`.
Both return :class:`~engine.contracts.logs.LogRecord` pages with the same semantics, which
``tests/store/test_contract_logs.py`` checks through the store protocols.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from engine.contracts.errors import NotFoundError, UsageError
from engine.contracts.logs import AttemptLog, LogRecord, LogStream

if TYPE_CHECKING:  # the read shapes are imported by the reads that build them
    from engine.contracts.reads import RecordPage

_COLUMNS = "run_id, step_id, attempt, seq, stream, message, at, level, logger, truncated"
#: An entry's ``seq``: one more than its step's last, computed by the insert itself, so
#: nothing is read back and the insert can go in a pipelined transaction (PostgreSQL)
#: with the step batch.
_NEXT_SEQ = "(SELECT coalesce(max(seq), 0) + 1 FROM step_logs WHERE run_id = ? AND step_id = ?)"
_INSERT_NEXT = f"INSERT INTO step_logs ({_COLUMNS}) VALUES (?, ?, ?, {_NEXT_SEQ}, ?, ?, ?, ?, ?, ?)"
#: A plain line (no ``logging`` level or logger, not cut: what ``print`` writes), its
#: NULLs and FALSE spelled in SQL: binding None or a bool costs ``sqlite3`` a failed
#: adapter lookup each, a third of the insert.
_INSERT_PLAIN = ("INSERT INTO step_logs (run_id, step_id, attempt, seq, stream, message, at, "
                 f"truncated) VALUES (?, ?, ?, {_NEXT_SEQ}, ?, ?, ?, FALSE)")
#: Stream names as plain strings (a ``LogStream`` member costs an adapter lookup too).
_STREAMS: dict[str, str] = {stream: stream.value for stream in LogStream}
#: Largest page of log entries.
MAX_PAGE = 1000


def check_log_page(limit: int, after: int | None) -> None:
    """Validate the paging arguments of a log query.

    Raises:
        UsageError: ``limit`` outside 1..1000, or a negative cursor.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise UsageError(f"limit must be between 1 and {MAX_PAGE} (got {limit}).")
    if after is not None and after < 0:
        raise UsageError(f"after must be a log entry's seq, 0 or more (got {after}).")


def numbered(run_id: str, logs: Sequence[AttemptLog], last: dict[str, int]
             ) -> list[LogRecord]:
    """The records of ``logs``, each step's entries numbered on from ``last[step_id]``
    (updated in place)."""
    records: list[LogRecord] = []
    for attempt in logs:
        seq = last[attempt.step_id]
        for entry in attempt.entries:
            seq += 1
            records.append(LogRecord(run_id=run_id, step_id=attempt.step_id,
                                     attempt=attempt.attempt, seq=seq, stream=entry.stream,
                                     message=entry.message, at=entry.at, level=entry.level,
                                     logger=entry.logger, truncated=entry.truncated))
        last[attempt.step_id] = seq
    return records


def insert_logs(conn: Any, run_id: str, logs: Sequence[AttemptLog]) -> None:
    """Insert ``logs`` after each step's existing entries, in order, inside the caller's
    transaction (the run is not checked; no result is read).

    Each entry's ``seq`` is one more than its step's last, computed by its insert, and
    entries are inserted in order (runs of one statement shape as one executemany), so
    a step's lines number on across attempts and batches.
    """
    batches: list[tuple[str, list[tuple[Any, ...]]]] = []
    plain = _INSERT_PLAIN
    for log in logs:
        step_id, attempt = log.step_id, log.attempt
        for e in log.entries:
            stream = _STREAMS.get(e.stream, e.stream)
            if e.level is None and e.logger is None and not e.truncated:
                sql = plain
                row: tuple[Any, ...] = (run_id, step_id, attempt, run_id, step_id, stream,
                                        e.message, e.at)
            else:
                sql = _INSERT_NEXT
                row = (run_id, step_id, attempt, run_id, step_id, stream, e.message, e.at,
                       e.level, e.logger, e.truncated)
            if batches and batches[-1][0] is sql:
                batches[-1][1].append(row)
            else:
                batches.append((sql, [row]))
    for sql, rows in batches:
        conn.executemany(sql, rows)


def append_sqlite(conn: Any, run_id: str, logs: Sequence[AttemptLog]) -> None:
    """Insert ``logs`` after each step's existing entries (inside the caller's
    transaction).

    Raises:
        NotFoundError: the run does not exist.
    """
    if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
        raise NotFoundError("run", run_id)
    insert_logs(conn, run_id, logs)


def page_sqlite(conn: Any, run_id: str, step_id: str, *, attempt: int | None,
                after: int | None, limit: int) -> RecordPage[LogRecord]:
    """One page of a step's entries in order, after ``seq`` ``after`` (the run is
    already known to be visible).

    Raises:
        NotFoundError: the run has no such step.
    """
    from engine.contracts.reads import RecordPage, step_not_found

    if conn.execute("SELECT 1 FROM steps WHERE step_id = ? AND run_id = ?",
                    (step_id, run_id)).fetchone() is None:
        raise step_not_found(step_id)
    sql = f"SELECT {_COLUMNS} FROM step_logs WHERE run_id = ? AND step_id = ? AND seq > ?"
    params: list[object] = [run_id, step_id, after or 0]
    if attempt is not None:
        sql += " AND attempt = ?"
        params.append(attempt)
    rows = conn.execute(sql + " ORDER BY seq LIMIT ?", (*params, limit + 1)).fetchall()
    records = [LogRecord(run_id=r[0], step_id=r[1], attempt=r[2], seq=r[3], stream=r[4],
                         message=r[5], at=r[6], level=r[7], logger=r[8],
                         truncated=bool(r[9])) for r in rows[:limit]]
    return RecordPage(items=records, more_before=bool(after), more_after=len(rows) > limit)


class SQLLogWrites:
    """``append_logs`` for the SQLite and PostgreSQL stores (``self.db``: a database with
    ``lock``, ``guard`` and ``write``)."""

    db: Any

    def append_logs(self, run_id: str, logs: Sequence[AttemptLog], *, now: float) -> None:
        """Store what attempts wrote, after each step's earlier entries (committed).

        Raises:
            NotFoundError: no such run.
            StorageError: the storage failed; nothing was written.
        """
        if not logs:
            return
        db = self.db
        with db.lock, db.guard(f"writing the logs of run {run_id}"):
            db.write(append_sqlite, run_id, logs)


class MemoryLogs:
    """Step logs in dicts (what :class:`store.memory.MemoryStore` keeps)."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], list[LogRecord]] = {}
        self._lock = threading.Lock()

    def append(self, run_id: str, logs: Sequence[AttemptLog]) -> None:
        """Add ``logs`` after each step's existing entries."""
        with self._lock:
            last = {a.step_id: len(self._entries.get((run_id, a.step_id), ())) for a in logs}
            for record in numbered(run_id, logs, last):
                self._entries.setdefault((run_id, record.step_id), []).append(record)

    def forget(self, run_id: str) -> None:
        """Drop every entry of ``run_id`` (the run was deleted)."""
        with self._lock:
            for key in [k for k in self._entries if k[0] == run_id]:
                del self._entries[key]

    def by_logger(self, run_ids: Collection[str], logger: str) -> list[LogRecord]:
        """The entries of ``logger`` among the steps of ``run_ids``, each step's in order."""
        with self._lock:
            return [r for (run_id, _), records in self._entries.items() if run_id in run_ids
                    for r in records if r.logger == logger]

    @property
    def size(self) -> int:
        """How many entries are kept."""
        with self._lock:
            return sum(len(records) for records in self._entries.values())

    def page(self, run_id: str, step_id: str, *, attempt: int | None, after: int | None,
             limit: int) -> RecordPage[LogRecord]:
        """One page of a step's entries in order, after ``seq`` ``after``."""
        from engine.contracts.reads import RecordPage

        with self._lock:
            found = [r for r in self._entries.get((run_id, step_id), ())
                     if r.seq > (after or 0) and (attempt is None or r.attempt == attempt)]
        return RecordPage(items=found[:limit], more_before=bool(after),
                          more_after=len(found) > limit)
