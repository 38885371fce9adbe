"""Human reviews over HTTP, in the shapes of the Retab review API.

A review has versions (:mod:`engine.server.review_versions`): the block's proposal, and
any corrections a reviewer adds (``POST /v1/workflows/reviews/versions``). Approving a
version records the decision (corrected data for a correction) and resumes the run in
the background; rejecting skips what depends on the step. Deciding the same way twice is
``already_applied``; deciding differently is a 409.

Retab only reviews ``extract``, ``split``, ``classifier`` and ``for_each`` blocks; a
stepwell ``hil`` review shows as ``extract`` with ``stepwell_block_type: hil``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from engine.contracts.bounded import MAX_REASON_CHARS, clean_text
from engine.contracts.errors import (
    ConflictError,
    InputError,
    NotFoundError,
    StepwellError,
    UsageError,
)
from engine.contracts.records import ReviewVersion
from engine.definition import Workflow
from engine.server.auth import Org
from engine.server.errors import ApiError
from engine.server.params import reject_unknown_query, with_cursor
from engine.server.review_versions import (
    add_correction,
    decided_version,
    decision_data,
    proposed_json,
    versions_of,
)
from engine.server.schemas import (
    ERRORS,
    ApproveBody,
    CreateVersionBody,
    PageOut,
    RejectBody,
    ReviewOut,
    ReviewVersionOut,
    SubmitDecisionOut,
    ok,
)
from engine.server.shapes import SDK_REVIEW_BLOCK_TYPES, actor, iso, version_json
from store.search import ReviewFilters, review_row, search_reviews

router = APIRouter(prefix="/v1/workflows/reviews", dependencies=[Depends(reject_unknown_query)],
                   responses=ERRORS)
_SDK_PREDICATES = frozenset({
    "always", "validation_failed", "confidence_lt", "category_in", "top_margin_lt",
    "split_count_neq", "any_split_pages_lt", "boundary_confidence_lt",
    "any_pages_unassigned", "any_required_field_null", "json_condition", "branch_in",
    "any_of", "all_of"})


def _state(request: Request) -> Any:
    return request.app.state.stepwell


# --------------------------------------------------------------------------- versions


def _versions(request: Request, row: dict[str, Any]) -> list[ReviewVersion]:
    return versions_of(_state(request).store, row)


# --------------------------------------------------------------------------- shapes


def _block_config(row: dict[str, Any]) -> dict[str, Any]:
    try:
        block = Workflow.from_dict(row["definition"] or {}).block(row["block_id"])
    except StepwellError:  # an unreadable stored definition must not hide the review
        return {}
    return dict(block.config) if block is not None and isinstance(block.config, dict) else {}


def _triggered_by(row: dict[str, Any]) -> dict[str, Any]:
    review = _block_config(row).get("review")
    predicate = review.get("predicate") if isinstance(review, dict) else None
    if isinstance(predicate, dict) and predicate.get("kind") in _SDK_PREDICATES:
        return predicate
    return {"kind": "always"}


def review_json(request: Request, row: dict[str, Any]) -> dict[str, Any]:
    """A review row in Retab's ``Review`` shape."""
    versions = _versions(request, row)
    true_type = row["block_type"] or "hil"
    sdk_type = "for_each" if true_type == "split_by_key" else true_type
    decision = None
    if row["decision"] is not None:
        decision = {"verdict": row["decision"], "version_id": decided_version(row, versions),
                    "author": actor("human", row["organization_id"]),
                    "created_at": iso(row["decided_at"]), "reason": row["note"]}
    cancelled = row["decision"] is None and row["run_status"] in ("cancelled", "completed",
                                                                   "error")
    return {
        "id": row["id"], "workflow_id": row["workflow_id"],
        "workflow_version_id": row["workflow_digest"], "run_id": row["run_id"],
        "block_id": row["block_id"], "step_id": row["step_id"], "parent_step_id": None,
        "iteration_key": None,
        "block_type": sdk_type if sdk_type in SDK_REVIEW_BLOCK_TYPES else "extract",
        "stepwell_block_type": true_type, "triggered_by": _triggered_by(row),
        "created_at": iso(row["created_at"]), "decision": decision,
        "cancelled_at": iso(row["run_completed_at"]) if cancelled else None,
        "proposed_version_id": versions[0].id,
    }


