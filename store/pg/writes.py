"""Writing planned batches to PostgreSQL: the SQLite writer's plan, PostgreSQL's SQL.

:class:`PgStepWriter` plans a batch exactly as :class:`store.writes.StepWriter` does (the
fold of events into rows, the lifecycle checks, large payloads to the file store) and
writes the plan with statements PostgreSQL accepts: parameters whose type the server
cannot infer are cast and numbered parameters are spelled out. A step's artifact goes
into its row, under an id the update completes with the row's ``seq``, as on SQLite
(:mod:`store.writes`); records written before layout 6 stay in ``artifacts``.

A batch is written in one round trip, so nothing reads a row count: the writes check
themselves in SQL. An update carries the status the plan started from; a step moved by
another process meanwhile leaves it changing no row, and the check divides by zero,
which aborts the transaction and becomes :class:`~store.writes.StaleStatuses` (the
batch is planned again), like a step another process created first (a unique
violation). The run update checks itself the same way.

Most batches (a step's completion with the dependants it queues, a run's end) become
**one statement** (:func:`one_statement`): every insert and update is a data-modifying
``WITH`` clause, and the final ``SELECT`` checks that each update changed its row. A
single statement on an autocommit connection is its own transaction, committed (or
rolled back whole) before the server answers, with no ``BEGIN`` / ``COMMIT`` to send:
the cost of one committed row plus the rows' bytes. Large batches (more than
:data:`MAX_PARAMS` parameters or :data:`MAX_UPDATES` step updates), and a run update
naming a failing step (its identity is read inside the transaction), go as a pipelined
transaction instead
(:meth:`~store.pg.connection.PgDatabase.write_pipelined`); a batch creating more than
:data:`COPY_INSERTS` steps (a run's start, a wide fan-out) is a transaction that copies
the new rows in, then sends the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from psycopg import errors as pg_errors

from engine.contracts.events import RunUpdate
from engine.contracts.records import review_id_for
from engine.contracts.values import RunStatus
from store.codec import dumps, encode, encode_map
from store.pg.connection import PgConnection, PgDatabase
from store.step_logs import insert_logs
from store.stepdata import TAG_DIGITS, error_json
from store.writes import INSERT_STEP, Plan, StaleStatuses, StepPlanner

if TYPE_CHECKING:
    from engine.contracts.logs import AttemptLog

#: An in-row artifact id from its stub (``{stub}``: ``<prefix>_<tag>``), the row's ``seq``
#: put in before the tag: the ids :func:`store.stepdata.in_row_id` makes.
_IN_ROW_ID = (f"left({{stub}}, -{TAG_DIGITS}) || CASE WHEN seq < 16777216 "
              f"THEN lpad(to_hex(seq), 6, '0') ELSE to_hex(seq) END || right({{stub}}, {TAG_DIGITS})")

_SET_STEP = """UPDATE steps SET status = ?, retry_count = ?, updated_at = ?,
  queued_at = COALESCE(queued_at, ?::float8), started_at = COALESCE(started_at, ?::float8),
  completed_at = COALESCE(?::float8, completed_at),
  duration_ms = CASE WHEN ?::float8 IS NULL THEN duration_ms
    ELSE ROUND((?::float8 - COALESCE(started_at, ?::float8)) * 1000)::integer END,
  inputs = COALESCE(?, inputs), outputs = COALESCE(?, outputs),
  error = COALESCE(?, error), reason = COALESCE(?, reason),
  artifact_id = COALESCE({in_row_id}, artifact_id),
  artifact_operation = COALESCE(?, artifact_operation),
  model = COALESCE(?, model), tokens = COALESCE(?, tokens), cost = COALESCE(?, cost),
  trace_spans = COALESCE(?, trace_spans), control = COALESCE(?, control),
  artifact = COALESCE(?, artifact), artifact_at = COALESCE(?::float8, artifact_at),
  trail = trail || ?
WHERE run_id = ? AND step_id = ? AND status = ? RETURNING 1""".format(
    in_row_id=_IN_ROW_ID.format(stub="?::text"))
#: A row inserted with its artifact gets the record and its id once it has a ``seq``.
_NAME_INSERTED_ARTIFACT = (
    f"UPDATE steps SET artifact_id = {_IN_ROW_ID.format(stub='artifact_id')}, "
    "artifact = ?, artifact_at = ?::float8 WHERE run_id = ? AND step_id = ?")
_UPDATE_STEP = f"WITH moved AS ({_SET_STEP}) SELECT 1 / count(*) FROM moved"
OPEN_REVIEW = (
    "INSERT INTO reviews (id, run_id, step_id, block_id, status, data, created_at) "
    "VALUES (?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT DO NOTHING"
)
_SET_RUN = """UPDATE runs SET status = ?, updated_at = ?,
  started_at = CASE WHEN ? = 'running' THEN COALESCE(started_at, ?::float8)
    ELSE started_at END,
  completed_at = ?::float8, failing_step_id = ?, error = ?, reason = ?, waiting_for = ?,
  outputs = COALESCE(?, outputs)
