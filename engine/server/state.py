"""What the app holds while it serves: the engine (and its store), readers, run threads.

Everything the routes write (runs, review decisions and versions, registered workflows)
goes through the engine's store, by the :class:`~engine.contracts.store.Store` protocol.

Runs created over HTTP execute in this process, each on its own thread with its own
event loop (:class:`RunSupervisor`), so a slow block never stalls request handling. A
new run arrives prepared (:meth:`engine.core.Engine.prepare`) and is executed as it is;
a run whose review was decided is continued with :meth:`engine.core.Engine.aresume`.
One thread per run at a time; a resume asked for while the run's thread is busy is
queued and done when it finishes.

Reads use one read-only SQLite connection per worker thread (:class:`Readers`); in WAL
mode they never wait for the writers of running workflows.

Orphans (:mod:`engine.orphans`) are recovered at start and then swept for every
``ServerConfig.orphan_sweep_s`` seconds while the server is up: a run whose owner died
(another process over the same database, or a run thread of this one that was lost) is
resumed here, or ended with the reason, instead of staying ``running``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass, field
from typing import Any

import anyio

from engine.contracts.errors import StepwellError, UsageError
from engine.contracts.store import ReadStore, Store
from engine.core import Engine
from engine.launch import PreparedRun
from engine.orphans import ACTIVE_STATUSES, Recovery, recover_orphans
from engine.queue import QueueDispatch
from engine.server.background import Background, Every
from engine.server.config import ServerConfig
from engine.server.security import policy_problems
from engine.server.shapes import owner_json, run_json
from store.api import ReadAPI, WorkflowRun
from store.connection import Database, storage_error
from store.files import LocalFileStore
from store.sqlite_reads import SQLiteReads

log = logging.getLogger("stepwell.server")


class RunSupervisor:
    """Executes runs in background threads of this process.

    Args:
        engine: the engine whose store holds the runs.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._again: set[str] = set()

    def drive(self, run_id: str, prepared: PreparedRun | None = None) -> str:
        """Execute ``prepared``, or continue ``run_id``, in the background.

        Args:
            run_id: the run.
            prepared: the run as :meth:`engine.core.Engine.prepare` returned it, for a
                new run; None to resume it from the database.

        Returns:
            ``resumed`` when a thread started now, ``pending`` when the run's thread is
            busy and will continue it when it finishes.
        """
        with self._lock:
            current = self._threads.get(run_id)
            if current is not None and current.is_alive():
                self._again.add(run_id)
                return "pending"
            thread = threading.Thread(target=self._loop, args=(run_id, prepared), daemon=True,
                                      name=f"stepwell-run-{run_id}")
            self._threads[run_id] = thread
            thread.start()
            return "resumed"

    def active(self) -> list[str]:
        """Ids of runs executing in this process now."""
        with self._lock:
            return [r for r, t in self._threads.items() if t.is_alive()]

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every run thread; True when none is left."""
        import time

        deadline = time.monotonic() + timeout
        for thread in list(self._threads.values()):
            thread.join(max(0.0, deadline - time.monotonic()))
        return not self.active()

    def _loop(self, run_id: str, prepared: PreparedRun | None) -> None:
        while True:
            try:
                fresh, prepared = prepared, None  # a queued repeat resumes from the database
                if fresh is not None:
                    anyio.run(self.engine.execute, fresh)
                else:
                    anyio.run(self.engine.aresume, run_id)
            except UsageError as exc:
                log.info("run %s not continued: %s", run_id, exc)
            except StepwellError:
                log.exception("run %s stopped on an error", run_id)
            except Exception:  # a thread must never die silently
                log.exception("run %s failed unexpectedly", run_id)
            with self._lock:
                if run_id not in self._again:
                    self._threads.pop(run_id, None)
                    return
                self._again.discard(run_id)


class Readers:
    """Read APIs over per-thread read-only connections to one database.

    Args:
        db_path: the database: a SQLite file, or a ``postgresql://`` URL (a read-only
            store per thread).
    """

    def __init__(self, db_path: str) -> None:
        from store.urls import Backend, parse_db

        self.db_path = db_path
        self.postgres = parse_db(db_path).backend is Backend.POSTGRESQL
        self.files = None if self.postgres else LocalFileStore.beside(db_path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[Any] = []

    def api(self, organization_id: str | None) -> ReadAPI:
        """A read API scoped to ``organization_id`` (None: every organization)."""
        reads = getattr(self._local, "reads", None)
        if reads is None:
            reads = self._local.reads = self._reads()
        return ReadAPI(reads, organization_id=organization_id)

    def _reads(self) -> Any:
        if self.postgres:
            from store.pg import PostgresStore

            store = PostgresStore(self.db_path, create=False)
            with self._lock:
                self._all.append(store)
            return store
        assert self.files is not None  # a SQLite database keeps its files beside it
        return SQLiteReads(Database(self._open(), self.db_path), self.files)

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.db_path, timeout=30.0, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA query_only = 1")
        except sqlite3.Error as exc:
            raise storage_error(self.db_path, "opening the database for reading", exc) from exc
        with self._lock:
            self._all.append(conn)
        return conn

    def open_reads(self) -> ReadStore:
        """A read store of its own, never shared with the worker threads (for a caller
        that compares :meth:`~engine.contracts.outline.OutlineStore.data_version`
        values, which are per connection)."""
        return self._reads()  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close every connection opened so far."""
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


