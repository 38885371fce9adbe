"""Executing one block of a run again (``client.workflows.blocks.executions``).

The block is taken from the workflow's current draft (the run's own definition when the
run's workflow is not registered, as for CLI runs) and given the inputs the step
received in the run; it runs through the engine's block test path
(:mod:`engine.block_runs`), outside any run: the run is not changed. With
``check_eligibility`` (the default) the blocks upstream of it must be unchanged since the
run (none changed, none removed), else 409 ``INELIGIBLE`` naming them (pass
``check_eligibility=false`` to run it anyway).
``n_consensus`` (3, 5 or 7) overrides the block's on extract, split and classifier.

The record is kept and listed newest first per run and block. The replayed step's
operation record is returned whole as ``stepwell_artifact`` (``artifact`` is null: it
belongs to no run).
"""

from __future__ import annotations

import os
import time
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Query, Request

from engine.block_runs import replay_block
from engine.contracts.errors import (
    DefinitionError,
    InputError,
    NotFoundError,
    RegistryError,
    UsageError,
)
from engine.contracts.evals import BlockExecution
from engine.definition import Workflow
from engine.graph_edit import BlockChange, change_block, find_block
from engine.server.auth import Org
from engine.server.drafts import definition_of, server
from engine.server.errors import ApiError
from engine.server.lists import page_json, required
from engine.server.params import reject_unknown_query, with_cursor
from engine.server.schemas import ERRORS, PageOut, ok
from engine.server.schemas_graph import BlockExecutionBody, BlockExecutionOut
from engine.server.shapes import iso

router = APIRouter(prefix="/v1/workflows/blocks/executions",
                   dependencies=[Depends(reject_unknown_query)], responses=ERRORS)
_CONSENSUS_TYPES = ("extract", "split", "classifier")


def execution_json(record: BlockExecution) -> dict[str, Any]:
    """A block execution (``StoredBlockExecution``)."""
    lifecycle: dict[str, Any] = {"status": record.status}
    if record.status == "error":
        lifecycle["message"] = record.message or "the block failed"
    elif record.status in ("skipped", "cancelled"):
        lifecycle["reason"] = record.message or record.status
    duration = None
    if record.started_at is not None and record.completed_at is not None:
        duration = round((record.completed_at - record.started_at) * 1000, 1)
    return {
        "id": record.id, "workflow_id": record.workflow_id,
        "workflow_version_id": record.workflow_version_id, "source_run_id": record.source_run_id,
        "source_step_id": record.source_step_id, "block_id": record.block_id,
        "block_type": record.block_type, "lifecycle": lifecycle,
        "handle_inputs": record.handle_inputs, "handle_outputs": record.handle_outputs,
        "artifact": None, "stepwell_artifact": record.artifact,
        "routing_decisions": record.routing_decisions, "duration_ms": duration,
        "block_config": record.block_config, "created_at": iso(record.created_at),
        "started_at": iso(record.started_at), "completed_at": iso(record.completed_at),
    }


def _definition(state: Any, org: str, run: Any) -> tuple[Workflow, str | None]:
    """The workflow to take the block from: the registered draft, else the run's own."""
    try:
        registered = state.store.get_workflow(run.workflow_id, org)
    except NotFoundError:
        stored = state.store.load_run(run.id)
        return Workflow.from_dict(stored.definition, source=run.id), stored.workflow_digest
    return definition_of(registered), registered.version_id


def _top(workflow: Workflow, block_id: str) -> str:
    """The top-level block ``block_id`` is in (itself when it is top-level)."""
    top = block_id
    while (parent := find_block(workflow, top).parent_id) is not None:
        top = parent
    return top


