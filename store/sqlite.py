"""The SQLite store: every step transition committed before the next one starts.

Theory of operation
-------------------
The schema is declared in :mod:`store.models` and executed from its SQL rendering
(:mod:`store.layout`), so opening a database never imports the ORM. The hot path is
plain ``sqlite3``: :meth:`SQLiteStore.apply` plans a batch of
:class:`~engine.events.StepEvent` in Python, then writes it through one raw ``sqlite3``
connection in autocommit mode with an explicit ``BEGIN IMMEDIATE`` ... ``COMMIT`` and a
handful of prepared ``executemany`` statements.

1. **Plan** (no I/O but large-payload blobs). Events are folded per step: a ``pending``
   event creates a row, later events change columns; each event is also appended to
   the row's ``trail`` (the audit trail, read through the ``transitions`` view). Every move is checked against the lifecycle table
   (:func:`engine.values.check_move`) using an in-memory ``step_id -> status`` map per
   run, seeded from the database on first use. An illegal move raises
   :class:`~engine.errors.IllegalTransition` before anything is written.
2. **Write** in one transaction. Updates carry the status the plan started from
   (``WHERE ... AND status = ?``); if another process moved a step meanwhile the row
   counts disagree, the transaction rolls back, the map is reloaded and the batch is
   planned again. ``SQLITE_BUSY`` rolls back and retries the whole transaction until
   the busy timeout, so several processes can share one database file.

Payload storage: a sourced input is stored as ``{"ref": [step_id, handle]}`` (the
payload lives once, on the producer's outputs); JSON payloads over 256 KiB go to the
file store as ``{"blob": id}``. Both are resolved on read (:mod:`store.api`).

A step entering ``awaiting_review`` opens its review row (:mod:`store.reviews`) in the
same transaction.

Durability: ``process`` (``synchronous=NORMAL``) survives any process crash;
``full`` (``synchronous=FULL``) also survives power loss. Both run in WAL mode; WAL
checkpoints run mostly on a background thread (:class:`_Checkpointer`) so that no commit
pays for one.

Every ``sqlite3`` error is translated at this boundary into
:class:`~engine.errors.StorageError` naming the database file and the fix.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from store.layout import DDL, SCHEMA_VERSION, TRANSITIONS_VIEW
from blocks.base import FileStore
from engine.errors import (
    ConflictError,
    IllegalTransition,
    NotFoundError,
    StepwellError,
    StorageError,
)
from engine.events import InputRecord, NewRun, RunUpdate, StepErrorInfo, StepEvent
from engine.values import Payload, RunStatus, StepStatus, check_move
from store.base import PersistedRun, PersistedStep
from store.files import LocalFileStore
from store.reviews import Review, decide, get_review, list_reviews, open_review

if TYPE_CHECKING:
    from store.api import ReadAPI

#: JSON payloads whose encoding is larger than this are kept in the file store.
PAYLOAD_INLINE_LIMIT = 256 * 1024

_S = StepStatus
# Plain strings to bind: reading ``StepStatus.X.value`` costs an enum descriptor call.
_TEXT: dict[StepStatus, str] = {status: status.value for status in StepStatus}
_TERMINAL = frozenset({_S.COMPLETED, _S.SKIPPED, _S.ERROR, _S.CANCELLED})
_BUSY_CODES = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED


class Durability(StrEnum):
    """How much a commit survives: a process crash (``process``) or power loss (``full``)."""

    PROCESS = "process"
    FULL = "full"


def _json_default(value: Any) -> Any:
    if isinstance(value, Payload):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        to_dict = getattr(value, "to_dict", None)
        return to_dict() if callable(to_dict) else dataclasses.asdict(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, _dt.datetime | _dt.date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"a value of type {type(value).__name__} is not JSON")


def _make_encoder() -> Callable[[Any], str]:
    """A compact JSON encoder. The C encoder is built once here: ``JSONEncoder.encode``
    rebuilds it on every call, which triples the cost of encoding a small payload."""
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is None:  # pragma: no cover - CPython always has it
        encoder = json.JSONEncoder(separators=(",", ":"), default=_json_default)
        return encoder.encode
    iterencode = c_make_encoder(
        None, _json_default, json.encoder.encode_basestring_ascii, None, ":", ",",
        False, False, True,
    )

    def encode(value: Any) -> str:
        return "".join(iterencode(value, 0))

    return encode


_encode = _make_encoder()

# --------------------------------------------------------------------------- SQL

_STEP_COLUMNS = (
    "run_id, step_id, block_id, block_type, label, status, scope, retry_count, "
    "inputs, outputs, error, reason, artifact_id, artifact_operation, model, tokens, "
    "cost, trace_spans, control, created_at, queued_at, started_at, completed_at, "
    "updated_at, duration_ms, trail"
)
_INSERT_STEP = (
    f"INSERT INTO steps ({_STEP_COLUMNS}) VALUES ({', '.join('?' * 26)})"
)
# Mutable columns: given values win (COALESCE(?, col)); first queue/start times are kept.
_UPDATE_STEP = """
UPDATE steps SET status = ?1, retry_count = ?2, updated_at = ?3,
  queued_at = COALESCE(queued_at, ?4), started_at = COALESCE(started_at, ?5),
  completed_at = COALESCE(?6, completed_at),
  duration_ms = CASE WHEN ?6 IS NULL THEN duration_ms
    ELSE CAST(ROUND((?6 - COALESCE(started_at, ?5)) * 1000) AS INTEGER) END,
  inputs = COALESCE(?7, inputs), outputs = COALESCE(?8, outputs),
  error = COALESCE(?9, error), reason = COALESCE(?10, reason),
  artifact_id = COALESCE(?11, artifact_id),
  artifact_operation = COALESCE(?12, artifact_operation),
  model = COALESCE(?13, model), tokens = COALESCE(?14, tokens), cost = COALESCE(?15, cost),
  trace_spans = COALESCE(?16, trace_spans), control = COALESCE(?17, control),
  trail = trail || ?21
