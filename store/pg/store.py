"""The PostgreSQL store: the SQLite store's contract on a server many machines share.

Theory of operation
-------------------
Same plan, same promise as :mod:`store.sqlite`: :meth:`PostgresStore.apply` folds a
batch of step events into rows in Python (:class:`~store.pg.writes.PgStepWriter`, the
SQLite writer's planner), then writes it in one transaction; it returns once the
transaction is committed, so a step's completion is durable and visible to every
process before anything that depends on it starts. Updates carry the status the plan
started from; when another process moved a step meanwhile, the transaction rolls back
and the batch is planned again from the database.

Reviews, the workflow registry and the read queries are the SQLite store's own code
(:class:`~store.reviews.SQLiteReviews`, :class:`~store.workflows.SQLiteWorkflows`,
:class:`~store.sqlite_reads.SQLiteReads`), running on a
:class:`~store.pg.connection.PgDatabase`, which takes the same ``?``-placeholder SQL.
Documents and large payloads live in the database too (:class:`~store.pg.files.PgFileStore`).

The run queue (:class:`~engine.contracts.queue.QueueStore`): a queued run is a run row
with status ``queued`` and no owner. :meth:`PostgresStore.claim_next` takes the oldest
claimable run with ``FOR UPDATE SKIP LOCKED``, so workers on any number of machines
never take the same run and never wait for each other. Ownership is a lease: the owner's
heartbeat renews it; a run whose heartbeat is older than the lease is claimable again.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Self

from psycopg import errors as pg_errors

from engine.contracts.errors import ConflictError, NotFoundError, StorageError
from engine.contracts.events import NewRun, RunUpdate, StepEvent
from engine.contracts.files import FileStore
from engine.contracts.store import PersistedRun, PersistedStep, check_durability
from engine.contracts.values import RunStatus, StepStatus
from store.codec import decode_outputs, dumps, inline_blobs, loads
from store.deletes import SQLRunDeletion
from store.evals import SQLEvals
from store.pg.connection import PgConnection, PgDatabase
from store.pg.files import PgFileStore
from store.pg.schema import open_schema
from store.pg.writes import PgStepWriter, committed
from store.reviews import SQLiteReviews
from store.sqlite_reads import SQLiteReads
from store.step_logs import SQLLogWrites
from store.workflows import SQLiteWorkflows
from store.writes import StaleStatuses

if TYPE_CHECKING:
    from engine.contracts.logs import AttemptLog
    from store.api import ReadAPI

_INSERT_DEFINITION = ("INSERT INTO definitions (id, definition, created_at) VALUES (?, ?, ?) "
                      "ON CONFLICT DO NOTHING")
_INSERT_RUN = """
INSERT INTO runs (id, workflow_id, workflow_name, workflow_digest, definition_id, inputs,
  metadata, organization_id, "trigger", status, owner_pid, owner_host, heartbeat_at,
  cancel_requested, parent_run_id, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, FALSE, ?, ?, ?)
