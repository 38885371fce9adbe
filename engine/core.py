"""The Engine: the public entry point for running workflows from Python.

``Engine(db)`` runs on a SQLite file (WAL), ``Engine(store=...)`` on any
:class:`~engine.contracts.store.Store`. ``engine.run(...)`` is the synchronous wrapper of
``await engine.arun(...)``; ``await engine.start(...)`` returns a
:class:`~engine.handle.RunHandle` at once (await, stream, cancel). Every execution is
prepared once (:meth:`Engine.prepare`, :meth:`Engine.prepare_resume`: see
:mod:`engine.launch`) and run by :meth:`Engine.execute`. Durable operations (resume,
cancel, review decisions, rerun) work from the database, from any process.

Sharing: one Engine may run many runs at once, from one event loop (``start``) or from
several threads (``run``); its store serialises writes on one connection. Engines on
different databases are independent. Several processes may share one database file.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import anyio
from anyio.abc import TaskGroup

from blocks.registry import BlockRegistry, default_registry
from engine import durable, launch
from engine.compiled import CompiledGraph
from engine.contracts.bounded import MAX_REASON_CHARS, check_json, clean_text
from engine.contracts.errors import Diagnostic, UsageError
from engine.contracts.store import Store, check_durability
from engine.definition import Workflow, load_workflow
from engine.graph import compile_shared, compile_workflow, validate_workflow
from engine.launch import PreparedRun, RunOrigin, RunResult
from engine.options import (
    ExecutionOptions,
    RetryPolicy,
    RunEnvironment,
    db_path,
    model_provider,
)
from engine.replay import Replay
from engine.runner import Listener, Runner
from engine.storage import StoreSlot

if TYPE_CHECKING:
    from engine.contracts.records import Review
    from engine.handle import RunHandle

__all__ = ["Engine", "RunResult"]

#: What a run can be started from: a definition, a workflow file, or a compiled graph.
WorkflowSource = Workflow | str | Path | CompiledGraph


def builtin_registry() -> BlockRegistry:
    """A new registry of every built-in block type, what an Engine gets by default.

    Each is a copy (:meth:`~blocks.registry.BlockRegistry.copy`) of one registry this
    process fills once, so an Engine does not register the built-in set again; the copy
    is the Engine's own (types registered on it, or loaded by it, stay there).

    Returns:
        A registry no one else holds.
    """
    if not _BUILTIN:
        with _BUILTIN_LOCK:
            if not _BUILTIN:
                _BUILTIN.append(default_registry())
    return _BUILTIN[0].copy()


#: The registry :func:`builtin_registry` copies; nothing registers on it or loads from it.
_BUILTIN: list[BlockRegistry] = []
_BUILTIN_LOCK = threading.Lock()


class Engine:
    """Runs workflows locally and persists every step.

    Args:
        db: SQLite database path (``:memory:`` for an in-memory store).
        store: run against this store instead of opening ``db`` (any implementation of
            :class:`~engine.contracts.store.Store`); the caller keeps it and closes it.
        registry: block types; defaults to every built-in type (a registry of this
            engine's own: :func:`builtin_registry`).
        durability: ``process`` (default, survives process crashes), ``full``
            (synchronous=FULL, survives power loss) or ``scratch`` (no fsync: survives
            process crashes, but an operating system crash can corrupt the file; for
            databases thrown away afterwards, such as a test's).
        max_concurrency: block handlers running at once per run.
        retry: default retry policy for transient and quota errors.
        env: environment for ``${NAME}`` substitution and secrets (defaults to
            ``os.environ``), or a function of the organization id returning that
            organization's environment (a shared server gives each its own secrets).
        services: extra services handed to blocks (``model_provider``, ...).
        organization_id: owner of the runs this engine creates.
        provider: the model provider of every step (sets ``services["model_provider"]``):
            a provider instance, a name (``offline``, ``openai``), or a mapping, which
            becomes a :class:`~blocks.providers.scripted.ScriptedProvider` script.
        stubs: ``{block_id_or_step_id: stub}``: those steps answer from the stub instead
            of running (see :mod:`engine.stubs`; for tests). Also settable later as
            ``engine.stubs``.
        executor: where attempts of work blocks run: None (in this process) or an
            executor such as :class:`~engine.executors.DaskExecutor`.

    Raises:
        UsageError: ``provider`` names no known provider, both ``db`` and ``store``
            were given, or ``durability`` is not one of ``process``, ``full`` and
            ``scratch``.
    """

    def __init__(
        self,
        db: str | Path | None = None,
        *,
        store: Store | None = None,
        registry: BlockRegistry | None = None,
        durability: str = "process",
        max_concurrency: int = 8,
        retry: RetryPolicy | None = None,
        env: RunEnvironment | None = None,
        services: Mapping[str, Any] | None = None,
        organization_id: str = "org_local",
        provider: Any = None,
        stubs: Mapping[str, Any] | None = None,
        executor: Any = None,
    ) -> None:
        if store is not None and db is not None:
            raise UsageError("Engine(db, store=...) got both; pass a database path or a store.")
        self.db: str | None = None if store is not None else db_path(db)
        self.registry = registry or builtin_registry()
        self.durability = check_durability(durability)
        self.max_concurrency = max_concurrency
        self.retry = retry or RetryPolicy()
        self.env = env
        self.services = dict(services or {})
        if provider is not None:
            from blocks.providers import MODEL_PROVIDER_SERVICE

            self.services[MODEL_PROVIDER_SERVICE] = model_provider(
                provider, env if isinstance(env, Mapping) else None)
        self.stubs: dict[str, Any] = dict(stubs or {})
        self.organization_id = organization_id
        self.executor = executor
        self._slot = StoreSlot(self.db, store, durability)

    # ------------------------------------------------------------------ definitions

    def load(self, workflow: Workflow | str | Path) -> Workflow:
        """A Workflow from a path, or the workflow itself."""
        return workflow if isinstance(workflow, Workflow) else load_workflow(workflow)

    def validate(self, workflow: Workflow | str | Path) -> list[Diagnostic]:
        """Every problem of ``workflow`` (empty when valid); nothing runs."""
        return validate_workflow(self.load(workflow), self.registry)

    def compile(self, workflow: Workflow | str | Path) -> CompiledGraph:
        """Validate and compile. Raises WorkflowValidationError listing every problem."""
        return compile_workflow(self.load(workflow), self.registry)

    # ------------------------------------------------------------------ storage

    @property
    def store(self) -> Store:
        """The store: the one given, else the SQLite store (opened on first use, and
        again after :meth:`close`).

        Raises:
            UsageError: an in-memory database was closed: its runs are gone.
        """
        return self._slot.get()

    @property
    def client(self) -> Any:
        """A read client over this engine's store (``client.workflows.steps.list``)."""
        from store.client import Client

        return Client(self.db, store=self.store)

    def close(self) -> None:
        """Close the database connections this engine opened (a given store stays open)."""
        self._slot.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ launch path

    def prepare(self, workflow: WorkflowSource, inputs: Mapping[str, Any] | None = None, *,
                run_id: str | None = None, origin: RunOrigin | None = None,
                replay: Replay | None = None) -> PreparedRun:
        """Compile (unless given a compiled graph), apply stubs, store the inputs and
        write the run row: a new run ready for :meth:`execute`.

        Args:
            workflow: a Workflow, a path to a YAML/JSON workflow file, or a graph from
                :meth:`compile` (not compiled again).
            inputs: run inputs keyed by start block id: a JSON value for start_json,
                a file path, bytes or FileRef for start_document.
            run_id: choose the run id (default: a fresh ``run_...``).
            origin: workflow id, owner, trigger and tags of the run row.
            replay: recorded results the run reuses (a rerun).

        Returns:
            The :class:`~engine.launch.PreparedRun`.

        Raises:
            WorkflowValidationError: the workflow is invalid.  InputError: an input does
            not fit the start blocks.  UsageError: a stub key names no block or step.
            In all three cases nothing was persisted.
        """
        graph = (workflow if isinstance(workflow, CompiledGraph)
                 else compile_shared(self.load(workflow), self.registry))
        runnable = launch.stand_ins(graph, self.stubs)
        run_inputs = launch.store_inputs(graph, inputs or {}, self.store.files)
        return launch.create_run(self.store, runnable, run_inputs,
                                 run_id=run_id or launch.new_run_id(),
                                 origin=origin or RunOrigin(),
                                 organization_id=self.organization_id, replay=replay)

    def prepare_resume(self, run_id: str) -> PreparedRun:
        """Claim ``run_id`` for this process and rebuild it from its persisted steps.

        Raises:
            NotFoundError: no such run.  UsageError: it already ended.
            ConflictError: another live process is executing it.
        """
        run = durable.claim(self.store, run_id)
        graph = launch.stand_ins(self.compile(Workflow.from_dict(run.definition)), self.stubs)
        return PreparedRun(run_id=run_id, graph=graph, inputs=run.inputs,
                           replay=durable.replay_of(self.store, run_id),
                           organization_id=run.organization_id)

    async def execute(self, prepared: PreparedRun, *, listeners: Sequence[Listener] = (),
                      cancel_wakeup: anyio.Event | None = None) -> RunResult:
        """Run a prepared run until it ends, fails, is cancelled or waits for a review.

        Args:
            prepared: from :meth:`prepare` or :meth:`prepare_resume`.
            listeners: called as ``listener(run_id, events, run_update)`` after each commit.
            cancel_wakeup: set it after ``store.request_cancel`` to stop at once.

        Returns:
            How the run ended (a failing step is ``status=error``, not an exception).

        Raises:
            StorageError: the database cannot be written.
        """
        options = ExecutionOptions(max_concurrency=self.max_concurrency, retry=self.retry,
                                   env=self.env, services=self.services,
                                   executor=self.executor)
        settings = launch.run_settings(prepared, options, listeners=listeners,
                                       cancel_wakeup=cancel_wakeup)
        outcome = await Runner(prepared.graph, self.store, settings).run()
        return launch.result_of(prepared.run_id, outcome, self)

    # ------------------------------------------------------------------ running

    def run(self, workflow: WorkflowSource, inputs: Mapping[str, Any] | None = None, *,
            run_id: str | None = None, metadata: Mapping[str, str] | None = None
            ) -> RunResult:
        """Run ``workflow`` to the end and return how it ended (sync wrapper of arun)."""
        return anyio.run(lambda: self.arun(workflow, inputs, run_id=run_id, metadata=metadata))

    async def arun(self, workflow: WorkflowSource, inputs: Mapping[str, Any] | None = None, *,
                   run_id: str | None = None, metadata: Mapping[str, str] | None = None
                   ) -> RunResult:
        """Validate, persist and run ``workflow``.

        Args:
            workflow, inputs, run_id: as for :meth:`prepare`.
            metadata: string tags stored on the run.

        Raises:
            WorkflowValidationError, InputError, UsageError: as :meth:`prepare`.
        """
        origin = RunOrigin(metadata=dict(metadata or {}))
        return await self.execute(self.prepare(workflow, inputs, run_id=run_id, origin=origin))

    async def start(self, workflow: WorkflowSource, inputs: Mapping[str, Any] | None = None, *,
                    run_id: str | None = None, metadata: Mapping[str, str] | None = None,
                    task_group: TaskGroup | None = None) -> RunHandle:
        """Validate and persist a run, start it in the background and return its handle.

        Args:
            workflow, inputs, run_id, metadata: as for :meth:`arun`.
            task_group: run it in this anyio task group (required outside asyncio);
                by default it is a task of the running asyncio loop.

        Returns:
            A :class:`~engine.handle.RunHandle`: ``await handle.result()``,
            ``async for event in handle.events()``, ``handle.cancel()``.

        Raises:
            WorkflowValidationError, InputError, UsageError: as :meth:`arun`, before
                anything runs.
        """
        from engine.handle import RunHandle

        prepared = self.prepare(workflow, inputs, run_id=run_id,
                                origin=RunOrigin(metadata=dict(metadata or {})))
        handle = RunHandle(self, prepared.run_id)
        handle.launch(lambda: prepared, task_group)
        return handle

    # ------------------------------------------------------------------ durable runs

    def resume(self, run_id: str) -> RunResult:
        """Continue a run from its persisted steps (sync wrapper of :meth:`aresume`)."""
        return anyio.run(self.aresume, run_id)

    async def aresume(self, run_id: str) -> RunResult:
        """Continue a run whose process died, or that waited for a review.

        Completed steps are never executed again; steps that were in flight run again.

        Raises:
            NotFoundError: no such run.  UsageError: it already ended.
            ConflictError: another live process is executing it.
        """
        return await self.execute(self.prepare_resume(run_id))

    async def start_resume(self, run_id: str, *, task_group: TaskGroup | None = None
                           ) -> RunHandle:
        """Like :meth:`aresume`, in the background: returns the run's new handle.

        Its events are the transitions this execution makes (not the earlier ones).

        Raises:
            NotFoundError: no such run.  UsageError: it already ended. A
            ConflictError (another live process runs it) comes from ``result()``.
        """
        from engine.handle import RunHandle

        run = self.store.load_run(run_id)
        if run.status.terminal:
            raise durable.ended(run, "resume")
        handle = RunHandle(self, run_id)
        handle.launch(lambda: self.prepare_resume(run_id), task_group)
        return handle

    def cancel(self, run_id: str, reason: str = "cancelled by request") -> bool:
        """Cancel a run from any process; True when it was cancelled right here.

        Synchronous (it only writes flags and rows): a RunHandle calls it in its loop.

        Raises:
            NotFoundError: no such run.  UsageError: it already ended.
        """
        return durable.cancel_run(self.store, run_id, reason)

    def record_decision(self, review_id: str, *, approved: bool, data: Any = None,
                        has_data: bool = False, reason: str = "") -> tuple[Review, bool]:
        """Check and record a review decision without resuming the run.

        ``reason`` is kept as text: control characters go, and anything past
        :data:`MAX_REASON_CHARS` characters.

        Returns:
            ``(review, changed)``: the review record, and False when the same decision
            had been recorded before.

        Raises:
            NotFoundError: no such review.  ConflictError: decided differently before.
            UsageError: the run already ended.  InputError: corrected data the block
            cannot use (its type's ``validate_decision`` says why), or that is not
            bounded JSON.
        """
        if has_data:
            check_json(data, what="The corrected review data")
        # a person's text, printed and stored: no control characters (PostgreSQL's text
        # holds no NUL), no lone surrogates (UTF-8 holds none), at most 2,000 characters
        reason = clean_text(reason, limit=MAX_REASON_CHARS, multiline=True)
        store = self.store
        review = store.review(review_id)
        run = store.load_run(review.run_id)
        if run.status.terminal and review.decision is None:
            raise durable.ended(run, "review")
        proposal = durable.proposal_of(review)
        if approved and has_data and proposal is not None:
            node = self.compile(Workflow.from_dict(run.definition)).nodes[review.block_id]
            node.impl.validate_decision(node.config, proposal, data)  # refuse now, not later
        return store.decide_review(review_id, approved=approved, data=data, has_data=has_data,
                                   reason=reason, now=time.time())

    def decide(self, review_id: str, *, approved: bool, data: Any = None,
               has_data: bool = False, reason: str = "", resume: bool = True
               ) -> RunResult | None:
        """Decide a review, then resume the run (sync wrapper of :meth:`adecide`).

        Raises:
            As :meth:`record_decision` and :meth:`aresume`.
        """
        run_id = self._decided(review_id, approved, data, has_data, reason, resume)
        return None if run_id is None else self.resume(run_id)

    async def adecide(self, review_id: str, *, approved: bool, data: Any = None,
                      has_data: bool = False, reason: str = "", resume: bool = True
                      ) -> RunResult | None:
        """Approve (optionally with corrected data) or reject a review, then resume the run
        unless ``resume=False`` or it ended. Deciding the same way twice changes nothing.

        Returns:
            How the resumed run ended, or None when it was not resumed.

        Raises:
            As :meth:`record_decision` and :meth:`aresume`.
        """
        run_id = self._decided(review_id, approved, data, has_data, reason, resume)
        return None if run_id is None else await self.aresume(run_id)

    def _decided(self, review_id: str, approved: bool, data: Any, has_data: bool,
                 reason: str, resume: bool) -> str | None:
        """Record the decision; the run to resume after it, if any."""
        review, _changed = self.record_decision(review_id, approved=approved, data=data,
                                                has_data=has_data, reason=reason)
        if not resume or self.store.load_run(review.run_id).status.terminal:
            return None
        return review.run_id

    def rerun(self, run_id: str, from_step: str | None = None,
              inputs: Mapping[str, Any] | None = None, workflow: WorkflowSource | None = None,
              *, failed: bool = False) -> RunResult:
        """A new run reusing earlier results (sync wrapper of :meth:`arerun`)."""
        return anyio.run(lambda: self.arerun(run_id, from_step, inputs, workflow,
                                             failed=failed))

    async def arerun(self, run_id: str, from_step: str | None = None,
                     inputs: Mapping[str, Any] | None = None,
                     workflow: WorkflowSource | None = None, *, failed: bool = False
                     ) -> RunResult:
        """A new run reusing the earlier run's results (what is reused: :mod:`engine.rerun`).

        Args:
            run_id: the earlier run.
            from_step: the step to execute again with all it feeds (top level, or in a loop).
            inputs, workflow: replaced start inputs, an edited workflow (top-level step).
            failed: instead of ``from_step``, execute again only what failed.

        Raises:
            NotFoundError, UsageError, InputError: see :func:`engine.rerun.prepare_rerun`.
        """
        from engine.rerun import prepare_rerun

        return await self.execute(prepare_rerun(self, run_id, from_step, failed=failed,
                                                inputs=inputs, workflow=workflow))
