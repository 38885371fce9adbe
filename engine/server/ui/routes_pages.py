"""The pages: ``/``, ``/runs/{run_id}``, ``/runs/{run_id}/steps/{step_id}``, ``/reviews``,
``/reviews/{review_id}``, a container's iterations (``/runs/{run_id}/iterations``) and a
step's log past its first page (``/runs/{run_id}/steps/{step_id}/logs?after=SEQ``).

Every page is a stable URL (filters, cursors and the selected block are in the query
string) and is rendered on the server. Route functions are plain ``def``: FastAPI runs
them in worker threads, each with its own read-only connection.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from engine.contracts.errors import NotFoundError
from engine.contracts.outline import RunPresence
from engine.server.ui.common import gate, not_found, notice_of, server_state, ui_state
from engine.server.ui.render import page
from engine.server.ui.review_view import QUEUE_FILTERS, build_review_model, queue
from engine.server.ui.run_view import (
    LIVE_RUN_STATUSES,
    TERMINAL,
    build_run_model,
    iterations_page,
    run_clock,
)
from engine.server.ui.runs_view import parse_query, runs_page
from engine.server.ui.step_view import (
    artifact_rest,
    build_step_model,
    classifier_scores,
    extraction_fields,
    read_logs,
)
from store.api import ReadAPI

router = APIRouter(include_in_schema=False)
BLOCK_STEPS_PAGE = 50


@router.get("/")
def runs_list(request: Request) -> Response:
    """Runs, newest first, filtered; live."""
    viewer = gate(request)
    if isinstance(viewer, Response):
        return viewer
    api = server_state(request).reader(viewer.organization_id)
    query = parse_query(request.query_params)
    try:
        model = runs_page(api, query)
    except NotFoundError:  # a stale cursor: start again from the newest
        model = runs_page(api, parse_query({k: v for k, v in request.query_params.items()
                                            if k not in ("after", "before")}))
    return page(ui_state(request).env, request, viewer, "runs.html",
                {"page": model, "notice": notice_of(request), "live": True})


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: str, block: str | None = None,
             after: str | None = None) -> Response:
    """One run: status, actions, graph, timeline, inputs and outputs."""
    viewer = gate(request)
    if isinstance(viewer, Response):
        return viewer
    server = server_state(request)
    api = server.reader(viewer.organization_id)
    try:
        run = api.get_run(run_id)
    except NotFoundError:
        return not_found(request, viewer, f"run {run_id}")
    workflow = ui_state(request).workflow(server, run.workflow_version_id, run_id)
    model = build_run_model(api, run, workflow)
    presence = api.reads.run_presence([run_id], organization_id=api.organization_id
                                      ).get(run_id)
    duration, lost = run_clock(run, presence)
    status = run.lifecycle.status
    context: dict[str, Any] = {
        "run": run, "status": status, "model": model, "duration_ms": duration,
        "owner_lost": lost, "presence": presence, "notice": notice_of(request),
        "can_cancel": status not in TERMINAL, "can_resume": lost and status in
        LIVE_RUN_STATUSES, "live": status not in TERMINAL,
        "rerun_choices": [(s.step_id, s.label or s.step_id) for s in model.top],
        "failed_steps": sum(b.counts.get("error", 0) for b in model.blocks.values()),
        "failed_items": sum(b.items.failed for b in model.blocks.values() if b.items),
        "block": model.blocks.get(block) if block else None, "block_steps": None,
    }
    if context["block"] is not None:
        try:
            context["block_steps"] = api.list_steps(run_id, block_id=block,
                                                    limit=BLOCK_STEPS_PAGE, after=after)
        except NotFoundError:
            context["block_steps"] = api.list_steps(run_id, block_id=block,
                                                    limit=BLOCK_STEPS_PAGE)
    return page(ui_state(request).env, request, viewer, "run.html", context)


@router.get("/runs/{run_id}/iterations")
def iterations(request: Request, run_id: str, step: str,
               page_no: Annotated[int, Query(alias="page", ge=0, le=10**6)] = 0,
               show: str = "all") -> Response:
    """A loop container step's iterations, a page at a time (also a page of its own)."""
    viewer = gate(request)
    if isinstance(viewer, Response):
        return viewer
    api = server_state(request).reader(viewer.organization_id)
    try:
        status = run_header(api, run_id).status
        model = iterations_page(api, run_id, step, page=page_no,
                                show=show if show in ("all", "failed", "open") else "all")
    except NotFoundError:
        model = None
    if model is None:
        return not_found(request, viewer, f"loop step {step} of run {run_id}")
    return page(ui_state(request).env, request, viewer, "iterations.html",
                {"run_id": run_id, "it": model, "live": status not in TERMINAL})