WHERE id = ? RETURNING 1"""
_UPDATE_RUN = f"WITH moved AS ({_SET_RUN}) SELECT 1 / count(*) FROM moved"
#: Parameters one statement carries at most; a larger batch is pipelined (a statement
#: of thousands of parameters costs the server more to parse than a prepared insert
#: sent once per row).
MAX_PARAMS = 2_000
#: Step updates one statement carries at most (each is a ``WITH`` clause the server
#: plans: hundreds of them cost far more than a pipelined update per row).
MAX_UPDATES = 16
#: Statement text per batch shape (inserts, updates, reviews, run update).
_SHAPES: dict[tuple[int, int, int, bool], str] = {}
_INSERT_HEAD = INSERT_STEP.split(" VALUES ")[0]
#: A batch creating more steps than this is a transaction that copies them in
#: (``COPY``: a third of the server's time of an insert per row).
COPY_INSERTS = 64
_COPY_STEPS = _INSERT_HEAD.replace("INSERT INTO", "COPY") + " FROM STDIN"
_STEP_ROW = "(" + ", ".join("?" * 26) + ")"


class PgStepWriter(StepPlanner):
    """Plans batches like :class:`~store.writes.StepWriter`; writes them to PostgreSQL."""

    __slots__ = ()

    def one_statement(self, run_id: str, plan: Plan, run_update: RunUpdate | None,
                      now: float) -> tuple[str, list[Any]] | None:
        """``plan`` (and ``run_update``) as one self-checking statement and its
        parameters, or None when it must go as a pipelined transaction (see the module
        docstring)."""
        if run_update is not None and run_update.error is not None:
            return None
        inserts, updates = _step_rows(run_id, plan)
        if _named_after_insert(run_id, plan):  # another statement must see the new row
            return None
        reviews = [(review_id_for(run_id, step_id), run_id, step_id, block_id, encode(data),
                    now) for step_id, block_id, data in plan.reviews]
        reviews = list({row[0]: row for row in reversed(reviews)}.values())
        params = len(inserts) * 26 + len(updates) * 27 + len(reviews) * 6
        if params > MAX_PARAMS or len(updates) > MAX_UPDATES or \
                not (inserts or updates or run_update):
            return None
        shape = (len(inserts), len(updates), len(reviews), run_update is not None)
        sql = _SHAPES.get(shape)
        if sql is None:
            if len(_SHAPES) > 512:
                _SHAPES.clear()
            sql = _SHAPES[shape] = _compose(*shape)
        values: list[Any] = []
        for rows in (inserts, updates, reviews):
            for row in rows:
                values.extend(row)
        if run_update is not None:
            values.extend(self._run_params(run_id, run_update, None, now))
        return sql, values

    def write(self, conn: Any, run_id: str, plan: Plan, run_update: RunUpdate | None,
              now: float, logs: Sequence[AttemptLog] = ()) -> None:
        """Send ``logs`` (what attempts wrote), ``plan`` and ``run_update`` on ``conn``,
        inside the caller's pipelined transaction; a stale step or a missing run fails
        it when it is committed (see the module docstring)."""
        if logs:
            insert_logs(conn, run_id, logs)
        inserts, updates = _step_rows(run_id, plan)
        if len(inserts) > COPY_INSERTS and not conn.pipelined:
            with conn.raw.cursor().copy(_COPY_STEPS) as copy:
                for row in inserts:
                    copy.write_row(row)
        elif inserts:
            conn.executemany(INSERT_STEP, inserts)
        named = _named_after_insert(run_id, plan)
        if named:
            conn.executemany(_NAME_INSERTED_ARTIFACT, named)
        if updates:
            conn.executemany(_UPDATE_STEP, updates)
        for step_id, block_id, data in plan.reviews:
            conn.execute(OPEN_REVIEW, (review_id_for(run_id, step_id), run_id, step_id,
                                       block_id, encode(data), now))
        if run_update is not None:
            self._write_run(conn, run_id, run_update, now)

    def _write_run(self, conn: PgConnection, run_id: str, update: RunUpdate,
                   now: float) -> None:
        error = None
        if update.error is not None:
            block_id, label = _step_identity(conn, run_id, update.failing_step_id)
            error = dumps(error_json(update.error, block_id, label), "error", run_id)
        conn.execute(_UPDATE_RUN, self._run_params(run_id, update, error, now))

    def _run_params(self, run_id: str, update: RunUpdate, error: str | None,
                    now: float) -> tuple[Any, ...]:
        status = update.status
        waiting = update.waiting_for_block_ids if status is RunStatus.AWAITING_REVIEW else None
        outputs = (None if update.outputs is None
                   else encode_map(update.outputs, "outputs", run_id, self.files))
        return (
            status.value, now, status.value, now, now if status.terminal else None,
            update.failing_step_id, error, update.reason,
            None if waiting is None else encode(waiting), outputs, run_id,
        )


def _step_rows(run_id: str, plan: Plan) -> tuple[list[Any], list[tuple[Any, ...]]]:
    """The parameters of the plan's step inserts and of its step updates."""
    inserts = []
    updates = []
    for c in plan.changes.values():
        cols = c.cols
        if c.before is None:  # its artifact, if any, is set after (_named_after_insert)
            cols[25] = ",".join(c.trail)
            inserts.append(cols[:26])
        else:
            updates.append((*cols[:6], cols[5], cols[5], cols[4], *cols[6:11], cols[10],
                            *cols[11:19], "," + ",".join(c.trail), run_id, c.step_id,
                            c.before.value))
    return inserts, updates


