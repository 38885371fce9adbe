"""The SQLite store: every step transition committed before the next one starts.

Theory of operation
-------------------
The schema is declared in :mod:`store.models` and executed from its SQL rendering
(:mod:`store.layout`), so opening a database never imports the ORM. The hot path is
plain ``sqlite3``: :meth:`SQLiteStore.apply` plans a batch of
:class:`~engine.contracts.events.StepEvent` in Python, then writes it through one raw ``sqlite3``
connection in autocommit mode with an explicit ``BEGIN IMMEDIATE`` ... ``COMMIT`` and a
handful of prepared ``executemany`` statements. Planning, the statements and the write
live in :mod:`store.writes`; payload encoding (refs, blobs) in :mod:`store.codec`.

An illegal move raises :class:`~engine.contracts.errors.IllegalTransition` before anything is
written. If another process moved a step since the batch was planned, the transaction
rolls back, the status map is reloaded and the batch is planned again.
``SQLITE_BUSY`` rolls back and retries the whole transaction until the busy timeout,
so several processes can share one database file.

Durability: ``process`` (``synchronous=NORMAL``) survives any process crash;
``full`` (``synchronous=FULL``) also survives power loss; ``scratch``
(``synchronous=OFF``, no fsync at all) survives a process crash, but an operating
system crash or a power cut can lose or corrupt the file: it is for databases thrown
away afterwards (the ``stepwell_engine`` test fixture uses it). All run in WAL mode; WAL
checkpoints run mostly on a background thread (:mod:`store.checkpoint`) so that no
commit pays for one.

Every ``sqlite3`` error is translated at this boundary into
:class:`~engine.contracts.errors.StorageError` naming the database file and the fix.

:class:`SQLiteStore` implements every protocol of :mod:`engine.contracts.store`: runs
and steps here, reviews in :mod:`store.reviews`, the workflow registry in
:mod:`store.workflows` and the read queries in :mod:`store.sqlite_reads`, all on one
connection (:class:`~store.connection.Database`) under one lock.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import sqlite3
import tempfile
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from engine.contracts.errors import (
    ConflictError,
    IllegalTransition,
    NotFoundError,
    StorageError,
)
from engine.contracts.events import NewRun, RunUpdate, StepEvent
from engine.contracts.files import FileStore
from engine.contracts.store import PersistedRun, PersistedStep, check_durability
from engine.contracts.values import TERMINAL, RunStatus, StepStatus
from store.checkpoint import Checkpointer
from store.codec import decode_outputs, dumps, encoded_definition, inline_blobs, loads
from store.connection import is_memory_path, open_database, storage_error
from store.deletes import SQLRunDeletion
from store.evals import SQLEvals
from store.files import LocalFileStore
from store.reviews import SQLiteReviews
from store.sqlite_queue import SQLiteQueue
from store.sqlite_reads import SQLiteReads
from store.step_logs import SQLLogWrites
from store.workflows import SQLiteWorkflows
from store.writes import INSERT_DEFINITION, INSERT_RUN, StaleStatuses, StepWriter

if TYPE_CHECKING:
    from engine.contracts.logs import AttemptLog
    from store.api import ReadAPI


class Durability(StrEnum):
    """How much a commit survives: a process crash (``process``), power loss (``full``),
    or a process crash in a database thrown away afterwards (``scratch``: no fsync, so an
    operating system crash can corrupt it; for tests and scratch runs)."""

    PROCESS = "process"
    FULL = "full"
    SCRATCH = "scratch"


#: SQLite's ``synchronous`` setting for each durability.
_SYNCHRONOUS = {Durability.PROCESS: "NORMAL", Durability.FULL: "FULL",
                Durability.SCRATCH: "OFF"}


#: Statuses as stored that no move leaves: the store keeps no ``seq`` for such a step.
_ENDED = frozenset(status.value for status in TERMINAL)


class SQLiteStore(SQLiteReads, SQLiteReviews, SQLiteWorkflows, SQLiteQueue, SQLEvals,
                  SQLRunDeletion, SQLLogWrites):
    """The SQLite implementation of :class:`engine.contracts.store.Store` and
    :class:`engine.contracts.queue.QueueStore` (:mod:`store.sqlite_queue`).

    Args:
        path: database file (created with its folder if missing) or ``':memory:'``.
        durability: ``'process'`` (default, ``synchronous=NORMAL``), ``'full'``
            (``synchronous=FULL``) or ``'scratch'`` (``synchronous=OFF``: for a database
            thrown away afterwards, such as a test's).
        files: file store; defaults to ``<path>.files/`` (a temporary folder for
            ``':memory:'``, removed by :meth:`close`).
        busy_timeout: seconds to wait for another process's write lock.

    Raises:
        StorageError: the file cannot be opened or written; the message says what to do.
        UsageError: an unknown ``durability``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = "stepwell.db",
        *,
        durability: Durability | str = Durability.PROCESS,
        files: LocalFileStore | None = None,
        busy_timeout: float = 30.0,
    ) -> None:
        self.path = os.fspath(path)
        self.durability = Durability(check_durability(durability))
        self.busy_timeout = busy_timeout
        #: The machine whose pids own runs here (``runs.owner_host``).
        self.host = socket.gethostname()
        self._statuses: dict[str, dict[str, StepStatus]] = {}
        #: The ``seq`` of the steps that have not ended, by run (an update finds its row
        #: by it).
        self._seqs: dict[str, dict[str, int]] = {}
        #: The file store folder of ``':memory:'`` (created on its first write).
        self._memory_files: Path | None = None
        local_files = files or self._default_files()
        #: The same file store, as the :class:`~engine.contracts.store.RunStore` protocol
        #: declares it (``local_files`` is it, precisely typed).
        self.files: FileStore = local_files
        self._writer = StepWriter(local_files)
        db = open_database(self.path, busy_timeout=busy_timeout,
                           synchronous=_SYNCHRONOUS[self.durability])
        super().__init__(db, local_files)
        self._checkpointer: Checkpointer | None = None
        if not self.in_memory:
            # full durability: the store's connection finishes each checkpoint, so that
            # commits overwrite the WAL rather than grow it (see Checkpointer)
            self._checkpointer = Checkpointer(
                self.path, fsync=self.durability is not Durability.SCRATCH,
                writer=db.conn if self.durability is Durability.FULL else None)
            db.on_commit = self._checkpointer.committed

    @property
    def in_memory(self) -> bool:
        """True for a ``':memory:'`` database."""
        return is_memory_path(self.path)

    def _default_files(self) -> LocalFileStore:
        if self.in_memory:
            # an unguessable name, created (0700) by the first write: most in-memory
            # stores (tests) never write a file, and skip a mkdir and an rmtree
            name = f"stepwell-files-{secrets.token_hex(8)}"
            self._memory_files = Path(tempfile.gettempdir()) / name
            return LocalFileStore(self._memory_files)
        return LocalFileStore.beside(self.path)

    # ------------------------------------------------------------------ runs

    def create_run(self, run: NewRun, *, now: float) -> None:
        """Insert the run row (status ``pending``, owned by this process, heartbeat now).

        The definition is encoded (and packed) once for runs of one shared compiled
        graph (:func:`store.codec.encoded_definition`) and stored once per database.

        Raises:
            ConflictError: a run with this id exists.
            StorageError: the database cannot be written.
        """
        known = encoded_definition(run.definition, run.run_id)
        definition_id = known.id
        params = (
            run.run_id, run.workflow_id, run.workflow_name, run.workflow_digest, definition_id,
            dumps(run.inputs, "inputs", run.run_id), dumps(run.metadata, "metadata", run.run_id),
            run.organization_id, run.trigger, os.getpid(), self.host, now, run.parent_run_id,
            now, now,
        )

        def insert(conn: sqlite3.Connection) -> None:
            # OR IGNORE: a stored definition stays as it is; packing it again costs
            # nothing (``known`` keeps it), asking first would cost a statement
            conn.execute(INSERT_DEFINITION, (definition_id, known.packed(), now))
            conn.execute(INSERT_RUN, params)

        db = self.db
        with db.lock, db.guard(f"creating run {run.run_id}"):
            try:
                db.write(insert)
            except sqlite3.IntegrityError:
                raise ConflictError(
                    f"Run {run.run_id!r} already exists in {self.path}. "
                    "Start a new run with a fresh id, or resume this one."
                ) from None
            self._statuses[run.run_id] = {}
            self._seqs[run.run_id] = {}

    def load_run(self, run_id: str) -> PersistedRun:
        """The run row as the runner needs it.

        Raises:
            NotFoundError: no such run.
        """
        sql = (
            "SELECT r.id, r.workflow_id, r.status, d.definition, r.inputs, r.workflow_digest, "
            "r.organization_id, r.owner_pid, r.heartbeat_at, r.cancel_requested, r.owner_host "
            "FROM runs r "
            "LEFT JOIN definitions d ON d.id = r.definition_id WHERE r.id = ?"
        )
        with self.db.read(f"reading run {run_id}") as conn:
            row = conn.execute(sql, (run_id,)).fetchone()
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
        """Make ``pid`` (of this host) the run's owner (on resume), with a fresh heartbeat."""
        self._set_run(run_id, "owner_pid = ?, owner_host = ?, heartbeat_at = ?",
                      (pid, self.host, now))

    def claim_owner(self, run_id: str, pid: int, now: float, *, seen_pid: int | None,
                    seen_heartbeat: float | None) -> bool:
        """Make ``pid`` the owner only if owner and heartbeat are still those seen
        (compare-and-set): of two processes resuming one run, one wins."""
        sql = ("UPDATE runs SET owner_pid = ?, owner_host = ?, heartbeat_at = ? WHERE id = ? "
               "AND owner_pid IS ? AND heartbeat_at IS ?")
        db = self.db
        with db.lock, db.guard(f"claiming run {run_id}"):
            cur = db.execute(sql, (pid, self.host, now, run_id, seen_pid, seen_heartbeat))
        return bool(cur.rowcount)

    def request_cancel(self, run_id: str, reason: str = "cancelled by request") -> None:
        """Flag the run for cancellation with ``reason``; its owner polls
        :meth:`cancel_requested` and ends the run with that reason."""
        self._set_run(run_id, "cancel_requested = 1, reason = ?", (reason,))

    def cancel_requested(self, run_id: str) -> str | None:
        """The reason of the cancel request made for the run (by any process), or None."""
        with self.db.read(f"reading run {run_id}") as conn:
            row = conn.execute(
                "SELECT cancel_requested, reason FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
        if row is None:
            raise NotFoundError("run", run_id)
        return (row[1] or "cancelled by request") if row[0] else None

    def _set_run(self, run_id: str, assignments: str, params: tuple[Any, ...]) -> None:
        sql = f"UPDATE runs SET {assignments} WHERE id = ?"
        db = self.db
        with db.lock, db.guard(f"updating run {run_id}"):
            cur = db.execute(sql, (*params, run_id))
        if cur.rowcount == 0:
            raise NotFoundError("run", run_id)

    # ------------------------------------------------------------------ steps

    def apply(
        self,
        run_id: str,
        events: Sequence[StepEvent],
        run_update: RunUpdate | None = None,
        *,
        now: float,
        logs: Sequence[AttemptLog] = (),
    ) -> None:
        """Persist what attempts wrote, a batch of step events and a run change in one
        committed transaction.

        Args:
            run_id: the run the events belong to.
            events: creations (``pending``) and lifecycle transitions, in order.
            run_update: the run's new lifecycle, if it changed.
            now: the time stamped on every row written.
            logs: what attempts wrote, after each step's earlier entries.

        Raises:
            IllegalTransition: a move the lifecycle table forbids; nothing was written.
            NotFoundError: the run does not exist.
            StorageError: the database failed; nothing was written.
        """
        db = self.db
        writer = self._writer
        with db.lock:
            try:  # db.guard, inlined: this is every step's commit
                for attempt in range(3):
                    known = None if attempt else self._statuses.get(run_id)
                    if known is None:  # _known's own first look, inlined
                        known = self._known(run_id, reload=attempt > 0)
                    try:
                        plan = writer.plan(run_id, events, known, now)
                    except IllegalTransition:
                        if attempt:
                            raise
                        continue  # the map forgets ended steps: ask the database
                    seqs = self._seqs.get(run_id)  # loaded with ``known``
                    if seqs is None:
                        seqs = self._seqs[run_id] = {}
                    try:
                        created = db.write(writer.write, run_id, plan, run_update, now, logs,
                                           seqs)
                    except StaleStatuses:
                        continue
                    seqs.update(created)
                    for change in plan.changes.values():
                        if change.status in TERMINAL:  # no move leaves it: keep memory flat
                            known.pop(change.step_id, None)
                            seqs.pop(change.step_id, None)
                        else:
                            known[change.step_id] = change.status
                    if run_update is not None and run_update.status.terminal:
                        self._statuses.pop(run_id, None)
                        self._seqs.pop(run_id, None)
                    return
            except sqlite3.Error as exc:
                raise storage_error(self.path, f"saving steps of run {run_id}", exc) from exc
            raise StorageError(
                f"steps of run {run_id} in {self.path} keep changing under this process: "
                "another process is running the same run. Stop it, then resume."
            )

    def load_steps(self, run_id: str) -> list[PersistedStep]:
        """Every persisted step of a run in creation order, outputs as Payloads.

        ``error`` is the stored ``{message, stage, category, details}`` of a step in
        ``error`` (None otherwise, even when an earlier attempt failed and was retried).
        """
        sql = (
            "SELECT step_id, block_id, status, retry_count, outputs, control, reason, error, "
            "seq FROM steps WHERE run_id = ? ORDER BY seq"
        )
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
            self._seqs[run_id] = {r[0]: r[8] for r in rows if r[2] not in _ENDED}
        return steps

    def transitions(self, run_id: str, step_id: str | None = None) -> list[dict[str, Any]]:
        """The lifecycle audit trail of a run (or one step), oldest first.

        Transitions of one batch share their time; across steps they are listed in
        step creation order, within a step in the order they happened.
        """
        sql = (
            "SELECT t.step_id, t.status, t.at, t.retry_count, t.detail FROM transitions t "
            "JOIN steps s ON s.run_id = t.run_id AND s.step_id = t.step_id WHERE t.run_id = ?"
        )
        params: tuple[Any, ...] = (run_id,)
        if step_id is not None:
            sql, params = sql + " AND t.step_id = ?", (run_id, step_id)
        order = " ORDER BY t.at, s.seq, t.seq"
        with self.db.read(f"reading transitions of run {run_id}") as conn:
            rows = conn.execute(sql + order, params).fetchall()
        keys = ("step_id", "status", "at", "retry_count", "detail")
        return [dict(zip(keys, (*r[:4], loads(r[4])), strict=True)) for r in rows]

    # ------------------------------------------------------------------ lifetime

    def reader(self, organization_id: str | None = None) -> ReadAPI:
        """A :class:`store.api.ReadAPI` over this store."""
        from store.api import ReadAPI

        return ReadAPI(self, organization_id=organization_id)

    def close(self) -> None:
        """Close the connection (and remove the temporary file store of ``:memory:``)."""
        with self.db.lock:
            if self._checkpointer is not None:
                self._checkpointer.stop()
                self._checkpointer = None
            self.db.conn.close()
            if self._memory_files is not None:
                if self._memory_files.exists():
                    shutil.rmtree(self._memory_files)
                self._memory_files = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ status map

    def _known(self, run_id: str, *, reload: bool) -> dict[str, StepStatus]:
        known = self._statuses.get(run_id)
        if known is not None and not reload:
            return known
        conn = self.db.conn
        if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
            raise NotFoundError("run", run_id, "Create it with Store.create_run first.")
        rows = conn.execute("SELECT step_id, status, seq FROM steps WHERE run_id = ?",
                            (run_id,)).fetchall()
        known = {sid: StepStatus(status) for sid, status, _ in rows}
        self._statuses[run_id] = known
        self._seqs[run_id] = {sid: seq for sid, status, seq in rows if status not in _ENDED}
        return known

    def _forget_run(self, run_id: str) -> None:
        """Drop the status and ``seq`` maps of a deleted run."""
        self._statuses.pop(run_id, None)
        self._seqs.pop(run_id, None)