class StoreReaders:
    """Read APIs straight over a store given to the server (one object, any thread).

    Args:
        store: the store; the caller keeps it (and closes it).
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def api(self, organization_id: str | None) -> ReadAPI:
        """A read API scoped to ``organization_id`` (None: every organization)."""
        return ReadAPI(self.store, organization_id=organization_id)

    def open_reads(self) -> ReadStore:
        """The store itself (its counters are one object's)."""
        return self.store

    def close(self) -> None:
        """Nothing to close: the store is the caller's."""


@dataclass(kw_only=True)
class ServerState:
    """Everything the routes use, on ``app.state.stepwell``."""

    config: ServerConfig
    engine: Engine
    supervisor: RunSupervisor | QueueDispatch
    readers: Readers | StoreReaders
    #: Eval runs executing after their request was answered.
    background: Background = field(default_factory=Background)
    #: The periodic orphan sweep, once started (:meth:`start_sweeps`).
    sweeper: Every | None = None
    #: Run id -> how often this server resumed it as an orphan.
    resumed: dict[str, int] = field(default_factory=dict)

    @property
    def store(self) -> Store:
        """The engine's store: runs, reviews and their versions, registered workflows."""
        return self.engine.store

    def reader(self, organization_id: str | None) -> ReadAPI:
        """A read API scoped to ``organization_id``."""
        return self.readers.api(organization_id)

    def driving(self) -> frozenset[str] | None:
        """Runs this server's threads execute now; None when workers execute them."""
        if isinstance(self.supervisor, QueueDispatch):
            return None
        return frozenset(self.supervisor.active())

    def run_json(self, api: ReadAPI, run: WorkflowRun) -> dict[str, Any]:
        """``run`` as served: Retab's shape, with ``stepwell_owner`` (alive or orphaned)
        when it should have a live owner."""
        if run.lifecycle.status not in ACTIVE_STATUSES:
            return run_json(run)
        return run_json(run, owner_json(api.run_record(run.id), self.driving()))

    def recover(self) -> list[Recovery]:
        """At start: kill the workers a dead server left, and resume (or end, with the
        reason) the runs whose owner process died (:mod:`engine.orphans`)."""
        if not isinstance(self.supervisor, QueueDispatch):
            self._end_interrupted_evals()
        return self.sweep()

    def sweep(self) -> list[Recovery]:
        """Kill the workers of dead hosts; resume (or end) the runs whose owner died.

        With workers (``--queue``) runs are left to them: they take orphans over when
        their lease runs out.
        """
        from blocks.sandbox import reap_workers

        reap_workers()
        if isinstance(self.supervisor, QueueDispatch):
            return []
        policy = self.config.policy

        def refusal(workflow: Any) -> str | None:
            problems = policy_problems(workflow, self.engine.registry, policy)
            return "; ".join(f"{p.path}: {p.message}" for p in problems) or None

        recovered = recover_orphans(self.engine, self.supervisor.drive, check=refusal,
                                    driving=self.driving(), resumed=self.resumed)
        for item in recovered:
            log.warning("run %s: %s", item.run_id, item.reason)
        return recovered

    def start_sweeps(self) -> None:
        """Sweep for orphans every ``config.orphan_sweep_s`` seconds (0: never)."""
        every = self.config.orphan_sweep_s
        if every > 0 and self.sweeper is None:
            self.sweeper = Every("stepwell-orphan-sweep", every, self.sweep)
            self.sweeper.start()

    def _end_interrupted_evals(self) -> None:
        """End the eval runs the last server left running (they ran on its threads)."""
        import time

        from engine.evals import end_interrupted

        orgs = sorted(set(self.config.api_keys.values()))
        for run_id in end_interrupted(self.store, orgs, time.time()):
            log.warning("eval run %s: ended, the server stopped while it ran", run_id)

    def close(self, wait_s: float = 5.0) -> None:
        """Wait a little for run threads, then release what can be released.

        Runs still executing keep their store; they can be resumed later with
        ``stepwell runs resume`` if the process exits under them (the next server start
        does it). Workers this process started are killed.
        """
        from blocks.sandbox import reap_workers

        if self.sweeper is not None:
            self.sweeper.stop(wait_s)
        idle = self.supervisor.join(wait_s) and self.background.join(wait_s)
        reap_workers(own=True)
        self.readers.close()
        if idle:
            self.engine.close()


def open_state(db: str | Store, config: ServerConfig,
               engine_options: dict[str, Any] | None = None, *, queue: bool = False
               ) -> ServerState:
    """Open the engine (creating the database when missing) and the read connections;
    with ``queue``, runs are left to workers (:class:`engine.queue.QueueDispatch`).

    ``db`` may also be a store object (a :class:`~store.memory.MemoryStore` in tests):
    the engine and every reader then use it, and it stays the caller's to close.
    """
    if not isinstance(db, str):
        engine = Engine(store=db, **(engine_options or {}))
        supervisor: RunSupervisor | QueueDispatch = (
            QueueDispatch(db) if queue else RunSupervisor(engine))
        return ServerState(config=config, engine=engine, supervisor=supervisor,
                           readers=StoreReaders(db))
    engine = Engine(db, **(engine_options or {}))
    if engine.store.in_memory:
        engine.close()
        raise UsageError("The HTTP server needs a database file, not ':memory:'. "
                         "Pass --db PATH.")
    supervisor = QueueDispatch(engine.store) if queue else RunSupervisor(engine)
    return ServerState(config=config, engine=engine, supervisor=supervisor,
                       readers=Readers(db))
