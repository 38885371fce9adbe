"""Artifacts: the operation records steps produced (``client.workflows.artifacts``).

A list needs a scope, as Retab's does: ``run_id`` (every artifact of a run, in step
order) or ``step_id`` (the one artifact of that step; the run is found from the step when
``run_id`` is absent). An unscoped list is a 400. ``operation`` and ``block_id`` (a block
or step id) narrow the list. ``GET /artifacts/{id}`` answers in the shape of the
artifact's operation (:mod:`engine.server.artifact_shapes`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from engine.contracts.bounded import nesting_problem
from engine.server.artifact_shapes import artifact_json
from engine.server.auth import Org
from engine.server.drafts import server
from engine.server.errors import ApiError
from engine.server.lists import page
from engine.server.params import check_choices, reject_unknown_query
from engine.server.routes_read import MAX_ROW_DEPTH
from engine.server.schemas import ERRORS, PageOut, ok
from engine.server.shapes import SDK_ARTIFACT_OPERATIONS

router = APIRouter(prefix="/v1/workflows/artifacts",
                   dependencies=[Depends(reject_unknown_query)], responses=ERRORS)


@router.get("", responses=ok(PageOut[dict[str, Any]]), summary="List a run's artifacts")
def list_artifacts(
    request: Request, org: Org, run_id: str | None = None, operation: str | None = None,
    block_id: str | None = None, step_id: str | None = None, before: str | None = None,
    after: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """Artifacts of one run (``run_id``) or one step (``step_id``), in step order."""
    if run_id is None and step_id is None:
        raise ApiError(400, "MISSING_PARAMETER",
                       "Pass run_id (every artifact of a run) or step_id (one step's "
                       "artifact); stepwell does not scan artifacts across runs.",
                       {"parameters": ["run_id", "step_id"]})
    if operation is not None:
        check_choices("operation", [operation], SDK_ARTIFACT_OPERATIONS)
    api = server(request).reader(org)
    if step_id is not None:
        steps = [api.reads.read_step(step_id, run_id=run_id, organization_id=org)]
    else:
        steps = api.reads.run_steps(str(run_id), organization_id=org)
    records = []
    for step in steps:
        if step.artifact_id is None or block_id not in (None, step.block_id, step.step_id):
            continue
        if step.artifact_operation not in SDK_ARTIFACT_OPERATIONS:
            continue  # stepwell-only (end, merge_pdf): the SDK has no model for it
        if operation is not None and step.artifact_operation != operation:
            continue
        record = api.get_artifact(step.artifact_id)
        if nesting_problem(record, max_depth=MAX_ROW_DEPTH) is not None:
            continue  # stored before outputs were bounded: its step carries the note
        records.append(record)
    return page(records, [r["id"] for r in records], limit=limit, after=after, before=before,
                shape=artifact_json)


@router.get("/{artifact_id}", responses=ok(dict[str, Any]), summary="Get one artifact")
def get_artifact(request: Request, artifact_id: str, org: Org) -> Any:
    """The whole operation record, in the SDK's model of its operation.

    A stepwell-only record (an operation the SDK has no model for) is a 404 that says
    where to read it instead.
    """
    record = server(request).reader(org).get_artifact(artifact_id)
    if record.get("operation") not in SDK_ARTIFACT_OPERATIONS:
        raise ApiError(
            404, "ARTIFACT_NOT_SERVED",
            f"Artifact {artifact_id!r} is a stepwell-only {record.get('operation')!r} "
            "record, which the Retab SDK has no model for. Read it with `stepwell "
            f"artifacts get {artifact_id}`, or as `stepwell_artifact` of its step "
            f"(steps.get({record.get('step_id')!r})).",
            {"artifact_id": artifact_id, "operation": record.get("operation"),
             "step_id": record.get("step_id"),
             "served_operations": sorted(SDK_ARTIFACT_OPERATIONS)})
    return artifact_json(record)