# --------------------------------------------------------------------------- routes


@router.get("", responses=ok(PageOut[ReviewOut]), summary="List reviews")
def list_reviews(
    request: Request, org: Org,
    workflow_id: str | None = None, run_id: str | None = None,
    block_id: str | None = None, step_id: str | None = None,
    iteration_key: str | None = None,
    decision_status: Literal["pending", "approved", "rejected", "decided", "cancelled",
                             "all"] = "pending",
    before: str | None = None, after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    order: Literal["asc", "desc"] = "asc",
) -> Any:
    """The review queue, oldest first by default (``decision_status=pending``)."""
    api = _state(request).reader(org)
    filters = ReviewFilters(workflow_id=workflow_id, run_id=run_id, block_id=block_id,
                            step_id=step_id, decision_status=decision_status)
    rows, more_before, more_after = with_cursor(
        lambda: search_reviews(api, filters, limit=limit, after=after, before=before,
                               descending=order == "desc"), after or before, "a review")
    if iteration_key is not None:
        rows = []  # stepwell reviews carry no iteration key
    return {"data": [review_json(request, r) for r in rows], "list_metadata": {
        "before": rows[0]["id"] if rows and more_before else None,
        "after": rows[-1]["id"] if rows and more_after else None}}


@router.get("/versions", responses=ok(PageOut[ReviewVersionOut]),
            summary="List a review's versions")
