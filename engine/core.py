"""The Engine: the public entry point for running workflows from Python.

``Engine(db)`` owns a store (SQLite file, WAL) and a block registry. ``engine.run(...)``
is the synchronous convenience over ``await engine.arun(...)``; ``await engine.start(...)``
returns a :class:`~engine.handle.RunHandle` at once (await, stream, cancel) for apps.
Everything a run does is in the database; :attr:`Engine.client` reads it back in Retab's
shapes.

Sharing: one Engine may run many runs at once, from one event loop (``start``) or from
several threads (``run``); its store serialises writes on one connection. Engines on
different databases are independent. Several processes may share one database file.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from blocks.registry import BlockRegistry, default_registry
from engine import durable
from engine.contracts.errors import Diagnostic, InputError, PermanentError, UsageError
from engine.contracts.events import NewRun
from engine.contracts.values import FileRef, RunStatus
from engine.definition import Workflow, load_workflow
from engine.graph import CompiledGraph, compile_workflow, validate_workflow
from engine.replay import Replay
from engine.runner import RetryPolicy, Runner, RunSettings

if TYPE_CHECKING:
    from engine.handle import RunHandle

DEFAULT_DB = "stepwell.db"
#: The handle whose run the current task executes (set by ``start``/``start_resume``).
_HANDLE: ContextVar[RunHandle | None] = ContextVar("stepwell_run_handle", default=None)


def default_db_path() -> str:
    """``$STEPWELL_DB`` if set, else ``./stepwell.db``."""
    return os.environ.get("STEPWELL_DB") or DEFAULT_DB


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """How a run ended.

    Attributes:
        run_id: the run's id (read its steps with ``engine.client``).
        status: ``completed``, ``error``, ``cancelled`` or ``awaiting_review``.
        outputs: what reached the end blocks, keyed by end step id then handle.
        failing_step_id: the first step that failed, for ``error`` runs.
        error: that step's error message.
        reason: why a cancelled run stopped.
        waiting_for: block ids an ``awaiting_review`` run waits on.
        engine: the engine that ran it (reads its steps: :meth:`step`, :meth:`steps`).
    """

    run_id: str
    status: RunStatus
    outputs: dict[str, Any] = field(default_factory=dict)
    failing_step_id: str | None = None
    error: str | None = None
    reason: str | None = None
    waiting_for: list[str] = field(default_factory=list)
    engine: Engine | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True when the run completed."""
        return self.status is RunStatus.COMPLETED

    def steps(self) -> list[Any]:
        """Every step of the run (``store.api.Step``), in creation order.

        Raises:
            UsageError: the result was built without an engine.
        """
        client = self._client()
        out: list[Any] = []
        after = None
        while True:
            page = client.workflows.steps.list(self.run_id, limit=1000, after=after)
            out.extend(page.data)
            after = page.list_metadata.after
            if after is None:
                return out

    def step(self, step_id: str) -> Any:
        """One step of the run (``store.api.Step``).

        Raises:
            NotFoundError: the run has no such step.
        """
        return self._client().workflows.steps.get(step_id, run_id=self.run_id)

    def _client(self) -> Any:
        if self.engine is None:
            raise UsageError(f"RunResult {self.run_id} has no engine to read steps from; "
                             "read them with Client(db).workflows.steps.list(run_id).")
        return self.engine.client