WHERE run_id = ?18 AND step_id = ?19 AND status = ?20
"""
_UPSERT_ARTIFACT = (
    "INSERT OR REPLACE INTO artifacts (id, run_id, step_id, operation, record, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_RUN = """
INSERT INTO runs (id, workflow_id, workflow_name, workflow_digest, definition, inputs,
  metadata, organization_id, "trigger", status, owner_pid, heartbeat_at, cancel_requested,
  parent_run_id, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, 0, ?, ?, ?)
"""
_UPDATE_RUN = """
UPDATE runs SET status = ?1, updated_at = ?2,
  started_at = CASE WHEN ?1 = 'running' THEN COALESCE(started_at, ?2) ELSE started_at END,
  completed_at = ?3, failing_step_id = ?4, error = ?5, reason = ?6, waiting_for = ?7,
  outputs = COALESCE(?8, outputs)
WHERE id = ?9
"""

@dataclass(slots=True)
class _StepChange:
    """What one batch does to one step.

    ``before`` is the status the batch started from, None for a step created in it.
    ``cols`` is then either the full INSERT row (``_STEP_COLUMNS`` order) or the
    ``_UPDATE_STEP`` parameters ``?1..?17``; in both, the optional columns from
    ``inputs`` to ``control`` sit in the same order (see ``_fold_fields``). ``trail``
    collects the batch's transitions as JSON array texts.
    """

    step_id: str
    before: StepStatus | None
    status: StepStatus
    cols: list[Any]
    trail: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Plan:
    changes: dict[str, _StepChange] = field(default_factory=dict)
    artifacts: list[tuple[Any, ...]] = field(default_factory=list)
    reviews: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)


class _StaleStatuses(Exception):
    """The in-memory status map disagreed with the database; reload and plan again."""


class _Checkpointer:
    """Does most of the WAL checkpointing off the commit path.

    SQLite's automatic checkpoint runs inside whichever commit pushes the WAL past 1000
    pages, turning one commit in a hundred or so into a multi-millisecond stall. Here a
    daemon thread with its own connection runs a ``PASSIVE`` checkpoint (it copies pages
    while writers go on, and never waits for a lock) every ``every`` commits and at
    least once a second. When the writer's automatic checkpoint comes due, nearly every
    page has been copied already: it only finishes the tail and rewinds the WAL, so the
    file is reused instead of growing.
    """

    def __init__(self, path: str, every: int = 50) -> None:
        self.path = path
        self.every = every
        self._commits = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(
            target=self._loop, name="stepwell-wal-checkpoint", daemon=True
        )
        self._thread.start()

    def committed(self) -> None:
        """Count a commit; wake the thread every ``every`` commits."""
        self._commits += 1
        if self._commits >= self.every:
            self._commits = 0
            self._wake.set()

    def _loop(self) -> None:
        conn = sqlite3.connect(self.path, timeout=0, isolation_level=None,
                               check_same_thread=False)
        try:
            while not self._stopping:
                self._wake.wait(timeout=1.0)
                self._wake.clear()
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    # A checkpoint only bounds the WAL's size; one that found the
                    # database busy is simply tried again next round.
                    continue
        finally:
            conn.close()

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=10)


class SQLiteStore:
    """The SQLite implementation of :class:`store.base.Store`.

    Args:
        path: database file (created with its folder if missing) or ``':memory:'``.
        durability: ``'process'`` (default, ``synchronous=NORMAL``) or ``'full'``.
        files: file store; defaults to ``<path>.files/`` (a temporary folder for
            ``':memory:'``, removed by :meth:`close`).
        busy_timeout: seconds to wait for another process's write lock.

    Raises:
        StorageError: the file cannot be opened or written; the message says what to do.
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
        self.durability = Durability(durability)
        self.busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._statuses: dict[str, dict[str, StepStatus]] = {}
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        #: Files and large-payload blobs (``<path>.files/``), precisely typed.
        self.local_files: LocalFileStore = files or self._default_files()
        #: The same store, as the :class:`store.base.Store` protocol declares it.
        self.files: FileStore = self.local_files
        self._checkpointer: _Checkpointer | None = None
        with self._guard("opening the database"):
            self._conn = self._connect()
            try:
                self._create_schema()
            except BaseException:
                self._conn.close()
                raise
        self._checkpointer = None if self.in_memory else _Checkpointer(self.path)

    # ------------------------------------------------------------------ setup

    @property
    def in_memory(self) -> bool:
        """True for a ``':memory:'`` database."""
        return self.path == ":memory:" or self.path.startswith("file::memory:")

    def _default_files(self) -> LocalFileStore:
        if self.in_memory:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="stepwell-files-")
            return LocalFileStore(self._tmpdir.name)
        return LocalFileStore.beside(self.path)

    def _connect(self) -> sqlite3.Connection:
        if not self.in_memory:
            self._make_parent()
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None,
            check_same_thread=False, cached_statements=256,
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        if not self.in_memory:
            self._retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone())
        sync = "FULL" if self.durability is Durability.FULL else "NORMAL"
        conn.execute(f"PRAGMA synchronous = {sync}")
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("PRAGMA cache_size = -65536")  # 64 MiB
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA wal_autocheckpoint = 1000")  # mostly done by _Checkpointer
        return conn

    def _make_parent(self) -> None:
        parent = Path(self.path).parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot write {self.path}: cannot create its folder {parent} "
                f"({exc.strerror}); choose a writable --db path."
            ) from exc

    def _create_schema(self) -> None:
        """Create what is missing of :data:`store.layout.DDL` in one transaction."""
        conn = self._conn
        self._check_layout(conn)
        if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return

        def create(c: sqlite3.Connection) -> None:
            for statement in (*DDL, TRANSITIONS_VIEW):
                c.execute(statement)
            c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

        self._write(create)

    def _check_layout(self, conn: sqlite3.Connection) -> None:
        """Refuse a database written with another layout instead of misreading it."""
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        kinds = dict(conn.execute(
            "SELECT name, type FROM sqlite_master WHERE name IN ('steps', 'transitions')"))
        old = version not in (0, SCHEMA_VERSION) or kinds.get("transitions") == "table"
        if not old and "steps" in kinds:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(steps)")}
            old = "trail" not in columns
        if old:
            raise StorageError(
                f"{self.path} was written by a stepwell with another storage layout "
                f"(version {version or 1}, this one reads {SCHEMA_VERSION}). Open it with "
                "the stepwell that wrote it, or point --db / STEPWELL_DB at a new file."
            )

    # ------------------------------------------------------------------ error boundary

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Translate database errors into StorageError naming the file and the fix."""
        try:
            yield
        except StepwellError:
            raise
        except sqlite3.Error as exc:
            raise storage_error(self.path, action, exc) from exc

    def _retry_busy(self, fn: Any) -> Any:
        """Call ``fn``; on SQLITE_BUSY/LOCKED retry with backoff until the busy timeout."""
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.001
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if _errcode(exc) not in _BUSY_CODES or time.monotonic() >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _write(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(conn, *args)`` in one IMMEDIATE transaction and commit.

        The busy timeout makes ``BEGIN IMMEDIATE`` wait for another process's write
        lock; a ``SQLITE_BUSY`` that still gets through (lock upgrades, WAL recovery)
        rolls back and retries the whole transaction until the busy timeout. Any other
        error rolls back and propagates. Written without context managers or closures:
        this is the hot path of every step transition.
        """
        conn = self._conn
        deadline = 0.0
        delay = 0.001
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn, *args)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                break
            except sqlite3.OperationalError as exc:
                if _errcode(exc) not in _BUSY_CODES:
                    raise
                now = time.monotonic()
                deadline = deadline or now + self.busy_timeout
                if now >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        if self._checkpointer is not None:
            self._checkpointer.committed()
        return result

    # ------------------------------------------------------------------ runs

    def create_run(self, run: NewRun, *, now: float) -> None:
        """Insert the run row (status ``pending``, owned by this process, heartbeat now).

        Raises:
            ConflictError: a run with this id exists.
            StorageError: the database cannot be written.
        """
        params = (
            run.run_id, run.workflow_id, run.workflow_name, run.workflow_digest,
            _dumps(run.definition, "definition", run.run_id),
            _dumps(run.inputs, "inputs", run.run_id), _dumps(run.metadata, "metadata", run.run_id),
            run.organization_id, run.trigger, os.getpid(), now, run.parent_run_id, now, now,
        )
        with self._lock, self._guard(f"creating run {run.run_id}"):
            try:
                self._write(_execute, _INSERT_RUN, params)
            except sqlite3.IntegrityError:
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
        sql = (
            "SELECT id, workflow_id, status, definition, inputs, workflow_digest, "
            "organization_id, owner_pid, heartbeat_at, cancel_requested FROM runs WHERE id = ?"
        )
        with self._lock, self._guard(f"reading run {run_id}"):
            row = self._conn.execute(sql, (run_id,)).fetchone()
        if row is None:
            raise NotFoundError("run", run_id)
        return PersistedRun(
            run_id=row[0], workflow_id=row[1], status=RunStatus(row[2]),
            definition=_loads(row[3]) or {}, inputs=_loads(row[4]) or {},
            workflow_digest=row[5], organization_id=row[6], owner_pid=row[7],
            heartbeat_at=row[8], cancel_requested=bool(row[9]),
        )

    def heartbeat(self, run_id: str, now: float) -> None:
        """Record that the owning process is alive."""
        self._set_run(run_id, "heartbeat_at = ?", (now,))

    def set_owner(self, run_id: str, pid: int, now: float) -> None:
        """Make ``pid`` the run's owner (on resume), with a fresh heartbeat."""
        self._set_run(run_id, "owner_pid = ?, heartbeat_at = ?", (pid, now))

    def claim_owner(self, run_id: str, pid: int, now: float, *, seen_pid: int | None,
                    seen_heartbeat: float | None) -> bool:
        """Make ``pid`` the owner only if owner and heartbeat are still those seen
        (compare-and-set): of two processes resuming one run, one wins."""
        sql = ("UPDATE runs SET owner_pid = ?, heartbeat_at = ? WHERE id = ? AND "
               "owner_pid IS ? AND heartbeat_at IS ?")
        with self._lock, self._guard(f"claiming run {run_id}"):
            cur = self._write(_execute, sql, (pid, now, run_id, seen_pid, seen_heartbeat))
        return bool(cur.rowcount)

    def request_cancel(self, run_id: str, reason: str = "cancelled by request") -> None:
        """Flag the run for cancellation with ``reason``; its owner polls
        :meth:`cancel_requested` and ends the run with that reason."""
        self._set_run(run_id, "cancel_requested = 1, reason = ?", (reason,))

    def cancel_requested(self, run_id: str) -> str | None:
        """The reason of the cancel request made for the run (by any process), or None."""
        with self._lock, self._guard(f"reading run {run_id}"):
            row = self._conn.execute(
                "SELECT cancel_requested, reason FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
        if row is None:
            raise NotFoundError("run", run_id)
        return (row[1] or "cancelled by request") if row[0] else None

    def _set_run(self, run_id: str, assignments: str, params: tuple[Any, ...]) -> None:
        sql = f"UPDATE runs SET {assignments} WHERE id = ?"
        with self._lock, self._guard(f"updating run {run_id}"):
            cur = self._write(_execute, sql, (*params, run_id))
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
    ) -> None:
        """Persist a batch of step events (and a run change) in one committed transaction.

        Args:
            run_id: the run the events belong to.
            events: creations (``pending``) and lifecycle transitions, in order.
            run_update: the run's new lifecycle, if it changed.
            now: the time stamped on every row written.

        Raises:
            IllegalTransition: a move the lifecycle table forbids; nothing was written.
            NotFoundError: the run does not exist.
            StorageError: the database failed; nothing was written.
        """
        with self._lock, self._guard(f"saving steps of run {run_id}"):
            for attempt in range(3):
                known = self._known(run_id, reload=attempt > 0)
                plan = self._plan(run_id, events, known, now)
                try:
                    self._write(self._write_plan, run_id, plan, run_update, now)
                except _StaleStatuses:
                    continue
                for change in plan.changes.values():
                    known[change.step_id] = change.status
                if run_update is not None and run_update.status.terminal:
                    self._statuses.pop(run_id, None)
                return
            raise StorageError(
                f"steps of run {run_id} in {self.path} keep changing under this process: "
                "another process is running the same run. Stop it, then resume."
            )

    def load_steps(self, run_id: str) -> list[PersistedStep]:
        """Every persisted step of a run in creation order, outputs as Payloads.

        ``error`` is the stored ``{message, stage, category, details}`` of a step in
        ``error`` (None otherwise, even when an earlier attempt failed and was retried).
        """
        from store.api import inline_blobs

        sql = (
            "SELECT step_id, block_id, status, retry_count, outputs, control, reason, error "
            "FROM steps WHERE run_id = ? ORDER BY seq"
        )
        with self._lock, self._guard(f"reading steps of run {run_id}"):
            rows = self._conn.execute(sql, (run_id,)).fetchall()
        steps = [
            PersistedStep(
                step_id=r[0], block_id=r[1], status=StepStatus(r[2]), retry_count=r[3],
                outputs=self._decode_outputs(r[4]),
                control=inline_blobs(_loads(r[5]), self.local_files), reason=r[6],
                error=_loads(r[7]) if r[2] == "error" else None,
            )
            for r in rows
        ]
        self._statuses[run_id] = {s.step_id: s.status for s in steps}
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
        with self._lock, self._guard(f"reading transitions of run {run_id}"):
            rows = self._conn.execute(sql + order, params).fetchall()
        keys = ("step_id", "status", "at", "retry_count", "detail")
        return [dict(zip(keys, (*r[:4], _loads(r[4])), strict=True)) for r in rows]

    # ------------------------------------------------------------------ reviews

    def reviews(
        self, *, run_id: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[Review]:
        """Reviews, newest first, optionally of one run and one status (``pending``,
        ``approved``, ``rejected``). One is opened when a step enters ``awaiting_review``."""
        with self._lock, self._guard("listing reviews"):
            return list_reviews(self._conn, run_id=run_id, status=status, limit=limit)

    def review(self, review_id: str) -> Review:
        """One review. Raises NotFoundError."""
        with self._lock, self._guard(f"reading review {review_id}"):
            return get_review(self._conn, review_id)

    def decide_review(
        self, review_id: str, *, approved: bool, data: Any = None, has_data: bool = False,
        reason: str = "", now: float,
    ) -> tuple[Review, bool]:
        """Record a decision (committed). Returns the review and whether it changed.

        Raises:
            NotFoundError: no such review.
            ConflictError: it was already decided differently.
            UsageError: a rejection with corrected data.
        """
        with self._lock, self._guard(f"deciding review {review_id}"):
            result: tuple[Review, bool] = self._write(
                _decide, review_id, approved, data, has_data, reason, now)
            return result

    def reader(self, organization_id: str | None = None) -> ReadAPI:
        """A :class:`store.api.ReadAPI` over this store's connection (same lock)."""
        from store.api import ReadAPI

        return ReadAPI(self._conn, self.local_files, organization_id=organization_id,
                       lock=self._lock, db_path=self.path)

    def close(self) -> None:
        """Close the connection (and remove the temporary file store of ``:memory:``)."""
        with self._lock:
            if self._checkpointer is not None:
                self._checkpointer.stop()
                self._checkpointer = None
            self._conn.close()
            if self._tmpdir is not None:
                self._tmpdir.cleanup()
                self._tmpdir = None

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ planning

    def _known(self, run_id: str, *, reload: bool) -> dict[str, StepStatus]:
        known = self._statuses.get(run_id)
        if known is not None and not reload:
            return known
        conn = self._conn
        if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
            raise NotFoundError("run", run_id, "Create it with Store.create_run first.")
        rows = conn.execute("SELECT step_id, status FROM steps WHERE run_id = ?", (run_id,))
        known = {sid: StepStatus(status) for sid, status in rows}
        self._statuses[run_id] = known
        return known

    def _plan(
        self, run_id: str, events: Sequence[StepEvent], known: Mapping[str, StepStatus],
        now: float,
    ) -> _Plan:
        plan = _Plan()
        changes = plan.changes
        for ev in events:
            sid = ev.step_id
            change = changes.get(sid)
            current = change.status if change is not None else known.get(sid)
            if ev.status is _S.PENDING:
                if current is not None:
                    raise IllegalTransition(sid, current.value, "pending")
                change = changes[sid] = _new_row(run_id, ev, now)
            else:
                if current is None:
                    raise IllegalTransition(sid, "not created", ev.status.value)
                check_move(sid, current, ev.status)
                if change is None:
                    change = changes[sid] = _StepChange(sid, current, ev.status, [None] * 17)
            change.status = ev.status
            detail = self._fold(run_id, change, ev, now, plan)
            if ev.status is _S.AWAITING_REVIEW:
                plan.reviews.append((sid, ev.block_id, _review_data(ev)))
            change.trail.append(
                f'["{_TEXT[ev.status]}",{now!r},{ev.retry_count},{detail or "null"}]')
        return plan

    def _fold(
        self, run_id: str, change: _StepChange, ev: StepEvent, now: float, plan: _Plan
    ) -> str | None:
        """Fold one event into the step's change; return the transition's detail JSON."""
        if change.before is None:
            return self._fold_row(run_id, change, ev, now, plan)
        cols = change.cols
        cols[0], cols[1], cols[2] = _TEXT[ev.status], ev.retry_count, now
        status = ev.status
        if status is _S.QUEUED and cols[3] is None:
            cols[3] = now
        elif status is _S.RUNNING and cols[4] is None:
            cols[4] = now
        elif status in _TERMINAL:
            cols[5] = now
        return self._fold_fields(run_id, change, ev, now, plan, cols, 6)

    def _fold_row(
        self, run_id: str, change: _StepChange, ev: StepEvent, now: float, plan: _Plan
    ) -> str | None:
        """Same as :meth:`_fold` for a step created in this batch (full INSERT row)."""
        row = change.cols
        row[5], row[7], row[23] = _TEXT[ev.status], ev.retry_count, now
        status = ev.status
        if status is _S.QUEUED and row[20] is None:
            row[20] = now
        elif status is _S.RUNNING and row[21] is None:
            row[21] = now
        elif status in _TERMINAL:
            row[22] = now
            start = row[21]
            row[24] = None if start is None else int(round((now - start) * 1000))
        return self._fold_fields(run_id, change, ev, now, plan, row, 8)

    def _fold_fields(
        self, run_id: str, change: _StepChange, ev: StepEvent, now: float, plan: _Plan,
        cols: list[Any], base: int,
    ) -> str | None:
        """Set the optional columns, laid out identically from ``base`` in both rows:
        inputs, outputs, error, reason, artifact_id, artifact_operation, model, tokens,
        cost, trace_spans, control."""
        error: str | None = None
        if ev.inputs is not None:
            cols[base] = self._encode_inputs(ev.inputs, ev.step_id)
        if ev.outputs is not None:
            outputs = {h: p.to_dict() for h, p in ev.outputs.items()}
            cols[base + 1] = self._encode_map(outputs, "outputs", ev.step_id)
        if ev.error is not None:
            error = _dumps(_error_json(ev.error, ev.block_id, ev.label), "error", ev.step_id)
            cols[base + 2] = error
        if ev.reason is not None:
            cols[base + 3] = ev.reason
        if ev.artifact is not None:
            art_id, operation = self._plan_artifact(run_id, ev, now, plan)
            cols[base + 4], cols[base + 5] = art_id, operation
        if ev.model is not None:
            cols[base + 6] = ev.model
        if ev.tokens is not None:
            cols[base + 7] = self._encode_value(ev.tokens, "tokens", ev.step_id)
        if ev.cost is not None:
            cols[base + 8] = self._encode_value(ev.cost, "cost", ev.step_id)
        if ev.trace_spans is not None:
            cols[base + 9] = self._encode_value(ev.trace_spans, "trace_spans", ev.step_id)
        if ev.control is not None:
            cols[base + 10] = self._encode_value(ev.control, "control", ev.step_id)
        return _detail(error, ev.reason)

    def _plan_artifact(
        self, run_id: str, ev: StepEvent, now: float, plan: _Plan
    ) -> tuple[str, str]:
        assert ev.artifact is not None
        operation = ev.artifact.get("operation")
        if not isinstance(operation, str) or not operation:
            raise StorageError(
                f"the artifact of step {ev.step_id!r} has no 'operation': block handlers "
                "must return artifact={'operation': <name>, ...}."
            )
        key = f"{run_id}\x00{ev.step_id}\x00{ev.retry_count}".encode()
        art_id = "art_" + hashlib.sha256(key).hexdigest()[:12]
        record = self._encode_value(ev.artifact, "artifact", ev.step_id)
        plan.artifacts.append((art_id, run_id, ev.step_id, operation, record, now))
        return art_id, operation

    # ------------------------------------------------------------------ writing

    def _write_plan(
        self, conn: sqlite3.Connection, run_id: str, plan: _Plan,
        run_update: RunUpdate | None, now: float,
    ) -> None:
        inserts = []
        updates = []
        for c in plan.changes.values():
            if c.before is None:
                c.cols[25] = ",".join(c.trail)
                inserts.append(c.cols)
            else:
                updates.append((*c.cols, run_id, c.step_id, _TEXT[c.before],
                                "," + ",".join(c.trail)))
        if inserts:
            try:
                conn.executemany(_INSERT_STEP, inserts)
            except sqlite3.IntegrityError as exc:
                raise _StaleStatuses from exc
        if updates and conn.executemany(_UPDATE_STEP, updates).rowcount != len(updates):
            raise _StaleStatuses
        if plan.artifacts:
            conn.executemany(_UPSERT_ARTIFACT, plan.artifacts)
        for step_id, block_id, data in plan.reviews:
            open_review(conn, run_id, step_id, block_id, data, now)
        if run_update is not None:
            self._write_run_update(conn, run_id, run_update, now)

    def _write_run_update(
        self, conn: sqlite3.Connection, run_id: str, update: RunUpdate, now: float
    ) -> None:
        status = update.status
        error = None
        if update.error is not None:
            block_id, label = _step_identity(conn, run_id, update.failing_step_id)
            error = _dumps(_error_json(update.error, block_id, label), "error", run_id)
        waiting = update.waiting_for_block_ids if status is RunStatus.AWAITING_REVIEW else None
        outputs = (None if update.outputs is None
                   else self._encode_map(update.outputs, "outputs", run_id))
        params = (
            status.value, now, now if status.terminal else None, update.failing_step_id,
            error, update.reason, None if waiting is None else _encode(waiting), outputs, run_id,
        )
        if conn.execute(_UPDATE_RUN, params).rowcount == 0:
            raise NotFoundError("run", run_id)

    # ------------------------------------------------------------------ payload codec

    def _encode_inputs(self, inputs: Mapping[str, InputRecord], step_id: str) -> str:
        out: dict[str, Any] = {}
        for handle, rec in inputs.items():
            if rec.source_step is not None:
                out[handle] = {"ref": [rec.source_step, rec.source_handle or handle]}
            else:
                out[handle] = rec.payload.to_dict()
        return self._encode_map(out, "inputs", step_id)

    def _encode_map(self, values: dict[str, Any], what: str, owner: str) -> str:
        """Encode a handle map; entries over the inline limit become ``{"blob": id}``."""
        text = _dumps(values, what, owner)
        if len(text) <= PAYLOAD_INLINE_LIMIT:
            return text
        slim = {}
        for key, value in values.items():
            encoded = _encode(value)
            if len(encoded) > PAYLOAD_INLINE_LIMIT:
                slim[key] = {"blob": self.local_files.put_json_blob(encoded.encode())}
            else:
                slim[key] = value
        return _encode(slim)

    def _encode_value(self, value: Any, what: str, owner: str) -> str:
        """Encode a whole JSON column, moved to a blob when over the inline limit."""
        text = _dumps(value, what, owner)
        if len(text) > PAYLOAD_INLINE_LIMIT:
            return _encode({"blob": self.local_files.put_json_blob(text.encode())})
        return text

    def _decode_outputs(self, raw: str | None) -> dict[str, Payload]:
        from store.api import inline_blobs

        values = _loads(raw) or {}
        return {h: Payload.from_dict(inline_blobs(v, self.local_files)) for h, v in values.items()}


# --------------------------------------------------------------------------- helpers


def _new_row(run_id: str, ev: StepEvent, now: float) -> _StepChange:
    """The INSERT parameters of a step created now (``seq``, the rowid, is assigned)."""
    scope = _encode([f.to_dict() for f in ev.scope]) if ev.scope else "[]"
    row: list[Any] = [
        run_id, ev.step_id, ev.block_id, ev.block_type, ev.label, "pending", scope,
        ev.retry_count, None, None, None, None, None, None, None, None, None, None, None,
        now, None, None, None, now, None, "",
    ]
    return _StepChange(ev.step_id, None, _S.PENDING, row)


def _review_data(ev: StepEvent) -> dict[str, Any]:
    """What a reviewer decides on: the proposed outputs and why review was asked."""
    outputs = {h: p.to_dict() for h, p in (ev.outputs or {}).items()}
    return {"outputs": outputs, "review": (ev.control or {}).get("review")}


def _dumps(value: Any, what: str, owner: str) -> str:
    """Encode ``value``; a value JSON cannot hold is a StorageError naming its owner."""
    try:
        return _encode(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise StorageError(
            f"cannot store the {what} of {owner!r}: {exc}. Blocks must return "
            "JSON-compatible data (dict, list, str, int, float, bool, None); files go "
            "through the file store as FileRefs."
        ) from exc


def _detail(error: str | None, reason: str | None) -> str | None:
    """The transition's ``detail``: the error and/or reason given with it."""
    if error is None:
        return None if reason is None else _encode({"reason": reason})
    if reason is None:
        return '{"error":' + error + "}"
    return '{"error":' + error + ',"reason":' + _encode(reason) + "}"


def _error_json(info: StepErrorInfo, block_id: str, label: str) -> dict[str, Any]:
    return {
        "message": info.message,
        "stage": str(info.stage),
        "category": str(info.category),
        "details": info.details(block_id, label),
    }


def _step_identity(conn: sqlite3.Connection, run_id: str, step_id: str | None) -> tuple[str, str]:
    if step_id is None:
        return "", ""
    row = conn.execute(
        "SELECT block_id, label FROM steps WHERE run_id = ? AND step_id = ?", (run_id, step_id)
    ).fetchone()
    return (row[0], row[1]) if row else (step_id, step_id)


def _execute(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> sqlite3.Cursor:
    return conn.execute(sql, params)


def _decide(conn: sqlite3.Connection, review_id: str, approved: bool, data: Any,
            has_data: bool, reason: str, now: float) -> tuple[Review, bool]:
    return decide(conn, review_id, approved=approved, data=data, has_data=has_data,
                          reason=reason, now=now)


def _loads(raw: str | None) -> Any:
    return None if raw is None else json.loads(raw)


def _errcode(exc: sqlite3.Error) -> int:
    return int(getattr(exc, "sqlite_errorcode", 0)) & 0xFF


def storage_error(path: str, action: str, exc: BaseException) -> StorageError:
    """A StorageError for ``exc`` that names the database file and what to do next."""
    code = _errcode(exc) if isinstance(exc, sqlite3.Error) else 0
    text = str(exc)
    lowered = text.lower()
    if code in (3, 8, 14, 23) or "readonly" in lowered or "unable to open" in lowered:
        return StorageError(
            f"cannot write {path} ({text}) while {action}: choose a writable --db path "
            "(the folder must allow creating the -wal and -shm files beside the database)."
        )
    if code == 13:
        return StorageError(f"disk full writing {path} while {action}: free space or "
                            "choose another --db path.")
    if code in (11, 26):
        return StorageError(f"{path} is not a stepwell database or is damaged ({text}): "
                            "restore it from a backup or choose another --db path.")
    if code in _BUSY_CODES:
        return StorageError(f"{path} stayed locked by another process while {action}: "
                            "retry, or raise the busy timeout.")
    return StorageError(f"database error on {path} while {action}: {text}. "
                        "Check the file, or choose another --db path.")
