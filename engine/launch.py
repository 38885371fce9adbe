"""One launch path: a run is prepared once, then executed.

Theory of operation
-------------------
Every execution, whatever asked for it (``Engine.run``/``arun``/``start``, resume,
rerun, a review decision, the HTTP server, ``engine.testing``), goes through the same
two steps:

1. **prepare** (:class:`PreparedRun`): the workflow is compiled once; the stand-ins
   (output checks of app-registered block types, then test stubs) are applied once
   (:func:`stand_ins`); the inputs are checked against the start blocks and documents
   stored (:func:`store_inputs`); the run row is written (:func:`create_run`). For
   a resume the row exists already: the stored definition is compiled and the persisted
   steps become a :class:`~engine.replay.Replay`. When any of this raises, no run row
   was written.
2. **execute**: the runner drives the prepared graph against the store
   (:func:`run_settings` gathers its knobs) and the outcome becomes a
   :class:`RunResult` (:func:`result_of`).

Nothing here holds state: the Engine passes what a run needs (registry, stubs, store,
listeners) explicitly.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from engine.compiled import CompiledGraph
from engine.contracts.blocks import BlockRole
from engine.contracts.bounded import check_json, clean_text
from engine.contracts.errors import InputError, UsageError
from engine.contracts.events import NewRun, RunUpdate
from engine.contracts.files import FileStore
from engine.contracts.frozen import record
from engine.contracts.store import Store
from engine.contracts.values import FileRef, RunStatus
from engine.definition import Workflow
from engine.options import ExecutionOptions
from engine.replay import Replay
from engine.runner import Listener, RunSettings

if TYPE_CHECKING:
    from engine.core import Engine


@record
class PreparedRun:
    """A run ready to execute: its row exists and its graph carries its stand-ins.

    Attributes:
        run_id: the run's id.
        graph: the compiled workflow, with output checks and stubs applied.
        inputs: the run inputs as stored (documents as file references).
        replay: recorded results to reuse (resume and rerun), else None.
        organization_id: the run's owner (its environment may depend on it).
    """

    run_id: str
    graph: CompiledGraph
    inputs: Mapping[str, Any]
    replay: Replay | None = None
    organization_id: str = "org_local"


@record
class RunOrigin:
    """Where a new run comes from, as recorded on its row.

    Attributes:
        workflow_id: the registered workflow (default: derived from the definition).
        organization_id: the owner (default: the engine's).
        trigger: what created it (``manual``, ``api``, ``restart``).
        parent_run_id: the run a rerun reuses.
        metadata: string tags.
    """

    workflow_id: str | None = None
    organization_id: str | None = None
    trigger: str = "manual"
    parent_run_id: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@record
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


def new_run_id() -> str:
    """A fresh run id: ``run_`` and 20 random hex characters (80 bits)."""
    return "run_" + secrets.token_hex(10)


def workflow_id_for(workflow: Workflow) -> str:
    """The id runs of ``workflow`` are filed under (:meth:`Workflow.workflow_id`:
    ``metadata.id``, else a stable id from the name; the digest tells versions apart)."""
    return workflow.workflow_id()


def stand_ins(graph: CompiledGraph, stubs: Mapping[str, Any]) -> CompiledGraph:
    """``graph`` with app-registered block types checked and stubbed blocks wrapped.

    Call it once per compiled graph: the result is what the runner executes.

    Raises:
        UsageError: a stub key names no block or step, or one that cannot be stubbed.
    """
    if not stubs and _builtin_only(graph):
        return graph  # nothing to wrap: leave the stubs machinery unimported
    from engine.stubs import apply_stubs, check_custom_outputs

    return apply_stubs(check_custom_outputs(graph), stubs)


def _builtin_only(graph: CompiledGraph) -> bool:
    """True when every block of ``graph`` is a built-in type (found once per graph)."""
    # kept with the nodes it was found for: a stubbed copy of the graph shares its memo
    nodes, builtin_only = graph.memo.get("builtin_only", (None, False))
    if nodes is not graph.nodes:
        from blocks.builtin import is_builtin

        builtin_only = all(is_builtin(n.impl) for n in graph.nodes.values())
        graph.memo["builtin_only"] = (graph.nodes, builtin_only)
    return bool(builtin_only)


def store_inputs(graph: CompiledGraph, inputs: Mapping[str, Any],
                 files: FileStore) -> dict[str, Any]:
    """The run inputs as stored: one per start block, documents put in ``files``.

    Args:
        graph: the compiled workflow.
        inputs: a JSON value per start_json block; a path, bytes, FileRef or file
            reference mapping per start_document block.
        files: where documents are stored.

    Returns:
        The inputs keyed by start block id, documents as file reference dicts.

    Raises:
        InputError: an input names no start block, a start block has none, a JSON
            input is not bounded JSON (too deep, NaN, not JSON; checked before any
            document is stored), or a document path is not a file.
    """
    starts = {n.id: n for n in graph.start_blocks()}
    unknown = sorted(set(inputs) - set(starts))
    if unknown:
        raise InputError(
            f"Input given for {', '.join(map(repr, unknown))}, which "
            f"{'is not a start block' if len(unknown) == 1 else 'are not start blocks'}. "
            f"Start blocks: {', '.join(sorted(starts)) or 'none'}.")
    for block_id, node in starts.items():
        if block_id not in inputs:
            raise InputError(
                f"Start block {block_id!r} ({node.type}) has no input. Pass it with "
                f"`--input {block_id}=...` (CLI) or inputs={{{block_id!r}: ...}} (Python).")
        if node.role is not BlockRole.START_DOCUMENT:
            check_json(inputs[block_id], what=f"The input of {block_id!r}")
    return {block_id: (_store_document(files, block_id, inputs[block_id])
                       if node.role is BlockRole.START_DOCUMENT else inputs[block_id])
            for block_id, node in starts.items()}


def _store_document(files: FileStore, block_id: str, value: Any) -> dict[str, str]:
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
    name = clean_text(path.name, limit=255) or f"{block_id}.bin"  # printed and served later
    return files.put_bytes(path.read_bytes(), name).to_dict()


def create_run(store: Store, runnable: CompiledGraph, inputs: Mapping[str, Any], *,
               run_id: str, origin: RunOrigin, organization_id: str,
               replay: Replay | None = None) -> PreparedRun:
    """Write the row of a new run and return it prepared.

    Args:
        store: where the run is written.
        runnable: the compiled workflow with its stand-ins (:func:`stand_ins`).
        inputs: the run inputs as stored (:func:`store_inputs`).
        run_id: the new run's id.
        origin: workflow id, owner, trigger and tags.
        organization_id: the owner when ``origin`` names none.
        replay: recorded results the run reuses (a rerun).

    Returns:
        The :class:`PreparedRun`.

    Raises:
        ConflictError: a run with this id exists.
    """
    workflow = runnable.workflow
    check_json(dict(origin.metadata), what="The run metadata")
    owner = origin.organization_id or organization_id
    definition, digest = _definition_of(runnable)
    store.create_run(NewRun(
        run_id=run_id, workflow_id=origin.workflow_id or workflow_id_for(workflow),
        workflow_name=workflow.name, workflow_digest=digest,
        definition=definition, inputs=dict(inputs), metadata=dict(origin.metadata),
        organization_id=owner, trigger=origin.trigger,
        parent_run_id=origin.parent_run_id), now=time.time())
    return PreparedRun(run_id=run_id, graph=runnable, inputs=inputs, replay=replay,
                       organization_id=owner)


def _definition_of(graph: CompiledGraph) -> tuple[dict[str, Any], str]:
    """The workflow's JSON form and digest for the run row: computed once for a graph of
    :func:`engine.graph.compile_shared` (its workflow is a private copy), else each time."""
    memo = graph.memo
    definition = memo.get("definition")
    if definition is None:
        return graph.workflow.to_dict(), graph.workflow.digest()
    digest = memo.get("digest")
    if digest is None:
        digest = memo["digest"] = graph.workflow.digest()
    return definition, digest


def run_settings(prepared: PreparedRun, options: ExecutionOptions, *,
                 listeners: Sequence[Listener] = (),
                 cancel_wakeup: anyio.Event | None = None) -> RunSettings:
    """The runner's settings for one execution of ``prepared``.

    Args:
        prepared: the run.
        options: the engine's knobs.
        listeners: commit hooks (a RunHandle's ``on_commit``).
        cancel_wakeup: an event set after an in-process cancel request.

    Returns:
        The :class:`~engine.runner.RunSettings`.
    """
    env = options.env(prepared.organization_id) if callable(options.env) else options.env
    return RunSettings(
        run_id=prepared.run_id, run_inputs=prepared.inputs,
        max_concurrency=options.max_concurrency, retry=options.retry,
        env=dict(env) if env is not None else dict(os.environ), services=options.services,
        replay=prepared.replay, listeners=tuple(listeners), cancel_wakeup=cancel_wakeup,
        executor=options.executor)


def result_of(run_id: str, outcome: RunUpdate, engine: Engine | None) -> RunResult:
    """The :class:`RunResult` of an execution that ended with ``outcome``."""
    return RunResult(run_id=run_id, status=outcome.status, outputs=outcome.outputs or {},
                     failing_step_id=outcome.failing_step_id,
                     error=outcome.error.message if outcome.error else None,
                     reason=outcome.reason,
                     waiting_for=outcome.waiting_for_block_ids or [], engine=engine)