class Engine:
    """Runs workflows locally and persists every step.

    Args:
        db: SQLite database path (``:memory:`` for an in-memory store).
        registry: block types; defaults to every built-in type.
        durability: ``process`` (default, survives process crashes) or ``full``
            (synchronous=FULL, survives power loss).
        max_concurrency: block handlers running at once per run.
        retry: default retry policy for transient and quota errors.
        env: environment for ``${NAME}`` substitution (defaults to ``os.environ``).
        services: extra services handed to blocks (``model_provider``, ...).
        organization_id: owner of the runs this engine creates.
        provider: the model provider of every step (sets ``services["model_provider"]``):
            a provider instance, a name (``offline``, ``openai``), or a mapping, which
            becomes a :class:`~blocks.providers.scripted.ScriptedProvider` script.
        stubs: ``{block_id_or_step_id: stub}``: those steps answer from the stub instead
            of running (see :mod:`engine.stubs`; for tests). Also settable later as
            ``engine.stubs``.

    Raises:
        UsageError: ``provider`` names no known provider.
    """

    def __init__(
        self,
        db: str | Path | None = None,
        *,
        registry: BlockRegistry | None = None,
        durability: str = "process",
        max_concurrency: int = 8,
        retry: RetryPolicy | None = None,
        env: Mapping[str, str] | None = None,
        services: Mapping[str, Any] | None = None,
        organization_id: str = "org_local",
        provider: Any = None,
        stubs: Mapping[str, Any] | None = None,
    ) -> None:
        self.db = _db_path(db)
        self.registry = registry or default_registry()
        self.durability = durability
        self.max_concurrency = max_concurrency
        self.retry = retry or RetryPolicy()
        self.env = env
        self.services = dict(services or {})
        if provider is not None:
            from blocks.providers import MODEL_PROVIDER_SERVICE

            self.services[MODEL_PROVIDER_SERVICE] = _model_provider(provider, env)
        self.stubs: dict[str, Any] = dict(stubs or {})
        self.organization_id = organization_id
        self._store: Any = None
        self._store_lock = threading.Lock()
        self._memory_closed = False

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
    def store(self) -> Any:
        """The SQLite store (opened on first use, and again after :meth:`close`).

        Raises:
            UsageError: an in-memory database was closed: its runs are gone.
        """
        if self._store is None:
            with self._store_lock:
                if self._store is None:
                    if self._memory_closed:
                        raise UsageError(
                            "This engine's in-memory database was closed, and its runs with "
                            "it. Read results before closing (inside `with Engine(':memory:')"
                            "`), or use a database file.")
                    from store.sqlite import SQLiteStore

                    self._store = SQLiteStore(self.db, durability=self.durability)
        return self._store

    @property
    def client(self) -> Any:
        """A read client over this engine's database (``client.workflows.steps.list``)."""
        from store.client import Client

        return Client(self.db, store=self.store)

    def close(self) -> None:
        """Close the database connections."""
        if self._store is not None:
            self._memory_closed = self._store.in_memory
            self._store.close()
            self._store = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ running

    def run(
        self,
        workflow: Workflow | str | Path,
        inputs: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> RunResult:
        """Run ``workflow`` to the end and return how it ended (sync wrapper of arun)."""
        return anyio.run(lambda: self.arun(workflow, inputs, run_id=run_id, metadata=metadata))

    async def arun(
        self,
        workflow: Workflow | str | Path,
        inputs: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> RunResult:
        """Validate, persist and run ``workflow``.

        Args:
            workflow: a Workflow or a path to a YAML/JSON workflow file.
            inputs: run inputs keyed by start block id: a JSON value for start_json,
                a file path, bytes or FileRef for start_document.
            run_id: choose the run id (default: a fresh ``run_...``).
            metadata: string tags stored on the run.

        Raises:
            WorkflowValidationError: the workflow is invalid (nothing was persisted).
            InputError: an input does not fit the start blocks (nothing was persisted).
            UsageError: a stub key names no block or step (nothing was persisted).
        """
        graph, run_id, run_inputs = self._create(workflow, inputs, run_id, metadata)
        return await self._execute(graph, run_id, run_inputs)

    async def start(
        self,
        workflow: Workflow | str | Path,
        inputs: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
        task_group: TaskGroup | None = None,
    ) -> RunHandle:
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

        graph, run_id, run_inputs = self._create(workflow, inputs, run_id, metadata)
        handle = RunHandle(self, run_id)
        handle.launch(self._with_handle(
            handle, lambda: self._execute(graph, run_id, run_inputs)), task_group)
        return handle

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
            raise durable._ended(run, "resume")
        handle = RunHandle(self, run_id)
        handle.launch(self._with_handle(handle, lambda: durable.resume(self, run_id)),
                      task_group)
        return handle

    @staticmethod
    def _with_handle(handle: RunHandle, execute: Any) -> Any:
        async def run() -> RunResult:
            _HANDLE.set(handle)
            return await execute()

        return run

    def _create(self, workflow: Workflow | str | Path, inputs: Mapping[str, Any] | None,
                run_id: str | None, metadata: Mapping[str, str] | None
                ) -> tuple[CompiledGraph, str, dict[str, Any]]:
        """Compile, check inputs and stubs, and persist a new run (nothing on error)."""
        wf = self.load(workflow)
        graph = self._prepare(compile_workflow(wf, self.registry))
        run_inputs = self._prepare_inputs(graph, dict(inputs or {}))
        run_id = run_id or new_run_id()
        self.store.create_run(NewRun(
            run_id=run_id, workflow_id=workflow_id_for(wf), workflow_name=wf.name,
            workflow_digest=wf.digest(), definition=wf.to_dict(), inputs=run_inputs,
            metadata=dict(metadata or {}), organization_id=self.organization_id,
        ), now=_now())
        return graph, run_id, run_inputs

    def _prepare(self, graph: CompiledGraph) -> CompiledGraph:
        """Wrap app-registered block types (output checks) and stubbed blocks."""
        from engine.stubs import apply_stubs, check_custom_outputs

        return apply_stubs(check_custom_outputs(graph), self.stubs)

    async def _execute(self, graph: CompiledGraph, run_id: str,
                       run_inputs: Mapping[str, Any], replay: Replay | None = None) -> RunResult:
        handle = _HANDLE.get()
        settings = RunSettings(
            run_id=run_id, run_inputs=run_inputs, max_concurrency=self.max_concurrency,
            retry=self.retry, env=dict(self.env) if self.env is not None else dict(os.environ),
            services=self.services, replay=replay,
            listeners=(handle.on_commit,) if handle is not None else (),
            cancel_wakeup=handle.cancel_wakeup if handle is not None else None)
        outcome = await Runner(self._prepare(graph), self.store, settings).run()
        return RunResult(run_id=run_id, status=outcome.status, outputs=outcome.outputs or {},
                         failing_step_id=outcome.failing_step_id,
                         error=outcome.error.message if outcome.error else None,
                         reason=outcome.reason,
                         waiting_for=outcome.waiting_for_block_ids or [], engine=self)

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
        return await durable.resume(self, run_id)

    def cancel(self, run_id: str, reason: str = "cancelled by request") -> bool:
        """Cancel a run from any process; True when it was cancelled right here.

        Raises:
            NotFoundError: no such run.  UsageError: it already ended.
        """
        return durable.cancel(self, run_id, reason)

    def decide(self, review_id: str, *, approved: bool, data: Any = None,
               has_data: bool = False, reason: str = "", resume: bool = True
               ) -> RunResult | None:
        """Approve (optionally with corrected data) or reject a review, then resume the run.

        Deciding the same way twice is accepted once; the second call changes nothing.

        Raises:
            NotFoundError: no such review.  ConflictError: decided differently before.
        """
        review, _changed = durable.decide(self, review_id, approved=approved, data=data,
                                          has_data=has_data, reason=reason)
        run = self.store.load_run(review.run_id)
        if not resume or run.status.terminal:
            return None
        return self.resume(review.run_id)

    def rerun(self, run_id: str, from_step: str, inputs: Mapping[str, Any] | None = None,
              workflow: Workflow | str | Path | None = None) -> RunResult:
        """A new run reusing the outputs of everything upstream of ``from_step``.

        Raises:
            NotFoundError: no such run.  UsageError: bad step, or the workflow changed
            upstream of it.
        """
        wf = self.load(workflow) if workflow is not None else None
        return anyio.run(lambda: durable.rerun(self, run_id, from_step, inputs, wf))

    def _prepare_inputs(self, graph: CompiledGraph, inputs: dict[str, Any]) -> dict[str, Any]:
        starts = {n.id: n for n in graph.start_blocks()}
        unknown = sorted(set(inputs) - set(starts))
        if unknown:
            raise InputError(
                f"Input given for {', '.join(map(repr, unknown))}, which "
                f"{'is not a start block' if len(unknown) == 1 else 'are not start blocks'}. "
                f"Start blocks: {', '.join(sorted(starts)) or 'none'}.")
        prepared: dict[str, Any] = {}
        for block_id, node in starts.items():
            if block_id not in inputs:
                raise InputError(
                    f"Start block {block_id!r} ({node.type}) has no input. Pass it with "
                    f"`--input {block_id}=...` (CLI) or inputs={{{block_id!r}: ...}} (Python).")
            value = inputs[block_id]
            prepared[block_id] = (self._store_document(block_id, value)
                                  if node.type in ("start_document", "start") else value)
        return prepared

    def _store_document(self, block_id: str, value: Any) -> dict[str, str]:
        files = self.store.files
        if isinstance(value, FileRef):
            return value.to_dict()
        if isinstance(value, Mapping) and {"id", "filename", "mime_type"} <= set(value):
            return {k: str(value[k]) for k in ("id", "filename", "mime_type")}
        if isinstance(value, bytes):
            return files.put_bytes(value, f"{block_id}.bin").to_dict()
        path = Path(str(value)).expanduser()
        if not path.is_file():
            raise InputError(
                f"Input file for {block_id!r} not found: {path}. Pass an existing file path.")
        return files.put_bytes(path.read_bytes(), path.name).to_dict()


def _db_path(db: str | Path | None) -> str:
    """The database path; ``sqlite://`` (no path) is the in-memory store, like SQLAlchemy."""
    if db is None:
        return default_db_path()
    text = str(db)
    if text in ("sqlite://", "sqlite:///:memory:"):
        return ":memory:"
    if text.startswith("sqlite:///"):
        return text[len("sqlite:///"):]
    return text


def _model_provider(provider: Any, env: Mapping[str, str] | None) -> Any:
    """A provider instance from an instance, a name, or a ScriptedProvider script."""
    from blocks.providers import resolve_provider

    if isinstance(provider, str):
        try:
            return resolve_provider(provider, env if env is not None else os.environ)
        except PermanentError as exc:
            raise UsageError(exc.message) from None
    if isinstance(provider, Mapping):
        from blocks.providers.scripted import ScriptedProvider

        return ScriptedProvider(provider)
    return provider


def new_run_id() -> str:
    """A fresh run id: ``run_`` and 20 hex characters."""
    return "run_" + uuid.uuid4().hex[:20]


def workflow_id_for(workflow: Workflow) -> str:
    """A stable id for a workflow definition: ``wrk_`` + digest prefix."""
    return "wrk_" + workflow.digest()[:16]


def _now() -> float:
    import time

    return time.time()