def _check_unchanged(state: Any, run_id: str, draft: Workflow, block_id: str) -> None:
    """Refuse (409 ``INELIGIBLE``) when a block upstream of ``block_id``, in the draft or
    in the run's definition, changed or was removed since the run."""
    from engine import durable

    stored = Workflow.from_dict(state.store.load_run(run_id).definition, source=run_id)
    top = _top(draft, block_id)
    upstream = durable.ancestors(state.engine.compile(draft), top)
    try:  # blocks upstream in the run, which the draft may have removed
        upstream |= durable.ancestors(state.engine.compile(stored), _top(stored, block_id))
    except (DefinitionError, RegistryError, UsageError):
        pass  # the run's definition no longer compiles here, or lacks the block
    removed = sorted(b for b in upstream if draft.block(b) is None)
    try:
        durable.check_unchanged(stored, draft, upstream, top)
    except UsageError as exc:
        gone = (f" Removed from the workflow since the run: {', '.join(removed)}."
                if removed else "")
        raise ApiError(409, "INELIGIBLE", f"{exc}{gone} Pass check_eligibility=false to "
                       "execute the block anyway.",
                       {"run_id": run_id, "block_id": block_id, "removed_blocks": removed}
                       ) from None


@router.get("", responses=ok(PageOut[BlockExecutionOut]),
            summary="List executions of one block of a run")
def list_executions(request: Request, org: Org, run_id: str | None = None,
                    block_id: str | None = None, before: str | None = None,
                    after: str | None = None,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
                    order: Literal["asc", "desc"] = "desc") -> Any:
    """Executions of ``block_id`` with the inputs of run ``run_id``."""
    state = server(request)
    rid = required("run_id", run_id, "the run whose block executions to list")
    bid = required("block_id", block_id, "the block whose executions to list")
    state.reader(org).run_record(rid)
    found = with_cursor(lambda: state.store.page_block_executions(
        org, run_id=rid, block_id=bid, limit=limit, after=after, before=before,
        descending=order == "desc"), after or before, "an execution")
    return page_json(found, lambda r: r.id, execution_json)


@router.post("", responses=ok(BlockExecutionOut), summary="Execute one block of a run again")
def create_execution(request: Request, body: BlockExecutionBody, org: Org) -> Any:
    """Run the block on the step's recorded inputs and return what it did."""
    state = server(request)
    run = state.reader(org).run_record(body.run_id)
    step = state.reader(org).reads.read_step(body.step_id or body.block_id, run_id=run.id,
                                            organization_id=org)
    if step.block_id != body.block_id:
        raise InputError(f"step_id: step {step.step_id} is a step of block {step.block_id!r}, "
                         f"not of {body.block_id!r}.")
    draft, version_id = _definition(state, org, run)
    block = find_block(draft, body.block_id)
    if body.n_consensus is not None:
        if body.n_consensus not in (3, 5, 7) or block.type not in _CONSENSUS_TYPES:
            raise InputError("n_consensus: 3, 5 or 7, on extract, split and classifier blocks "
                             f"only (block {block.id!r} is {block.type}).")
        draft = change_block(draft, block.id, BlockChange(config={"n_consensus": body.n_consensus}))
        block = find_block(draft, block.id)
    if body.check_eligibility:
        _check_unchanged(state, run.id, draft, block.id)
    created = time.time()
    replayed = anyio.run(lambda: replay_block(state.engine, draft, block.id, step.inputs,
                                              organization_id=org))
    record = BlockExecution(
        id=f"wfsim_{os.urandom(10).hex()}", workflow_id=run.workflow_id,
        organization_id=org, workflow_version_id=version_id, source_run_id=run.id,
        source_step_id=step.step_id, block_id=block.id, block_type=block.type,
        status="completed" if replayed.status != "error" else "error",
        message=replayed.message, handle_inputs=dict(step.inputs),
        handle_outputs=replayed.handle_outputs, routing_decisions=sorted(replayed.outputs),
        artifact=replayed.artifact, block_config=block.config, created_at=created,
        started_at=replayed.started_at, completed_at=replayed.completed_at)
    state.store.save_block_execution(record)
    return execution_json(record)
