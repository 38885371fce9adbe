"""Planning and writing a batch of step events: the store's hot path.

:meth:`store.sqlite.SQLiteStore.apply` hands a batch of
:class:`~engine.contracts.events.StepEvent` to :class:`StepWriter` in two phases:

1. **Plan** (no I/O but large-payload blobs). Events are folded per step: a ``pending``
   event creates a row, later events change columns; each event is also appended to
   the row's ``trail`` (the audit trail, read through the ``transitions`` view). Every
   move is checked against the lifecycle table
   (:func:`engine.contracts.values.check_move`) using an in-memory ``step_id -> status``
   map per run, seeded from the database on first use; the store drops ended steps from
   it (no move leaves them) and asks the database again before it reports a move of a
   step the map does not hold. An illegal move raises
   :class:`~engine.contracts.errors.IllegalTransition` before anything is written.
2. **Write** in one transaction. New rows are inserted with the ``seq`` SQLite would
   give them, counted on from the table's highest (the transaction holds the write lock,
   and new rows are inserted in order); the store keeps each live step's ``seq``, and an
   update finds its row by it (a rowid lookup rather than a search of the
   ``(step_id, run_id)`` index), checking run, step and the status the plan started from
   (``WHERE seq = ? AND run_id = ? AND step_id = ? AND status = ?``). If another process
   moved, created or deleted a step meanwhile the row counts disagree
   (:class:`StaleStatuses`), the transaction rolls back, the maps are reloaded and the
   batch is planned again.

A step entering ``awaiting_review`` opens its review row (:mod:`store.reviews`) in the
same transaction.

An artifact is written into its step's row (``artifact``, ``artifact_at``) by the
statement that creates or moves the step, under an id that holds the row's ``seq``
(:func:`store.stepdata.in_row_id`; PostgreSQL's statements make the same id in SQL;
:func:`store.stepdata.locate_artifact` reads it back).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from engine.contracts.errors import IllegalTransition, NotFoundError
from engine.contracts.events import RunUpdate, StepEvent
from engine.contracts.values import LEGAL_MOVES, RunStatus, StepStatus, check_move
from store.codec import dumps, encode, encode_inputs, encode_map, encode_value
from store.reviews import open_review
from store.step_logs import insert_logs
from store.stepdata import (
    artifact_stub,
    error_json,
    in_row_id,
    review_data,
    stored_artifact,
    trail_entry,
)

if TYPE_CHECKING:
    from engine.contracts.logs import AttemptLog
    from store.files import LocalFileStore

_S = StepStatus
#: The statuses the plan compares with, as module constants: reading a member off its
#: class (``StepStatus.PENDING``) goes through the enum's descriptor, 80 ns each, and
#: a step's plan makes about fifteen such comparisons.
_PENDING, _QUEUED, _RUNNING, _AWAITING_REVIEW = (
    _S.PENDING, _S.QUEUED, _S.RUNNING, _S.AWAITING_REVIEW)
# Plain strings to bind: reading ``StepStatus.X.value`` costs an enum descriptor call.
_TEXT: dict[StepStatus, str] = {status: status.value for status in StepStatus}
_TERMINAL = frozenset({_S.COMPLETED, _S.SKIPPED, _S.ERROR, _S.CANCELLED})
#: Each status's legal next ones; :func:`check_move` is called only to raise.
_LEGAL = LEGAL_MOVES
#: A transition's text up to its time stamp (``["queued"``), per status
#: (:func:`store.stepdata.trail_entry` writes the rest).
_TRAIL_HEAD: dict[StepStatus, str] = {status: f'["{status.value}"' for status in StepStatus}
#: A transition that is its status alone (``["queued"]``): most of them (layout 8).
_TRAIL_ALONE: dict[StepStatus, str] = {status: f'{head}]' for status, head in _TRAIL_HEAD.items()}
#: What a row created before its step ends holds in ``reserve`` until the step's next
#: move clears it: zero bytes for what its outputs, artifact and transitions will add.
#: Rows created ``pending`` together fill their page; a row that grows in a full page
#: makes SQLite rebalance it with its neighbours (about one more page per commit). The
#: room freed by the first move stays in the page for the row to grow into.
RESERVE = bytes(192)
#: What a top-level step created ``pending`` keeps instead: it waits for its inputs,
#: often while many other commits go by, then grows by its inputs, outputs, artifact
#: and transitions in commits of its own, each one rewriting its page. With 192 bytes a
#: chain's commit wrote 1.66 WAL pages, with 288 1.24, and the database was no bigger
#: (``python -m bench.sqlreplay``). A loop's iteration creates its rows just before it
#: runs them and rewrites their page in the same few commits anyway: more room there
#: only spreads the rows over more pages (a for_each wrote 7% more), so they keep
#: :data:`RESERVE`.
RESERVE_AHEAD = bytes(288)
#: The sizes bound for ``reserve``: an insert writes it as ``zeroblob(?)``. Binding
#: ``bytes`` goes through the ``sqlite3`` module's adapter lookup (an exception built and
#: dropped per row: 0.8 us of every new row); an int is bound directly.
_RESERVE_SIZE, _RESERVE_AHEAD_SIZE = len(RESERVE), len(RESERVE_AHEAD)
#: A transition's time, in :meth:`StepWriter.plan`, that the trail must keep itself
#: (the batch's time stamp; see :func:`store.stepdata.trail_entry`).
_STAMPED = "stamped"
#: The ``scope`` column of a top-level step (no loop frames).
_TOP_SCOPE = "[]"

# --------------------------------------------------------------------------- SQL

_STEP_COLUMNS = (
    "run_id, step_id, block_id, block_type, label, status, scope, retry_count, "
    "inputs, outputs, error, reason, artifact_id, artifact_operation, model, tokens, "
    "cost, trace_spans, control, created_at, queued_at, started_at, completed_at, "
    "updated_at, duration_ms, trail"
)
INSERT_STEP = (
    f"INSERT INTO steps ({_STEP_COLUMNS}) VALUES ({', '.join('?' * 26)})"
)
#: The highest ``seq`` in use: new rows count on from it (see write()).
_LAST_SEQ = "SELECT max(seq) FROM steps"
INSERT_RUN = """
INSERT INTO runs (id, workflow_id, workflow_name, workflow_digest, definition_id, inputs,
  metadata, organization_id, "trigger", status, owner_pid, owner_host, heartbeat_at,
  cancel_requested, parent_run_id, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, 0, ?, ?, ?)