def _named_after_insert(run_id: str, plan: Plan) -> list[tuple[Any, ...]]:
    """The artifact of each step created with one in this batch, as parameters of
    ``_NAME_INSERTED_ARTIFACT`` (rare: a step is created ``pending`` before it runs)."""
    return [(c.cols[26], c.cols[27], run_id, c.step_id) for c in plan.changes.values()
            if c.before is None and c.cols[26] is not None]


def _compose(inserts: int, updates: int, reviews: int, run: bool) -> str:
    """The statement of one batch shape: a ``WITH`` clause per write, then the check that
    every update changed its row (a division by zero otherwise); parameters are
    numbered (``$1``...), so psycopg sends the text as it is, without parsing it."""
    parts = []
    if inserts:
        parts.append(f"i AS ({_INSERT_HEAD} VALUES {', '.join([_STEP_ROW] * inserts)})")
    parts += [f"u{k} AS ({_SET_STEP})" for k in range(updates)]
    if reviews:
        head, tail = OPEN_REVIEW.split(" VALUES (?, ?, ?, ?, 'pending', ?, ?) ")
        rows = ", ".join(["(?, ?, ?, ?, 'pending', ?, ?)"] * reviews)
        parts.append(f"v AS ({head} VALUES {rows} {tail})")
    counts = [f"(SELECT count(*) FROM u{k})" for k in range(updates)]
    if run:
        parts.append(f"r AS ({_SET_RUN})")
        counts.append("(SELECT count(*) FROM r)")
    check = (f"SELECT 1 / (({' + '.join(counts)}) = {len(counts)})::integer" if counts
             else "SELECT 1")
    pieces = f"WITH {', '.join(parts)} {check}".split("?")
    return "".join(f"{piece}${n}" for n, piece in enumerate(pieces[:-1], 1)) + pieces[-1]


def _step_identity(conn: PgConnection, run_id: str, step_id: str | None) -> tuple[str, str]:
    if step_id is None:
        return "", ""
    row = conn.execute("SELECT block_id, label FROM steps WHERE run_id = ? AND step_id = ?",
                       (run_id, step_id)).fetchone()
    return (row[0], row[1]) if row else (step_id, step_id)


def committed(db: PgDatabase, writer: PgStepWriter, run_id: str, plan: Plan,
              run_update: RunUpdate | None, now: float,
              logs: Sequence[AttemptLog] = ()) -> None:
    """Write ``plan`` (after ``logs``) in one statement, one pipelined transaction, or
    (many new steps) one transaction that copies them in (callers hold the lock);
    committed when this returns.

    Raises:
        StaleStatuses: a step was moved or created by another process meanwhile, or the
            run is gone; nothing was written.
    """
    statement = None if logs else writer.one_statement(run_id, plan, run_update, now)
    try:
        if statement is not None:
            db.write_statement(*statement)
        elif sum(c.before is None for c in plan.changes.values()) > COPY_INSERTS:
            db.write(writer.write, run_id, plan, run_update, now, logs)
        else:
            db.write_pipelined(writer.write, run_id, plan, run_update, now, logs)
    except (pg_errors.DivisionByZero, pg_errors.UniqueViolation) as exc:
        raise StaleStatuses from exc
