"""Block evals over HTTP (``client.workflows.evals``, ``.evals.runs``, ``.evals.results``).

Evals are stepwell's block tests reached from Retab's SDK (:mod:`engine.evals`): an eval
saves inputs for one block and one assertion; an eval run replays them on the draft in
the background (poll ``GET /evals/runs/{id}``) and writes one result per eval. The
assertion is checked when the eval is saved: one that does not parse, or that targets an
output handle the block does not have, is a 422 and nothing is stored.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from engine.contracts.bounded import check_json
from engine.contracts.errors import ConflictError, InputError, NotFoundError
from engine.contracts.evals import (
    EVAL_STATUSES,
    EVAL_TERMINAL,
    EvalDefinition,
    EvalRunFilters,
)
from engine.eval_checks import parse_assertion
from engine.evals import (
    capture_inputs,
    check_assertion_handle,
    check_target,
    execute_eval_run,
    new_eval,
    outcome_counts,
    plan_eval_run,
    run_results,
)
from engine.server.auth import Org
from engine.server.drafts import draft_of, server
from engine.server.eval_shapes import (
    CreateEvalBody,
    CreateEvalRunBody,
    ManualSourceIn,
    SourceIn,
    UpdateEvalBody,
    eval_json,
    eval_run_json,
    result_json,
)
from engine.server.lists import page_json, required
from engine.server.params import (
    check_choices,
    parse_when,
    reject_unknown_query,
    split_values,
    with_cursor,
)
from engine.server.schemas import ERRORS, PageOut, ok

router = APIRouter(prefix="/v1/workflows/evals", dependencies=[Depends(reject_unknown_query)],
                   responses=ERRORS)
Limit = Annotated[int, Query(ge=1, le=1000, description="Page size (1..1000).")]
Order = Literal["asc", "desc"]
_TRIGGERS = ("manual", "api", "schedule", "webhook", "email", "custom", "restart")


def _inputs(state: Any, org: str, workflow_id: str, block_id: str, source: SourceIn
            ) -> dict[str, Any]:
    """The handle inputs a source gives, checked against the block and the org's files."""
    if not isinstance(source, ManualSourceIn):
        return capture_inputs(state.store, org, workflow_id=workflow_id, block_id=block_id,
                              run_id=source.run_id, step_id=source.step_id)
    _, draft = draft_of(state, org, workflow_id)
    block = draft.block(block_id)
    impl = state.engine.registry.get(block.type) if block is not None else None
    handles = set(impl.input_handles(impl.parse_config(block.config))) if impl and block else set()
    for handle, payload in source.handle_inputs.items():
        if handle not in handles:
            raise InputError(f"source.handle_inputs.{handle}: block {block_id!r} has no such "
                             f"input handle (it has {', '.join(sorted(handles)) or 'none'}).")
        kind = payload.get("type", "json")
        if kind == "file":
            document = payload.get("document") or {}
            state.store.file_entry(str(document.get("id")), org)  # 404: not the org's file
        elif kind != "json":
            raise InputError(f"source.handle_inputs.{handle}.type: 'json' or 'file', "
                             f"not {kind!r}.")
    return dict(source.handle_inputs)


def _shown(state: Any, org: str, record: EvalDefinition) -> dict[str, Any]:
    latest = state.store.page_eval_results(org, eval_id=record.id, limit=20).items
    try:
        _, draft = draft_of(state, org, record.workflow_id)
        blocks = {b.id for b in draft.blocks}
    except NotFoundError:
        blocks = set()
    return eval_json(record, latest, blocks)


@router.get("", responses=ok(PageOut[dict[str, Any]]), summary="List a workflow's evals")
def list_evals(request: Request, org: Org, workflow_id: str | None = None,
               target_block_id: str | None = None, before: str | None = None,
               after: str | None = None, limit: Limit = 50, order: Order = "desc") -> Any:
    """Saved evals of a workflow, optionally of one block."""
    state = server(request)
    wid = required("workflow_id", workflow_id, "the workflow whose evals to list")
    state.store.get_workflow(wid, org)
    found = with_cursor(lambda: state.store.page_evals(
        org, workflow_id=wid, block_id=target_block_id, limit=limit, after=after,
        before=before, descending=order == "desc"), after or before, "an eval")
    return page_json(found, lambda e: e.id, lambda e: _shown(state, org, e))


@router.post("", status_code=201, responses={201: {"description": "The created eval"}},
             summary="Save an eval")
def create_eval(request: Request, body: CreateEvalBody, org: Org) -> Any:
    """Save inputs for one block and an assertion on its output."""
    check_json(body.model_dump(mode="json"), what="the eval")
    state = server(request)
    _, draft = draft_of(state, org, body.workflow_id)
    block_id = body.target.block_id
    check_target(draft, block_id, state.engine.registry)
    assertion = parse_assertion(body.assertion)
    check_assertion_handle(draft, block_id, assertion, state.engine.registry)
    inputs = _inputs(state, org, body.workflow_id, block_id, body.source)
    record = new_eval(workflow_id=body.workflow_id, organization_id=org, block_id=block_id,
                      name=body.name, source=body.source.model_dump(exclude_none=True),
                      handle_inputs=inputs, assertion=assertion, now=time.time())
    state.store.save_eval(record)
    return _shown(state, org, record)