"""
INSERT_DEFINITION = (
    "INSERT OR IGNORE INTO definitions (id, definition, created_at) VALUES (?, ?, ?)"
)
_UPDATE_RUN = """
UPDATE runs SET status = ?1, updated_at = ?2,
  started_at = CASE WHEN ?1 = 'running' THEN COALESCE(started_at, ?2) ELSE started_at END,
  completed_at = ?3, failing_step_id = ?4, error = ?5, reason = ?6, waiting_for = ?7,
  outputs = COALESCE(?8, outputs)
WHERE id = ?9
"""


@dataclass(slots=True)
class StepChange:
    """What one batch does to one step.

    ``before`` is the status the batch started from, None for a step created in it.
    ``cols`` is then either the full INSERT row (``_STEP_COLUMNS`` order, then
    ``artifact``, ``artifact_at``, the size of ``reserve`` and ``seq``) or the update values 0-18
    (status, retry count, updated, queued, started and completed times, ``inputs`` to
    ``control``, then ``artifact`` and ``artifact_at``: see ``_update_shape``); in both,
    the optional columns from ``inputs`` to ``control`` sit in the same order (see
    ``_fold_fields``). ``trail`` collects the batch's transitions as JSON array texts.
    ``set`` has bit ``i`` set for each position ``i`` of ``cols`` the batch gave a value
    (an update's statement shape, without looking at every position again).
    """

    step_id: str
    before: StepStatus | None
    status: StepStatus
    cols: list[Any]
    trail: list[str] = field(default_factory=list)
    set: int = 0


@dataclass(slots=True)
class Plan:
    changes: dict[str, StepChange] = field(default_factory=dict)
    reviews: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)


#: Positions a move sets, in an INSERT row (a step created in the batch) and in the
#: update values (see :class:`StepChange`): status, retry count, updated, queued,
#: started and completed times, then where the optional columns and the artifact start.
_ROW_AT = (5, 7, 23, 20, 21, 22, 8, 26)
_UPDATE_AT = (0, 1, 2, 3, 4, 5, 6, 17)


class StaleStatuses(Exception):
    """The in-memory status map disagreed with the database; reload and plan again."""


class StepPlanner:
    """Plans batches of step events (large payloads go to ``files``): what every store
    that writes rows shares; :class:`StepWriter` writes the plans to SQLite,
    :class:`store.pg.writes.PgStepWriter` to PostgreSQL."""

    __slots__ = ("files",)

    def __init__(self, files: LocalFileStore) -> None:
        self.files = files

    def plan(
        self, run_id: str, events: Sequence[StepEvent], known: Mapping[str, StepStatus],
        now: float,
    ) -> Plan:
        """Fold ``events`` into one plan, checking every move against ``known``."""
        plan = Plan()
        changes = plan.changes
        # the trail's time stamp of this batch, where the row's columns do not hold it;
        # a float, as those columns read back, so the times a step's transitions keep
        # and those the view reads from its columns look alike (even for an int ``now``).
        # Made when a transition first needs it: most batches have none that does.
        stamp: str | None = None
        fold_fields = self._fold_fields
        # the steps a scope opens are created together, sharing its frames: encode once
        frames: tuple[Any, ...] = ()
        frames_text = _TOP_SCOPE
        for ev in events:
            sid = ev.step_id
            status = ev.status
            change = changes.get(sid)
            current = known.get(sid) if change is None else change.status
            if status is _PENDING:
                if current is not None:
                    raise IllegalTransition(sid, current.value, "pending")
                if ev.scope is not frames:
                    frames = ev.scope
                    frames_text = encode([f.to_dict() for f in frames]) if frames else _TOP_SCOPE
                change = changes[sid] = _new_row(run_id, ev, now, frames_text)
                # a new row holds its status, retry count and times already
                detail = fold_fields(run_id, ev, now, change, 8, 26)
                at = None  # created_at
            else:
                if current is None:
                    raise IllegalTransition(sid, "not created", status.value)
                if status not in _LEGAL[current]:
                    check_move(sid, current, status)  # raises
                if change is None:
                    change = changes[sid] = StepChange(sid, current, status, [None] * 19, [])
                else:
                    change.status = status
                cols = change.cols
                before = change.before
                created = before is None  # in this batch: cols is the INSERT row
                at_status, at_retry, at_updated, at_queued, at_started, at_done, base, art = (
                    _ROW_AT if created else _UPDATE_AT)
                cols[at_status], cols[at_retry], cols[at_updated] = (
                    _TEXT[status], ev.retry_count, now)
                # The row's queued_at / started_at hold this move's time when it is the
                # step's first queue / start: the step was pending when the batch began
                # (nothing moves back to pending) and the batch has not set them yet.
                at = _STAMPED
                if status is _QUEUED:
                    if cols[at_queued] is None:
                        cols[at_queued] = now
                        change.set |= 1 << at_queued
                        if created or before is _PENDING:
                            at = None
                elif status is _RUNNING:
                    if cols[at_started] is None:
                        cols[at_started] = now
                        change.set |= 1 << at_started
                        if created or before is _PENDING:
                            at = None
                elif status in _TERMINAL:  # no move leaves it: completed_at stays now
                    cols[at_done] = now
                    change.set |= 1 << at_done
                    at = None
                    if created:  # an UPDATE computes the duration in SQL
                        start = cols[at_started]
                        cols[24] = None if start is None else round((now - start) * 1000)
                detail = fold_fields(run_id, ev, now, change, base, art)
                if status is _AWAITING_REVIEW:
                    plan.reviews.append((sid, ev.block_id, review_data(ev)))
            retry = ev.retry_count
            if at is None and detail is None and not retry:
                change.trail.append(_TRAIL_ALONE[status])
                continue
            if at is _STAMPED:
                if stamp is None:
                    stamp = repr(float(now))
                at = stamp
            change.trail.append(trail_entry(_TRAIL_HEAD[status], at, retry, detail))
        return plan

    def _fold_fields(
        self, run_id: str, ev: StepEvent, now: float, change: StepChange, base: int, art: int
    ) -> str | None:
        """Set the optional columns of ``change.cols``, laid out identically from ``base``
        in both rows: inputs, outputs, error, reason, artifact_id, artifact_operation,
        model, tokens, cost, trace_spans, control; ``artifact`` and ``artifact_at`` sit at
        ``art``. Each position set is marked in ``change.set``.

        Returns the transition's ``detail`` JSON (None without error or reason).
        """
        files = self.files
        cols = change.cols
        set_ = 0
        if ev.inputs is not None:
            cols[base] = encode_inputs(ev.inputs, ev.step_id, files)
            set_ = 1 << base
        if ev.outputs is not None:
            outputs = {h: p.to_dict() for h, p in ev.outputs.items()}
            cols[base + 1] = encode_map(outputs, "outputs", ev.step_id, files)
            set_ |= 1 << (base + 1)
        if ev.artifact is not None:  # the id's stub: the statement completes it (write())
            stub, operation = artifact_stub(run_id, ev)
            cols[base + 4], cols[base + 5] = stub, operation
            cols[art] = stored_artifact(
                encode_value(ev.artifact, "artifact", ev.step_id, files), operation)
            cols[art + 1] = now
            set_ |= 1 << (base + 4) | 1 << (base + 5) | 1 << art | 1 << (art + 1)
        if ev.model is not None:
            cols[base + 6] = ev.model
            set_ |= 1 << (base + 6)
        if ev.tokens is not None:
            cols[base + 7] = encode_value(ev.tokens, "tokens", ev.step_id, files)
            set_ |= 1 << (base + 7)
        if ev.cost is not None:
            cols[base + 8] = encode_value(ev.cost, "cost", ev.step_id, files)
            set_ |= 1 << (base + 8)
        if ev.trace_spans is not None:
            cols[base + 9] = encode_value(ev.trace_spans, "trace_spans", ev.step_id, files)
            set_ |= 1 << (base + 9)
        if ev.control is not None:
            cols[base + 10] = encode_value(ev.control, "control", ev.step_id, files)
            set_ |= 1 << (base + 10)
        reason = ev.reason
        if ev.error is None:
            if set_:
                change.set |= set_
            if reason is None:
                return None
            cols[base + 3] = reason
            change.set |= 1 << (base + 3)
            return encode({"reason": reason})
        error = dumps(error_json(ev.error, ev.block_id, ev.label), "error", ev.step_id)
        cols[base + 2] = error
        change.set |= set_ | 1 << (base + 2)
        if reason is None:
            return '{"error":' + error + "}"
        cols[base + 3] = reason
        change.set |= 1 << (base + 3)
        return '{"error":' + error + ',"reason":' + encode(reason) + "}"


class StepWriter(StepPlanner):
    """Plans batches of step events and writes the plans to SQLite."""

    __slots__ = ()

    def write(
        self, conn: sqlite3.Connection, run_id: str, plan: Plan,
        run_update: RunUpdate | None, now: float, logs: Sequence[AttemptLog] = (),
        seqs: Mapping[str, int] | None = None,
    ) -> list[tuple[str, int]]:
        """Write ``logs`` (what attempts wrote), ``plan`` and ``run_update`` on ``conn``,
        inside the caller's transaction. What it sets in ``plan``'s rows it sets
        alike every time, so a transaction retried after ``SQLITE_BUSY`` writes the same.

        Args:
            seqs: the ``seq`` of steps the plan moves, by step id (the store keeps them:
                a row is updated by its rowid); a step missing from it is looked up.

        Returns:
            The step id and ``seq`` of every row the plan creates, in order.

        Raises:
            StaleStatuses: a step was moved, created or deleted by another process since
                it was planned.
        """
        if logs:
            insert_logs(conn, run_id, logs)
        cur = conn.cursor()  # for every statement below (conn.execute makes one each)
        # New rows go first, in their creation order (see _insert_rows), each with the
        # seq SQLite would give it; updates are sent after them. Consecutive updates of
        # one statement go as one executemany.
        last = -1  # the table's highest seq, read at the first new row
        shapes: list[tuple[str, itemgetter[Any], str]] = []
        inserted: list[tuple[Any, ...]] = []
        created: list[tuple[str, int]] = []
        updates: list[tuple[str, list[tuple[Any, ...]]]] = []
        count = 0
        for c in plan.changes.values():
            cols = c.cols
            if c.before is None:
                if last < 0:
                    last = cur.execute(_LAST_SEQ).fetchone()[0] or 0
                seq = last + len(inserted) + 1
                created.append((c.step_id, seq))
                cols[25] = ",".join(c.trail)
                cols[29] = seq
                filled = c.set | _SEQ_SET  # the optional columns holding a value
                if c.status not in _TERMINAL:  # cols[6]: the scope
                    cols[28] = (_RESERVE_AHEAD_SIZE if c.status is _PENDING
                                and cols[6] == _TOP_SCOPE else _RESERVE_SIZE)
                    filled |= _RESERVE_SET
                if cols[24] is not None:  # the duration of a step created ended
                    filled |= _DURATION_SET
                if cols[26] is not None:  # the id's stub (artifact_stub): seq put in
                    cols = cols.copy()  # the plan keeps the stub
                    cols[12] = in_row_id(cols[12], seq)
                shape = _INSERTS.get(filled)
                if shape is None:
                    shape = _INSERTS[filled] = _insert_shape(
                        tuple(bool(filled >> i & 1) for i in _INSERT_OPTIONAL))
                shapes.append(shape)
                inserted.append(shape[1](cols))
            else:
                step_id = c.step_id
                kept = None if seqs is None else seqs.get(step_id)
                seq = _seq_of(cur, run_id, step_id) if kept is None else kept
                if cols[_ARTIFACT_ID] is not None:  # the id's stub: seq put in
                    cols = cols.copy()
                    cols[_ARTIFACT_ID] = in_row_id(cols[_ARTIFACT_ID], seq)
                filled = c.set  # which of cols 3-18 hold a value (a bit each)
                update = _UPDATES.get(filled)
                if update is None:
                    update = _UPDATES[filled] = _update_shape(
                        tuple(bool(filled >> i & 1) for i in range(3, 19)))
                row = update[1](cols) + ("," + ",".join(c.trail), seq, run_id, step_id,
                                         _TEXT[c.before])
                if updates and updates[-1][0] is update[0]:
                    updates[-1][1].append(row)
                else:
                    updates.append((update[0], [row]))
                count += 1
        if inserted:
            _insert_rows(cur, shapes, inserted)
        moved = 0
        for sql, rows in updates:
            moved += cur.executemany(sql, rows).rowcount
        if moved != count:
            raise StaleStatuses
        for step_id, block_id, data in plan.reviews:
            open_review(conn, run_id, step_id, block_id, data, now)
        if run_update is not None:
            self._write_run_update(conn, run_id, run_update, now)
        return created

    def _write_run_update(
        self, conn: sqlite3.Connection, run_id: str, update: RunUpdate, now: float
    ) -> None:
        status = update.status
        error = None
        if update.error is not None:
            block_id, label = _step_identity(conn, run_id, update.failing_step_id)
            error = dumps(error_json(update.error, block_id, label), "error", run_id)
        waiting = update.waiting_for_block_ids if status is RunStatus.AWAITING_REVIEW else None
        outputs = (None if update.outputs is None
                   else encode_map(update.outputs, "outputs", run_id, self.files))
        params = (
            status.value, now, now if status.terminal else None, update.failing_step_id,
            error, update.reason, None if waiting is None else encode(waiting), outputs, run_id,
        )
        if conn.execute(_UPDATE_RUN, params).rowcount == 0:
            raise NotFoundError("run", run_id)


# --------------------------------------------------------------------------- statements
#
# A step row is written with the columns that have a value only: binding None costs
# the sqlite3 module a failed adapter lookup (an AttributeError built and dropped)
# per parameter, more than building the statement's text, which is cached per shape.

_COLUMN_NAMES = (*(name.strip() for name in _STEP_COLUMNS.split(",")),
                 "artifact", "artifact_at", "reserve", "seq")
#: INSERT row positions always bound: identity, status, scope, retry count, times, trail.
_INSERT_ALWAYS = (0, 1, 2, 3, 4, 5, 6, 7, 19, 23, 25)
#: The others (``seq`` last; every new row has one, given by :meth:`StepWriter.write`).
_INSERT_OPTIONAL = (8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 20, 21, 22, 24, 26, 27, 28, 29)
#: UPDATE parameter positions 6..18 (see StepChange) name these columns.
_UPDATE_FIELDS = (*_COLUMN_NAMES[8:19], *_COLUMN_NAMES[26:28])
#: The UPDATE position of ``artifact_id`` (set to its stub by the plan).
_ARTIFACT_ID = 6 + _UPDATE_FIELDS.index("artifact_id")
#: The bits of ``StepChange.set`` for the INSERT columns :meth:`StepWriter.write` fills:
#: ``seq``, ``reserve`` and ``duration_ms`` (the plan marks every other one it fills).
_SEQ_SET, _RESERVE_SET, _DURATION_SET = 1 << 29, 1 << 28, 1 << 24
#: The INSERT row position of ``reserve``.
_RESERVE_AT = _COLUMN_NAMES.index("reserve")
#: Statement shapes, keyed by which optional columns hold a value: bit ``i`` for column
#: position ``i`` (``StepChange.set``, which the plan fills as it sets the columns, and
#: for a new row what write() sets): the SQL, and a getter of its parameters (an
#: insert's shape also has its row as a ``VALUES`` term of :data:`_INSERT_ALL`).
_INSERTS: dict[int, tuple[str, itemgetter[Any], str]] = {}
_UPDATES: dict[int, tuple[str, itemgetter[Any]]] = {}
#: Every column of a new row, in the order an insert shape's getter gives its values.
_INSERT_ALL = ("INSERT INTO steps ("
               + ", ".join(_COLUMN_NAMES[i] for i in _INSERT_ALWAYS + _INSERT_OPTIONAL)
               + ") VALUES ")
#: Rows one multi-row insert carries at most (a chunk's text is one cached statement):
#: 32 rows bind at most 928 parameters, under the 999 of SQLite builds before 3.32.
INSERT_CHUNK = 32
#: Consecutive new rows of one shape that go as one executemany of their own.
SAME_SHAPE_RUN = 4
#: Multi-row inserts by the sequence of their rows' shapes (bounded: cleared when full).
_MIXED: dict[tuple[str, ...], str] = {}
_MIXED_MAX = 256


def _insert_rows(cur: sqlite3.Cursor, shapes: list[tuple[str, itemgetter[Any], str]],
                 rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows`` (``shapes[i]`` is its row's :func:`_insert_shape`) in their order:
    ``seq`` follows it, so a run lists its steps as they were created.

    A stretch of at least :data:`SAME_SHAPE_RUN` rows of one shape (a run's first
    steps) goes as one executemany of the shape's insert. The other rows (a loop's
    iterations: a sentinel, a block, a sentinel) go as multi-row inserts of up to
    :data:`INSERT_CHUNK` rows, an absent column spelled ``NULL`` in the statement:
    binding None costs ``sqlite3`` more than a statement per row saves. A row that
    exists already was created by another process (:class:`StaleStatuses`).
    """
    try:
        count = len(rows)
        mixed = 0  # rows[mixed:start] wait for a multi-row insert
        start = 0
        while start < count:
            shape = shapes[start]
            end = start + 1
            while end < count and shapes[end] is shape:
                end += 1
            if end - start >= SAME_SHAPE_RUN:
                _insert_mixed(cur, shapes, rows, mixed, start)
                cur.executemany(shape[0], rows[start:end])
                mixed = end
            start = end
        _insert_mixed(cur, shapes, rows, mixed, count)
    except sqlite3.IntegrityError as exc:
        raise StaleStatuses from exc


def _insert_mixed(cur: sqlite3.Cursor, shapes: list[tuple[str, itemgetter[Any], str]],
                  rows: list[tuple[Any, ...]], start: int, end: int) -> None:
    """Insert ``rows[start:end]`` as multi-row inserts of up to :data:`INSERT_CHUNK` rows."""
    for first in range(start, end, INSERT_CHUNK):
        last = min(first + INSERT_CHUNK, end)
        key = tuple([shape[2] for shape in shapes[first:last]])
        sql = _MIXED.get(key)
        if sql is None:
            if len(_MIXED) >= _MIXED_MAX:
                _MIXED.clear()
            sql = _MIXED[key] = _INSERT_ALL + ", ".join(key)
        cur.execute(sql, list(chain.from_iterable(rows[first:last])))


def _insert_shape(key: tuple[bool, ...]) -> tuple[str, itemgetter[Any], str]:
    """The INSERT of a new row's non-null columns (``key``: which optional ones), its
    parameters' getter, and the row as a ``VALUES`` term of :data:`_INSERT_ALL` (an
    absent column is ``NULL``)."""
    take = _INSERT_ALWAYS + tuple(index for index, on in zip(_INSERT_OPTIONAL, key) if on)
    names = ", ".join(_COLUMN_NAMES[i] for i in take)
    term = "(" + ", ".join(["?"] * len(_INSERT_ALWAYS)
                           + [_placeholder(index) if on else "NULL"
                              for index, on in zip(_INSERT_OPTIONAL, key)]) + ")"
    values = ", ".join(_placeholder(index) for index in take)
    return f"INSERT INTO steps ({names}) VALUES ({values})", itemgetter(*take), term


def _placeholder(index: int) -> str:
    """How an insert spells the value of row position ``index``: ``?``, except
    ``reserve``, bound as its size (see :data:`_RESERVE_SIZE`)."""
    return "zeroblob(?)" if index == _RESERVE_AT else "?"


def _update_shape(key: tuple[bool, ...]) -> tuple[str, itemgetter[Any]]:
    """The UPDATE of the columns a batch changed (``StepChange.cols`` positions 0-18;
    ``key``: which of 3-18 hold a value; ``artifact_id`` complete), and a getter of its
    parameters; the caller appends the trail, the row's seq, run id, step id and prior
    status.

    First queue and start times are kept, given values win, and ``duration_ms`` runs
    from the first start (SET expressions read the row as it was).
    """
    queued, started, completed = key[0], key[1], key[2]
    sets = ["status = ?", "retry_count = ?", "updated_at = ?"]
    take = [0, 1, 2]
    if queued:
        sets.append("queued_at = COALESCE(queued_at, ?)")
        take.append(3)
    if started:
        sets.append("started_at = COALESCE(started_at, ?)")
        take.append(4)
    if completed:
        sets.append("completed_at = ?")
        take.append(5)
        if started:
            sets.append("duration_ms = CAST(ROUND((? - COALESCE(started_at, ?)) * 1000) "
                        "AS INTEGER)")
            take += (5, 4)
        else:
            sets.append("duration_ms = CAST(ROUND((? - started_at) * 1000) AS INTEGER)")
            take.append(5)
    for n, name in enumerate(_UPDATE_FIELDS):
        if key[3 + n]:
            sets.append(f"{name} = ?")
            take.append(6 + n)
    sets.append("trail = trail || ?")
    sets.append("reserve = NULL")  # the room a new row kept (RESERVE) is the page's now
    # found by its rowid; run, step and status checked (a seq SQLite gave again to a
    # new row after the one it named was deleted is another row)
    sql = (f"UPDATE steps SET {', '.join(sets)} "
           "WHERE seq = ? AND run_id = ? AND step_id = ? AND status = ?")
    return sql, itemgetter(*take)


# --------------------------------------------------------------------------- helpers


def _new_row(run_id: str, ev: StepEvent, now: float, scope: str) -> StepChange:
    """The INSERT parameters of a step created now (``seq``, the rowid, is assigned);
    ``scope`` is ``ev.scope`` encoded."""
    row: list[Any] = [
        run_id, ev.step_id, ev.block_id, ev.block_type, ev.label, "pending", scope,
        ev.retry_count, None, None, None, None, None, None, None, None, None, None, None,
        now, None, None, None, now, None, "", None, None, None, None,
    ]
    return StepChange(ev.step_id, None, _PENDING, row)


def _seq_of(cur: sqlite3.Cursor, run_id: str, step_id: str) -> int:
    """The ``seq`` of a step's row.

    Raises:
        StaleStatuses: the step has no row (another process deleted it).
    """
    row = cur.execute(_SEQ_OF, (run_id, step_id)).fetchone()
    if row is None:
        raise StaleStatuses
    return int(row[0])


_SEQ_OF = "SELECT seq FROM steps WHERE run_id = ? AND step_id = ?"


def _step_identity(conn: sqlite3.Connection, run_id: str, step_id: str | None) -> tuple[str, str]:
    if step_id is None:
        return "", ""
    row = conn.execute(
        "SELECT block_id, label FROM steps WHERE run_id = ? AND step_id = ?", (run_id, step_id)
    ).fetchone()
    return (row[0], row[1]) if row else (step_id, step_id)
