"""Writing planned batches to PostgreSQL: the SQLite writer's plan, PostgreSQL's SQL.

:class:`PgStepWriter` plans a batch exactly like :class:`store.writes.StepWriter` (the
fold of events into rows, the lifecycle checks, large payloads to the file store) and
writes the plan with statements PostgreSQL accepts: parameters whose type the server
cannot infer are cast, numbered parameters are spelled out, and the artifact upsert is
``ON CONFLICT``. Updates still carry the status the plan started from, so a step moved
by another process makes the row counts disagree (:class:`~store.writes.StaleStatuses`)
and the batch is planned again.
"""

from __future__ import annotations

from typing import Any

from psycopg import errors as pg_errors

from engine.contracts.errors import NotFoundError
from engine.contracts.events import RunUpdate
from engine.contracts.records import review_id_for
from engine.contracts.values import RunStatus
from store.codec import dumps, encode, encode_map
from store.pg.connection import PgConnection
from store.stepdata import error_json
from store.writes import INSERT_STEP, Plan, StaleStatuses, StepWriter

_UPDATE_STEP = """
UPDATE steps SET status = ?, retry_count = ?, updated_at = ?,
  queued_at = COALESCE(queued_at, ?::float8), started_at = COALESCE(started_at, ?::float8),
  completed_at = COALESCE(?::float8, completed_at),
  duration_ms = CASE WHEN ?::float8 IS NULL THEN duration_ms
    ELSE ROUND((?::float8 - COALESCE(started_at, ?::float8)) * 1000)::integer END,
  inputs = COALESCE(?, inputs), outputs = COALESCE(?, outputs),
  error = COALESCE(?, error), reason = COALESCE(?, reason),
  artifact_id = COALESCE(?, artifact_id),
  artifact_operation = COALESCE(?, artifact_operation),
  model = COALESCE(?, model), tokens = COALESCE(?, tokens), cost = COALESCE(?, cost),
  trace_spans = COALESCE(?, trace_spans), control = COALESCE(?, control),
  trail = trail || ?
WHERE run_id = ? AND step_id = ? AND status = ?
"""
UPSERT_ARTIFACT = (
    "INSERT INTO artifacts (id, run_id, step_id, operation, record, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET run_id = excluded.run_id, "
    "step_id = excluded.step_id, operation = excluded.operation, record = excluded.record, "
    "created_at = excluded.created_at"
)
OPEN_REVIEW = (
    "INSERT INTO reviews (id, run_id, step_id, block_id, status, data, created_at) "
    "VALUES (?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT DO NOTHING"
)
_UPDATE_RUN = """
UPDATE runs SET status = ?, updated_at = ?,
  started_at = CASE WHEN ? = 'running' THEN COALESCE(started_at, ?::float8)
    ELSE started_at END,
  completed_at = ?::float8, failing_step_id = ?, error = ?, reason = ?, waiting_for = ?,
  outputs = COALESCE(?, outputs)
WHERE id = ?
"""


class PgStepWriter(StepWriter):
    """Plans batches like :class:`~store.writes.StepWriter`; writes them to PostgreSQL."""

    __slots__ = ()

    def write(self, conn: Any, run_id: str, plan: Plan, run_update: RunUpdate | None,
              now: float) -> None:
        """Write ``plan`` (and ``run_update``) on ``conn``, inside the caller's transaction.

        Raises:
            StaleStatuses: a step was moved (or created) by another process since the
                plan was made.
        """
        inserts = []
        updates = []
        for c in plan.changes.values():
            cols = c.cols
            if c.before is None:
                cols[25] = ",".join(c.trail)
                inserts.append(cols)
            else:
                updates.append((*cols[:6], cols[5], cols[5], cols[4], *cols[6:17],
                                "," + ",".join(c.trail), run_id, c.step_id, c.before.value))
        if inserts:
            try:
                conn.executemany(INSERT_STEP, inserts)
            except pg_errors.UniqueViolation as exc:
                raise StaleStatuses from exc
        if updates and conn.executemany(_UPDATE_STEP, updates).rowcount != len(updates):
            raise StaleStatuses
        if plan.artifacts:
            conn.executemany(UPSERT_ARTIFACT, plan.artifacts)
        for step_id, block_id, data in plan.reviews:
            conn.execute(OPEN_REVIEW, (review_id_for(run_id, step_id), run_id, step_id,
                                       block_id, encode(data), now))
        if run_update is not None:
            self._write_run(conn, run_id, run_update, now)

    def _write_run(self, conn: PgConnection, run_id: str, update: RunUpdate,
                   now: float) -> None:
        status = update.status
        error = None
        if update.error is not None:
            block_id, label = _step_identity(conn, run_id, update.failing_step_id)
            error = dumps(error_json(update.error, block_id, label), "error", run_id)
        waiting = update.waiting_for_block_ids if status is RunStatus.AWAITING_REVIEW else None
        outputs = (None if update.outputs is None
                   else encode_map(update.outputs, "outputs", run_id, self.files))
        params = (
            status.value, now, status.value, now, now if status.terminal else None,
            update.failing_step_id, error, update.reason,
            None if waiting is None else encode(waiting), outputs, run_id,
        )
        if conn.execute(_UPDATE_RUN, params).rowcount == 0:
            raise NotFoundError("run", run_id)


def _step_identity(conn: PgConnection, run_id: str, step_id: str | None) -> tuple[str, str]:
    if step_id is None:
        return "", ""
    row = conn.execute("SELECT block_id, label FROM steps WHERE run_id = ? AND step_id = ?",
                       (run_id, step_id)).fetchone()
    return (row[0], row[1]) if row else (step_id, step_id)