@router.get("/runs", responses=ok(PageOut[dict[str, Any]]), summary="List eval runs")
def list_eval_runs(
    request: Request, org: Org, workflow_id: str | None = None, eval_id: str | None = None,
    target_block_id: str | None = None, status: Annotated[list[str] | None, Query()] = None,
    exclude_status: Annotated[list[str] | None, Query()] = None,
    trigger_type: Annotated[list[str] | None, Query()] = None, from_date: str | None = None,
    to_date: str | None = None, sort_by: Literal["created_at"] = "created_at",
    before: str | None = None, after: str | None = None, limit: Limit = 50,
    order: Order = "desc",
) -> Any:
    """Eval runs, newest first, filtered."""
    state = server(request)
    statuses, excluded = split_values(status), split_values(exclude_status)
    for name, values in (("status", statuses), ("exclude_status", excluded)):
        check_choices(name, values, EVAL_STATUSES)
    triggers = split_values(trigger_type)
    check_choices("trigger_type", triggers, _TRIGGERS)
    filters = EvalRunFilters(workflow_id=workflow_id, eval_id=eval_id, block_id=target_block_id,
                             statuses=tuple(statuses or ()), exclude_statuses=tuple(excluded or ()),
                             triggers=tuple(triggers or ()),
                             created_from=parse_when("from_date", from_date),
                             created_to=parse_when("to_date", to_date, end=True))
    found = with_cursor(lambda: state.store.page_eval_runs(
        org, filters, limit=limit, after=after, before=before, descending=order == "desc"),
        after or before, "an eval run")
    return page_json(found, lambda r: r.id,
                     lambda r: eval_run_json(r, outcome_counts(run_results(state.store, r))))


@router.post("/runs", responses=ok(dict[str, Any]), summary="Run evals")
def create_eval_run(request: Request, body: CreateEvalRunBody, org: Org) -> Any:
    """Replay the scope's evals on the draft, in the background."""
    state = server(request)
    scope = body.scope.model_dump() if body.scope is not None else None
    run = plan_eval_run(state.store, org, workflow_id=body.workflow_id, scope=scope,
                        trigger="api", now=time.time())
    state.background.start(f"stepwell-evals-{run.id}",
                           lambda: execute_eval_run(state.engine, run.id, org))
    return eval_run_json(run, outcome_counts(run_results(state.store, run)))


@router.get("/runs/{run_id}", responses=ok(dict[str, Any]), summary="Get an eval run")
def get_eval_run(request: Request, run_id: str, org: Org) -> Any:
    """One eval run with its lifecycle and counts."""
    state = server(request)
    run = state.store.get_eval_run(run_id, org)
    return eval_run_json(run, outcome_counts(run_results(state.store, run)))


@router.post("/runs/{run_id}/cancel", responses=ok(dict[str, Any]),
             summary="Cancel an eval run")
def cancel_eval_run(request: Request, run_id: str, org: Org) -> Any:
    """Stop a run: evals not started yet are cancelled (409 when it already ended)."""
    state = server(request)
    run = state.store.get_eval_run(run_id, org)
    if run.status in EVAL_TERMINAL:
        raise ConflictError(f"Eval run {run_id} already ended ({run.status}).")
    run = state.store.cancel_eval_run(run_id, org, reason="cancelled by request",
                                      now=time.time())
    if run.status == "cancelled":
        for result in run_results(state.store, run):
            if result.status not in EVAL_TERMINAL:
                state.store.save_eval_result(replace(result, status="cancelled",
                                                     completed_at=time.time()))
    return eval_run_json(run, outcome_counts(run_results(state.store, run)))


@router.get("/results", responses=ok(PageOut[dict[str, Any]]), summary="List eval results")
def list_eval_results(request: Request, org: Org, run_id: str | None = None,
                      before: str | None = None, after: str | None = None,
                      limit: Limit = 20, order: Order = "desc") -> Any:
    """The results of one eval run."""
    state = server(request)
    rid = required("run_id", run_id, "the eval run whose results to list")
    state.store.get_eval_run(rid, org)
    found = with_cursor(lambda: state.store.page_eval_results(
        org, eval_run_id=rid, limit=limit, after=after, before=before,
        descending=order == "desc"), after or before, "a result")
    return page_json(found, lambda r: r.id, result_json)


@router.get("/results/{result_id}", responses=ok(dict[str, Any]), summary="Get an eval result")
def get_eval_result(request: Request, result_id: str, org: Org) -> Any:
    """One result: verdict, outputs, and the assertion's outcome."""
    return result_json(server(request).store.get_eval_result(result_id, org))


@router.get("/{eval_id}", responses=ok(dict[str, Any]), summary="Get an eval")
def get_eval(request: Request, eval_id: str, org: Org) -> Any:
    """One eval with its latest results."""
    state = server(request)
    return _shown(state, org, state.store.get_eval(eval_id, org))


@router.patch("/{eval_id}", responses=ok(dict[str, Any]), summary="Change an eval")
def update_eval(request: Request, eval_id: str, body: UpdateEvalBody, org: Org) -> Any:
    """Change the name, the assertion and/or the source (inputs are captured again)."""
    check_json(body.model_dump(mode="json"), what="the eval")
    state = server(request)
    record = state.store.get_eval(eval_id, org)
    changes: dict[str, Any] = {"updated_at": time.time()}
    if body.name is not None:
        changes["name"] = body.name
    if body.assertion is not None:
        changes["assertion"] = parse_assertion(body.assertion)
        _, draft = draft_of(state, org, record.workflow_id)
        check_assertion_handle(draft, record.block_id, changes["assertion"],
                               state.engine.registry)
    if body.source is not None:
        changes["handle_inputs"] = _inputs(state, org, record.workflow_id, record.block_id,
                                           body.source)
        changes["source"] = body.source.model_dump(exclude_none=True)
    updated = replace(record, **changes)
    state.store.save_eval(updated)
    return _shown(state, org, updated)


@router.delete("/{eval_id}", status_code=204, response_class=Response, summary="Delete an eval")
def delete_eval(request: Request, eval_id: str, org: Org) -> Response:
    """Delete an eval (its past results stay readable)."""
    server(request).store.delete_eval(eval_id, org)
    return Response(status_code=204)
