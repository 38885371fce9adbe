"""Read endpoints: runs and steps in the shapes of the Retab API.

``GET /v1/workflows/runs/{run_id}/steps`` serves the legacy flat shape as a bare array;
``GET /v1/workflows/steps`` and ``/steps/{step_id}`` the modern shape;
``GET /v1/workflows/runs`` and ``/runs/{run_id}`` Retab's ``WorkflowRun``.

A step that cannot be rendered (JSON nested too deeply to serialise, stored before
outputs were bounded) is answered without its payloads and with a ``stepwell_unreadable``
note, so one unreadable row never fails a whole listing (:func:`render_row`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request

from engine.contracts.bounded import nesting_problem
from engine.server.auth import Org
from engine.server.params import (
    check_choices,
    parse_metadata,
    parse_when,
    reject_unknown_query,
    split_values,
    with_cursor,
)
from engine.server.run_metadata import MAX_METADATA_KEYS
from engine.server.schemas import ERRORS, LegacyStepOut, PageOut, RunOut, StepOut, ok
from engine.server.shapes import SDK_TYPE_MEMBERS, legacy_step_json, step_json
from store.search import RUN_STATUS_ALIASES, RUN_STATUSES, RunFilters, search_runs

router = APIRouter(prefix="/v1/workflows", dependencies=[Depends(reject_unknown_query)],
                   responses=ERRORS)

STEP_STATUSES = ("pending", "queued", "running", "completed", "skipped", "error",
                 "awaiting_review", "cancelled", "waiting_for_human")
TRIGGERS = ("manual", "api", "schedule", "webhook", "email", "custom", "restart")
MAX_MS = 10**13  # about 300 years: larger values only overflow SQLite integers
Limit = Annotated[int, Query(ge=1, le=1000, description="Page size (1..1000).")]


#: Deepest JSON a row may render to: deeper responses fail to serialise.
MAX_ROW_DEPTH = 200
#: Fields of a stored row that carry block data; an unreadable row is shown without them.
PAYLOAD_FIELDS = ("handle_inputs", "handle_outputs", "artifact", "output", "input_document",
                  "output_document", "trace_spans")
_Row = TypeVar("_Row")


def _state(request: Request) -> Any:
    return request.app.state.stepwell


def render_row(render: Callable[[_Row], dict[str, Any]], row: _Row) -> dict[str, Any]:
    """``render(row)``, or the row without its payloads and with a ``stepwell_unreadable`` note
    when it cannot be rendered (nested too deeply, unserialisable).

    Args:
        render: the shape function (``step_json``, ``legacy_step_json``...).
        row: a stored record (a pydantic model).
    """
    try:
        data = render(row)
        problem = nesting_problem(data, max_depth=MAX_ROW_DEPTH)
        if problem is None:
            return data
        reason = f"nested deeper than {MAX_ROW_DEPTH} levels"
    except (ValueError, TypeError, RecursionError) as exc:  # pydantic's depth guard
        reason = f"nested too deeply or not serialisable: {type(exc).__name__}"
    fields = getattr(type(row), "model_fields", {})
    cleared = {name: fields[name].get_default(call_default_factory=True)
               for name in PAYLOAD_FIELDS if name in fields}
    data = render(row.model_copy(update=cleared))  # type: ignore[attr-defined]
    data["stepwell_unreadable"] = (
        f"this row could not be rendered ({reason}); its inputs, outputs and artifact are "
        "left out. The rest of the list is complete.")
    return data


def _block_types(request: Request, values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    registry = _state(request).engine.registry
    known = set(registry.names(authorable_only=False)) | set(SDK_TYPE_MEMBERS) | {"start", "functions"}
    check_choices("block_type", values, known)
    expanded: list[str] = []
    for value in values:
        for member in SDK_TYPE_MEMBERS.get(value, (value,)):
            if member not in expanded:
                expanded.append(member)
    return expanded


@router.get("/runs/{run_id}/steps", responses=ok(list[LegacyStepOut]),
            summary="Every step of a run (legacy flat shape)")
def list_run_steps(request: Request, run_id: str, org: Org) -> Any:
    """The full persisted step list of a run, as a bare array (``node_id``, ``status``)."""
    api = _state(request).reader(org)
    return [render_row(legacy_step_json, s) for s in api.list_legacy_steps(run_id)]


@router.get("/steps", responses=ok(PageOut[StepOut]), summary="List steps of a run")
def list_steps(
    request: Request, org: Org,
    run_id: Annotated[str, Query(description="The run whose steps to list.")],
    limit: Limit = 20,
    workflow_id: str | None = None,
    block_id: str | None = None,
    step_id: str | None = None,
    block_type: Annotated[list[str] | None, Query()] = None,
    status: Annotated[list[str] | None, Query()] = None,
    before: str | None = None,
    after: str | None = None,
    include_download_urls: bool = False,
) -> Any:
    """A run's steps in creation order, filtered; ``after``/``before`` are step ids from
    ``list_metadata``. ``include_download_urls`` is accepted and ignored: documents are
    referenced by id only."""
    api = _state(request).reader(org)
    run = api.get_run(run_id)
    statuses = split_values(status)
    check_choices("status", statuses, STEP_STATUSES)
    types = _block_types(request, split_values(block_type))
    if workflow_id is not None and workflow_id != run.workflow_id:
        return {"data": [], "list_metadata": {"before": None, "after": None}}
    page = with_cursor(lambda: api.list_steps(
        run_id, block_id=block_id, step_id=step_id, block_type=types, status=statuses,
        limit=limit, after=after, before=before), after or before, "a step")
    return {"data": [render_row(step_json, s) for s in page.data],
            "list_metadata": page.list_metadata.model_dump()}


@router.get("/steps/{step_id}", responses=ok(StepOut), summary="Get one step")
def get_step(request: Request, step_id: str, org: Org, run_id: str | None = None,
             include_download_urls: bool = False) -> Any:
    """One step; ``run_id`` disambiguates a step id that several runs share (409 without)."""
    return render_row(step_json, _state(request).reader(org).get_step(step_id, run_id=run_id))


@router.get("/runs/{run_id}", responses=ok(RunOut), summary="Get one run")
def get_run(request: Request, run_id: str, org: Org) -> Any:
    """A run in Retab's ``WorkflowRun`` shape (``stepwell_owner`` says whether an active
    run's owner process is alive)."""
    state = _state(request)
    api = state.reader(org)
    return state.run_json(api, api.get_run(run_id))


