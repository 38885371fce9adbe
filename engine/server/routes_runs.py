"""Run routes beyond create, read and cancel: delete a run, export a block's outputs.

``DELETE /runs/{run_id}`` removes a run that ended, with its steps, reviews, artifacts
and logs (a run still going is a 409: cancel it first). ``POST /runs/export`` writes one
block's outputs over completed runs as CSV (:mod:`engine.server.run_export`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from engine.server.auth import Org
from engine.server.drafts import draft_of, server
from engine.server.errors import ApiError
from engine.server.params import check_choices, reject_unknown_query
from engine.server.run_export import check_block, export_rows, to_csv
from engine.server.schemas import ERRORS, ok
from engine.server.schemas_graph import ExportBody, ExportOut

router = APIRouter(prefix="/v1/workflows/runs", dependencies=[Depends(reject_unknown_query)],
                   responses=ERRORS)
_EXPORT_STATUSES = ("pending", "queued", "running", "completed", "error", "failed",
                    "awaiting_review", "cancelled")
_EXPORT_TRIGGERS = ("manual", "api", "schedule", "webhook", "email", "restart")
_ENDED = ("completed", "error", "cancelled")


@router.post("/export", responses=ok(ExportOut), summary="Export a block's outputs as CSV")
def export_runs(request: Request, body: ExportBody, org: Org) -> Any:
    """One row per completed step of ``block_id`` in the workflow's completed runs."""
    for name in ("status", "exclude_status"):
        value = getattr(body, name)
        check_choices(name, [value] if value else None, _EXPORT_STATUSES)
    check_choices("trigger_type", [body.trigger_type] if body.trigger_type else None,
                  _EXPORT_TRIGGERS)
    state = server(request)
    _, draft = draft_of(state, org, body.workflow_id)  # 404 for another organization's
    rows = export_rows(state.reader(org), body)
    if not rows:  # a typo must not look like "no data"; a block runs still hold is fine
        check_block(draft, body.workflow_id, body.block_id)
    return to_csv(rows, body)


@router.delete("/{run_id}", status_code=204, response_class=Response, summary="Delete a run")
def delete_run(request: Request, run_id: str, org: Org) -> Response:
    """Delete a run that ended, and everything recorded about it."""
    state = server(request)
    run = state.reader(org).run_record(run_id)  # 404 across organizations
    if run.status not in _ENDED or run_id in state.supervisor.active():
        raise ApiError(409, "RUN_NOT_ENDED",
                       f"Run {run_id} is {run.status}; only a run that ended can be deleted. "
                       "Cancel it first (client.workflows.runs.cancel).",
                       {"run_id": run_id, "status": run.status})
    state.store.delete_run(run_id)
    return Response(status_code=204)