def list_versions(request: Request, org: Org, review_id: str,
                  before: str | None = None, after: str | None = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> Any:
    """The proposal first, then corrections, oldest first."""
    row = review_row(_state(request).reader(org), review_id)
    versions = _versions(request, row)
    ids = [v.id for v in versions]
    for cursor in (after, before):
        if cursor is not None and cursor not in ids:
            raise ApiError(422, "INVALID_CURSOR", f"Cursor {cursor!r} is not a version of "
                           f"review {review_id}. Pass list_metadata.after from the last page.")
    start = ids.index(after) + 1 if after else 0
    stop = ids.index(before) if before else len(ids)
    start = max(start, stop - limit) if before else start
    page = versions[start:min(stop, start + limit)]
    end = start + len(page)
    return {"data": [version_json(v) for v in page], "list_metadata": {
        "before": page[0].id if page and start > 0 else None,
        "after": page[-1].id if page and end < len(ids) else None}}


@router.post("/versions", responses=ok(ReviewVersionOut), summary="Add a corrected version")
def create_version(request: Request, body: CreateVersionBody, org: Org) -> Any:
    """Store corrected data for a pending review; approve the returned version to use it."""
    state = _state(request)
    row = review_row(state.reader(org), body.review_id)
    if row["decision"] is not None:
        raise ApiError(409, "REVIEW_DECIDED", f"Review {row['id']} was already "
                       f"{row['decision']}; decisions are final.")
    versions = _versions(request, row)
    if body.parent_id not in {v.id for v in versions}:
        raise ApiError(422, "UNKNOWN_PARENT_VERSION",
                       f"parent_id {body.parent_id!r} is not a version of review {row['id']}. "
                       f"Use one of: {', '.join(v.id for v in versions)}.")
    if not proposed_json(row)[0]:
        raise ApiError(422, "NOT_CORRECTABLE",
                       f"Review {row['id']} proposes files, not JSON; corrected data applies "
                       "to JSON outputs only. Approve or reject it as it is.")
    version = add_correction(state.store, row, parent_id=body.parent_id,
                             snapshot=body.snapshot, author_id=org,
                             note=None if body.note is None else
                             clean_text(body.note, limit=MAX_REASON_CHARS, multiline=True))
    return version_json(version)


@router.get("/versions/{version_id}", responses=ok(ReviewVersionOut),
            summary="Get a review version")
def get_version(request: Request, version_id: str, org: Org) -> Any:
    """One version (of a review visible to the caller)."""
    state = _state(request)
    if version_id.startswith("rvv_"):
        for row_id in _version_review_ids(request, version_id, org):
            row = review_row(state.reader(org), row_id)
            for version in _versions(request, row):
                if version.id == version_id:
                    return version_json(version)
    raise ApiError(404, "NOT_FOUND", f"No review version {version_id!r}. List a review's "
                   "versions with GET /v1/workflows/reviews/versions?review_id=...")


def _version_review_ids(request: Request, version_id: str, org: str) -> list[str]:
    try:
        return [_state(request).store.review_version(version_id).review_id]
    except NotFoundError:
        pass  # a proposal: it has no row; look among the organization's reviews
    api = _state(request).reader(org)
    rows, _, _ = search_reviews(api, ReviewFilters(decision_status="all"), limit=1000)
    return [r["id"] for r in rows]


@router.get("/{review_id}", responses=ok(ReviewOut), summary="Get a review")
def get_review(request: Request, review_id: str, org: Org) -> Any:
    """One review and its decision."""
    return review_json(request, review_row(_state(request).reader(org), review_id))


def _decide(request: Request, org: str, review_id: str, version_id: str, *, approved: bool,
            reason: str, acknowledged: list[str]) -> dict[str, Any]:
    state = _state(request)
    row = review_row(state.reader(org), review_id)
    versions = _versions(request, row)
    chosen = next((v for v in versions if v.id == version_id), None)
    if chosen is None:
        raise ApiError(422, "UNKNOWN_VERSION",
                       f"version_id {version_id!r} is not a version of review {review_id}. "
                       f"Use one of: {', '.join(v.id for v in versions)}.")
    parents = {v.parent_id for v in versions}
    latest = [v.id for v in versions if v.id not in parents]
    discarded = sorted(set(latest) - {chosen.id} - set(acknowledged))
    if approved and discarded:
        raise ApiError(409, "SUPERSEDED_VERSIONS",
                       f"Approving {chosen.id} discards the newer version(s) "
                       f"{', '.join(discarded)}. Pass them in "
                       "acknowledged_superseded_version_ids to confirm.",
                       {"discarded_version_ids": discarded})
    has_data = approved and chosen.parent_id is not None
    data = decision_data(row, chosen) if has_data else None
    try:
        _, changed = state.engine.record_decision(review_id, approved=approved, data=data,
                                                  has_data=has_data, reason=reason)
    except ConflictError as exc:
        raise ApiError(409, "REVIEW_DECIDED", str(exc)) from None
    except InputError as exc:  # corrected data that does not fit the block's output
        raise ApiError(422, "INVALID_DECISION_DATA", str(exc)) from None
    except UsageError as exc:
        raise ApiError(409, "RUN_ALREADY_ENDED", str(exc)) from None
    resume = "skipped"
    if changed:
        run = state.engine.store.load_run(row["run_id"])
        if not run.status.terminal:
            resume = state.supervisor.drive(row["run_id"])
    fresh = review_row(state.reader(org), review_id)
    return {"submission_status": "accepted" if changed else "already_applied",
            "review": review_json(request, fresh), "resume_status": resume,
            "resume_error": None}


@router.post("/{review_id}/approve", responses=ok(SubmitDecisionOut),
             summary="Approve a review version")
def approve(request: Request, review_id: str, body: ApproveBody, org: Org) -> Any:
    """Approve the proposal (or a correction, whose data replaces the step's JSON output)
    and resume the run."""
    return _decide(request, org, review_id, body.version_id, approved=True, reason="",
                   acknowledged=body.acknowledged_superseded_version_ids)


@router.post("/{review_id}/reject", responses=ok(SubmitDecisionOut),
             summary="Reject a review version")
def reject(request: Request, review_id: str, body: RejectBody, org: Org) -> Any:
    """Reject: what depends on the step is skipped, and the run continues."""
    return _decide(request, org, review_id, body.version_id, approved=False,
                   reason=body.reason, acknowledged=[])