@router.get("/runs", responses=ok(PageOut[RunOut]), summary="List runs")
def list_runs(
    request: Request, org: Org,
    limit: Limit = 20,
    workflow_id: str | None = None,
    status: Annotated[list[str] | None, Query()] = None,
    exclude_status: Annotated[list[str] | None, Query()] = None,
    trigger_type: Annotated[list[str] | None, Query()] = None,
    from_date: str | None = None,
    to_date: str | None = None,
    min_duration_ms: Annotated[int | None, Query(ge=0, le=MAX_MS)] = None,
    max_duration_ms: Annotated[int | None, Query(ge=0, le=MAX_MS)] = None,
    search: Annotated[str | None, Query(max_length=200)] = None,
    metadata: Annotated[str | None, Query(
        description=f"JSON object of at most {MAX_METADATA_KEYS} string pairs, every one "
                    'must match, e.g. {"k": "v"}')] = None,
    before: str | None = None,
    after: str | None = None,
    order: Literal["asc", "desc"] = "desc",
    sort_by: Literal["timing.created_at", "created_at"] = "timing.created_at",
) -> Any:
    """Runs of the caller's organization, newest first unless ``order=asc``."""
    statuses, excluded = split_values(status), split_values(exclude_status)
    for name, values in (("status", statuses), ("exclude_status", excluded)):
        check_choices(name, values, (*RUN_STATUSES, *RUN_STATUS_ALIASES))
    triggers = split_values(trigger_type)
    check_choices("trigger_type", triggers, TRIGGERS)
    filters = RunFilters(
        statuses=statuses, exclude_statuses=excluded, workflow_id=workflow_id,
        trigger_types=triggers, created_from=parse_when("from_date", from_date),
        created_to=parse_when("to_date", to_date, end=True),
        min_duration_ms=min_duration_ms, max_duration_ms=max_duration_ms,
        search=search or None, metadata=parse_metadata(metadata))
    state = _state(request)
    api = state.reader(org)
    page = with_cursor(lambda: search_runs(api, filters, limit=limit, after=after,
                                           before=before, descending=order == "desc"),
                       after or before, "a run")
    return {"data": [state.run_json(api, r) for r in page.data],
            "list_metadata": page.list_metadata.model_dump()}