"""
_RUN_SELECT = (
    "SELECT r.id, r.workflow_id, r.status, d.definition, r.inputs, r.workflow_digest, "
    "r.organization_id, r.owner_pid, r.heartbeat_at, r.cancel_requested, r.owner_host "
    "FROM runs r LEFT JOIN definitions d ON d.id = r.definition_id WHERE r.id = ?"
)
#: Claimable: active, and queued (no owner) or its owner's lease ran out.
_CLAIM_NEXT = """
UPDATE runs SET owner_pid = ?, owner_host = ?, heartbeat_at = ?
WHERE id = (
  SELECT id FROM runs WHERE status IN ('pending', 'queued', 'running')
    AND (heartbeat_at IS NULL OR heartbeat_at < ?)
  ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id
"""


class PostgresStore(SQLiteReads, SQLiteReviews, SQLiteWorkflows, SQLEvals,
                    SQLRunDeletion, SQLLogWrites):
    """The PostgreSQL implementation of :class:`engine.contracts.store.Store` and
    :class:`engine.contracts.queue.QueueStore`.

    Args:
        url: ``postgresql://USER:PASSWORD@HOST:PORT/DATABASE`` (libpq parameters allowed).
        durability: ``process`` (default: ``synchronous_commit = off``, survives any
            crash of a stepwell process), ``full`` (every commit flushed to disk by the
            server before it returns) or ``scratch`` (as ``process``: the server decides
            what reaches its disk).
        create: create the layout in an empty database (False for readers, which
            refuse an empty database with NotFoundError).

    Raises:
        StorageError: the server is unreachable, refuses the credentials, or the
            database holds another schema version or another application's tables;
            nothing was written.
        UsageError: an unknown ``durability``.
    """

    def __init__(self, url: str, *, durability: str = "process", create: bool = True) -> None:
        check_durability(durability)
        self.url = url
        self.durability = durability
        db = PgDatabase(url, synchronous_commit=durability == "full")
        #: What messages call this database (password hidden).
        self.path = db.path
        try:
            open_schema(db, create=create)
        except BaseException:
            db.close()
            raise
        local_files = PgFileStore(url, db=db)
        #: Documents and large payloads, in this database.
        self.files: FileStore = local_files
        self.host = socket.gethostname()
        self._writer = PgStepWriter(local_files)  # type: ignore[arg-type]
        self._statuses: dict[str, dict[str, StepStatus]] = {}
        super().__init__(db, local_files)  # type: ignore[arg-type]

    @property
    def in_memory(self) -> bool:
        """Always False: a PostgreSQL database outlives the store."""
        return False

    # ------------------------------------------------------------------ runs

    def create_run(self, run: NewRun, *, now: float) -> None:
        """Insert the run row (status ``pending``, owned by this process, heartbeat now).

        Raises:
            ConflictError: a run with this id exists.
            StorageError: the database cannot be written.
        """
        definition = dumps(run.definition, "definition", run.run_id)
        definition_id = hashlib.sha256(definition.encode()).hexdigest()[:32]
        params = (
            run.run_id, run.workflow_id, run.workflow_name, run.workflow_digest, definition_id,
            dumps(run.inputs, "inputs", run.run_id), dumps(run.metadata, "metadata", run.run_id),
            run.organization_id, run.trigger, os.getpid(), self.host, now, run.parent_run_id,
            now, now,
        )

        def insert(conn: PgConnection) -> None:
            conn.execute(_INSERT_DEFINITION, (definition_id, definition, now))
            conn.execute(_INSERT_RUN, params)

        db = self.db
        with db.lock, db.guard(f"creating run {run.run_id}"):
            try:
                db.write(insert)
            except pg_errors.UniqueViolation:
                raise ConflictError(
                    f"Run {run.run_id!r} already exists in {self.path}. "
                    "Start a new run with a fresh id, or resume this one."
                ) from None
            self._statuses[run.run_id] = {}

    def load_run(self, run_id: str) -> PersistedRun:
        """The run row as the runner needs it.

        Raises:
            NotFoundError: no such run.
        """
        with self.db.read(f"reading run {run_id}") as conn:
            row = conn.execute(_RUN_SELECT, (run_id,)).fetchone()
        if row is None:
            raise NotFoundError("run", run_id)
        return PersistedRun(
            run_id=row[0], workflow_id=row[1], status=RunStatus(row[2]),
            definition=loads(row[3]) or {}, inputs=loads(row[4]) or {},
            workflow_digest=row[5], organization_id=row[6], owner_pid=row[7],
            heartbeat_at=row[8], cancel_requested=bool(row[9]), owner_host=row[10],
        )

    def heartbeat(self, run_id: str, now: float) -> None:
        """Record that the owning process is alive. Raises NotFoundError."""
        self._set_run(run_id, "heartbeat_at = ?", (now,))

    def set_owner(self, run_id: str, pid: int, now: float) -> None:
        """Make ``pid`` (of this host) the run's owner, with a fresh heartbeat."""
        self._set_run(run_id, "owner_pid = ?, owner_host = ?, heartbeat_at = ?",
                      (pid, self.host, now))

    def claim_owner(self, run_id: str, pid: int, now: float, *, seen_pid: int | None,
                    seen_heartbeat: float | None) -> bool:
        """Make ``pid`` the owner only if owner and heartbeat are still those seen
        (compare-and-set): of two processes resuming one run, one wins."""
        sql = ("UPDATE runs SET owner_pid = ?, owner_host = ?, heartbeat_at = ? WHERE id = ? "
               "AND owner_pid IS NOT DISTINCT FROM ?::integer "
               "AND heartbeat_at IS NOT DISTINCT FROM ?::float8")
        db = self.db
        with db.lock, db.guard(f"claiming run {run_id}"):
            cur = db.execute(sql, (pid, self.host, now, run_id, seen_pid, seen_heartbeat))
        return bool(cur.rowcount)

    def request_cancel(self, run_id: str, reason: str = "cancelled by request") -> None:
        """Flag the run for cancellation with ``reason``; its owner polls
        :meth:`cancel_requested` and ends the run with that reason."""
        self._set_run(run_id, "cancel_requested = TRUE, reason = ?", (reason,))

    def cancel_requested(self, run_id: str) -> str | None:
        """The reason of the cancel request made for the run (by any process), or None."""
        with self.db.read(f"reading run {run_id}") as conn:
            row = conn.execute("SELECT cancel_requested, reason FROM runs WHERE id = ?",
                               (run_id,)).fetchone()
        if row is None:
            raise NotFoundError("run", run_id)
        return (row[1] or "cancelled by request") if row[0] else None

    def _set_run(self, run_id: str, assignments: str, params: tuple[Any, ...]) -> None:
        db = self.db
        with db.lock, db.guard(f"updating run {run_id}"):
            cur = db.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*params, run_id))
        if cur.rowcount == 0:
            raise NotFoundError("run", run_id)

    # ------------------------------------------------------------------ queue

    def claim_next(self, pid: int, *, now: float, stale_before: float) -> str | None:
        """Take the oldest claimable run for ``pid`` (of this host), or None.

        Claimable: pending, queued or running, with no owner's heartbeat at or after
        ``stale_before`` (queued and handed-back runs have none). Locked rows are
        skipped, so concurrent workers never wait for each other or take the same run.
        """
        db = self.db
        with db.lock, db.guard("claiming a queued run"):
            row = db.write(lambda conn: conn.execute(
                _CLAIM_NEXT, (pid, self.host, now, stale_before)).fetchone())
        return None if row is None else str(row[0])

    def release(self, run_id: str, pid: int) -> bool:
        """Hand a run back to the queue if ``pid`` (of this host) still owns it: no owner,
        no heartbeat; a ``pending`` run becomes ``queued``. True when it was released."""
        sql = ("UPDATE runs SET owner_pid = NULL, owner_host = NULL, heartbeat_at = NULL, "
               "status = CASE WHEN status = 'pending' THEN 'queued' ELSE status END "
               "WHERE id = ? AND owner_pid = ? AND owner_host = ?")
        db = self.db
        with db.lock, db.guard(f"releasing run {run_id}"):
            return bool(db.execute(sql, (run_id, pid, self.host)).rowcount)

    def requeue(self, run_id: str) -> bool:
        """Put a run that waits for a review back in the queue (a decision was made):
        status ``queued``, no owner. True when it was waiting and is now queued."""
        sql = ("UPDATE runs SET status = 'queued', owner_pid = NULL, owner_host = NULL, "
               "heartbeat_at = NULL WHERE id = ? AND status = 'awaiting_review'")
        db = self.db
        with db.lock, db.guard(f"queueing run {run_id}"):
            return bool(db.execute(sql, (run_id,)).rowcount)

    # ------------------------------------------------------------------ steps

    def apply(self, run_id: str, events: Sequence[StepEvent],
              run_update: RunUpdate | None = None, *, now: float,
              logs: Sequence[AttemptLog] = ()) -> None:
        """Persist what attempts wrote (``logs``), a batch of step events and a run
        change in one committed transaction.

        Raises:
            IllegalTransition: a move the lifecycle table forbids; nothing was written.
            NotFoundError: the run does not exist.
            StorageError: the database failed; nothing was written.
        """
        db = self.db
        with db.lock, db.guard(f"saving steps of run {run_id}"):
            for attempt in range(3):
                known = self._known(run_id, reload=attempt > 0)
                plan = self._writer.plan(run_id, events, known, now)
                try:
                    committed(db, self._writer, run_id, plan, run_update, now, logs)
                except StaleStatuses:
                    continue
                for change in plan.changes.values():
                    known[change.step_id] = change.status
                if run_update is not None and run_update.status.terminal:
                    self._statuses.pop(run_id, None)
                return
            raise StorageError(
                f"steps of run {run_id} in {self.path} keep changing under this process: "
                "another process is running the same run. Stop it, then resume.")

    def load_steps(self, run_id: str) -> list[PersistedStep]:
        """Every persisted step of a run in creation order, outputs as Payloads."""
        sql = ("SELECT step_id, block_id, status, retry_count, outputs, control, reason, error "
               "FROM steps WHERE run_id = ? ORDER BY seq")
        files = self.local_files
        with self.db.read(f"reading steps of run {run_id}") as conn:
            rows = conn.execute(sql, (run_id,)).fetchall()
            steps = [
                PersistedStep(
                    step_id=r[0], block_id=r[1], status=StepStatus(r[2]), retry_count=r[3],
                    outputs=decode_outputs(r[4], files),
                    control=inline_blobs(loads(r[5]), files), reason=r[6],
                    error=loads(r[7]) if r[2] == "error" else None,
                )
                for r in rows
            ]
            self._statuses[run_id] = {s.step_id: s.status for s in steps}
        return steps

    def transitions(self, run_id: str, step_id: str | None = None) -> list[dict[str, Any]]:
        """The lifecycle audit trail of a run (or one step), oldest first."""
        sql = ("SELECT t.step_id, t.status, t.at, t.retry_count, t.detail FROM transitions t "
               "JOIN steps s ON s.run_id = t.run_id AND s.step_id = t.step_id "
               "WHERE t.run_id = ?")
        params: tuple[Any, ...] = (run_id,)
        if step_id is not None:
            sql, params = sql + " AND t.step_id = ?", (run_id, step_id)
        with self.db.read(f"reading transitions of run {run_id}") as conn:
            rows = conn.execute(sql + " ORDER BY t.at, s.seq, t.seq", params).fetchall()
        keys = ("step_id", "status", "at", "retry_count", "detail")
        return [dict(zip(keys, (*r[:4], loads(r[4])), strict=True)) for r in rows]

    def _known(self, run_id: str, *, reload: bool) -> dict[str, StepStatus]:
        known = self._statuses.get(run_id)
        if known is not None and not reload:
            return known
        conn = self.db.conn
        if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
            raise NotFoundError("run", run_id, "Create it with Store.create_run first.")
        rows = conn.execute("SELECT step_id, status FROM steps WHERE run_id = ?", (run_id,))
        known = {sid: StepStatus(status) for sid, status in rows}
        self._statuses[run_id] = known
        return known

    # ------------------------------------------------------------------ lifetime

    def reader(self, organization_id: str | None = None) -> ReadAPI:
        """A :class:`store.api.ReadAPI` over this store."""
        from store.api import ReadAPI

        return ReadAPI(self, organization_id=organization_id)

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