@router.get("/runs/{run_id}/steps/{step_id}")
def step_page(request: Request, run_id: str, step_id: str) -> Response:
    """One step's whole record."""
    viewer = gate(request)
    if isinstance(viewer, Response):
        return viewer
    server = server_state(request)
    api = server.reader(viewer.organization_id)
    try:
        run = run_header(api, run_id)
        model = build_step_model(api, run_id, step_id)
    except NotFoundError:
        return not_found(request, viewer, f"step {step_id} of run {run_id}")
    ui = ui_state(request)
    pages = {d.file_id: ui.pages.page_count(d.file_id) for d in model.documents if d.pdf}
    artifact = model.artifact or {}
    reviews, _, _ = queue_for_step(api, run_id, step_id)
    return page(ui.env, request, viewer, "step.html", {
        "run": run, "m": model, "s": model.step, "pages": pages,
        "fields": extraction_fields(artifact) if artifact else [],
        "scores": classifier_scores(artifact) if artifact else [],
        "evaluations": artifact.get("evaluations") if isinstance(
            artifact.get("evaluations"), list) else [],
        "artifact_rest": artifact_rest(artifact) if artifact else {},
        "reviews": reviews, "live": run.status not in TERMINAL})


@router.get("/runs/{run_id}/steps/{step_id}/logs")
def step_logs(request: Request, run_id: str, step_id: str,
              after: Annotated[int, Query(ge=0, le=2**62)] = 0) -> Response:
    """A step's log entries after ``seq`` ``after``, by attempt; live while the run goes."""
    viewer = gate(request)
    if isinstance(viewer, Response):
        return viewer
    api = server_state(request).reader(viewer.organization_id)
    try:
        run = run_header(api, run_id)
        logs = read_logs(api, run_id, step_id, after)
        step = api.reads.outline_steps(run_id, [step_id], organization_id=api.organization_id)
    except NotFoundError:
        return not_found(request, viewer, f"step {step_id} of run {run_id}")
    return page(ui_state(request).env, request, viewer, "logs.html", {
        "run": run, "run_id": run_id, "step_id": step_id, "logs": logs,
        "unsettled": bool(step) and step[0].status in ("pending", "queued", "running"),
        "live": run.status not in TERMINAL})


def run_header(api: ReadAPI, run_id: str) -> RunPresence:
    """A run without its payloads (what pages about one of its steps show of it).

    Raises:
        NotFoundError: no such run visible to the API's organization.
    """
    found = api.reads.run_presence([run_id], organization_id=api.organization_id)
    if run_id not in found:
        raise NotFoundError("run", run_id)
    return found[run_id]


def queue_for_step(api: Any, run_id: str, step_id: str) -> tuple[list[dict[str, Any]],
                                                                  bool, bool]:
    """Reviews opened for one step (any decision)."""
    from store.search import ReviewFilters, search_reviews

    return search_reviews(api, ReviewFilters(run_id=run_id, step_id=step_id,
                                             decision_status="all"), limit=20)


@router.get("/reviews")
def reviews_list(request: Request, show: str = "pending", after: str | None = None,
                 before: str | None = None) -> Response:
    """The review queue, oldest first."""
    viewer = gate(request)
    if isinstance(viewer, Response):
        return viewer
    api = server_state(request).reader(viewer.organization_id)
    show = show if show in QUEUE_FILTERS else "pending"
    try:
        rows, prev_cursor, next_cursor = queue(api, show, after, before)
    except NotFoundError:
        rows, prev_cursor, next_cursor = queue(api, show, None, None)
    return page(ui_state(request).env, request, viewer, "reviews.html", {
        "rows": rows, "show": show, "filters": QUEUE_FILTERS, "prev_cursor": prev_cursor,
        "next_cursor": next_cursor, "notice": notice_of(request), "live": True})


@router.get("/reviews/{review_id}")
def review_page(request: Request, review_id: str) -> Response:
    """One review: the document and the proposed data side by side, and the decision."""
    viewer = gate(request)
    if isinstance(viewer, Response):
        return viewer
    server = server_state(request)
    api = server.reader(viewer.organization_id)
    try:
        model = build_review_model(api, server.store, review_id)
    except NotFoundError:
        return not_found(request, viewer, f"review {review_id}")
    return review_response(request, viewer, model)


def review_response(request: Request, viewer: Any, model: Any, problems: list[str] | None
                    = None, values: dict[str, str] | None = None,
                    status_code: int = 200) -> Response:
    """The review page, with the reviewer's values and problems after a failed submit."""
    ui = ui_state(request)
    pages = {d.file_id: ui.pages.page_count(d.file_id) for d in model.documents if d.pdf}
    return page(ui.env, request, viewer, "review.html", {
        "m": model, "pages": pages, "problems": problems or [], "values": values or {},
        "notice": notice_of(request),
        "live": model.run.status not in TERMINAL}, status_code=status_code)
