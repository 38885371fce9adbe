"""The Engine: the public entry point for running workflows from Python.

``Engine(db)`` owns a store (SQLite file, WAL) and a block registry. ``engine.run(...)``
is the synchronous convenience over ``await engine.arun(...)``. Everything a run does is
in the database; :attr:`Engine.client` reads it back in Retab's shapes.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from blocks.registry import BlockRegistry, default_registry
from engine.definition import Workflow, load_workflow
from engine.errors import Diagnostic, InputError
from engine.events import NewRun
from engine.graph import CompiledGraph, compile_workflow, validate_workflow
from engine import durable
from engine.replay import Replay
from engine.runner import RetryPolicy, Runner, RunSettings
from engine.values import FileRef, RunStatus

DEFAULT_DB = "stepwell.db"


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
    """

    run_id: str
    status: RunStatus
    outputs: dict[str, Any] = field(default_factory=dict)
    failing_step_id: str | None = None
    error: str | None = None
    reason: str | None = None
    waiting_for: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the run completed."""
        return self.status is RunStatus.COMPLETED


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
    ) -> None:
        self.db = str(db) if db is not None else default_db_path()
        self.registry = registry or default_registry()
        self.durability = durability
        self.max_concurrency = max_concurrency
        self.retry = retry or RetryPolicy()
        self.env = env
        self.services = dict(services or {})
        self.organization_id = organization_id
        self._store: Any = None

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
        """The SQLite store (opened on first use)."""
        if self._store is None:
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
        """
        wf = self.load(workflow)
        graph = compile_workflow(wf, self.registry)
        run_inputs = self._prepare_inputs(graph, dict(inputs or {}))
        run_id = run_id or new_run_id()
        self.store.create_run(NewRun(
            run_id=run_id, workflow_id=workflow_id_for(wf), workflow_name=wf.name,
            workflow_digest=wf.digest(), definition=wf.to_dict(), inputs=run_inputs,
            metadata=dict(metadata or {}), organization_id=self.organization_id,
        ), now=_now())
        return await self._execute(graph, run_id, run_inputs)

    async def _execute(self, graph: CompiledGraph, run_id: str,
                       run_inputs: Mapping[str, Any], replay: Replay | None = None) -> RunResult:
        settings = RunSettings(
            run_id=run_id, run_inputs=run_inputs, max_concurrency=self.max_concurrency,
            retry=self.retry, env=dict(self.env) if self.env is not None else dict(os.environ),
            services=self.services, replay=replay)
        outcome = await Runner(graph, self.store, settings).run()
        return RunResult(run_id=run_id, status=outcome.status, outputs=outcome.outputs or {},
                         failing_step_id=outcome.failing_step_id,
                         error=outcome.error.message if outcome.error else None,
                         reason=outcome.reason,
                         waiting_for=outcome.waiting_for_block_ids or [])

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


def new_run_id() -> str:
    """A fresh run id: ``run_`` and 20 hex characters."""
    return "run_" + uuid.uuid4().hex[:20]


def workflow_id_for(workflow: Workflow) -> str:
    """A stable id for a workflow definition: ``wrk_`` + digest prefix."""
    return "wrk_" + workflow.digest()[:16]


def _now() -> float:
    import time

    return time.time()
