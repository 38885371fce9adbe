"""Request bodies and documented response shapes of the HTTP API (the OpenAPI document).

Request models are strict (unknown fields are 422). Response models document what the
routes return; the routes build the JSON themselves (:mod:`engine.server.shapes`) and
add the ``stepwell_*`` fields that keep the true value next to an SDK-enum one.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from engine.server.run_metadata import (
    MAX_METADATA_BYTES,
    MAX_METADATA_KEY_CHARS,
    MAX_METADATA_KEYS,
    MAX_METADATA_VALUE_CHARS,
)
from store.api import ArtifactRef, LegacyStep, ListMetadata, Step, WorkflowRun

T = TypeVar("T")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# --------------------------------------------------------------------------- errors


class ErrorDetail(BaseModel):
    """What went wrong: a stable code, a message saying what to do, structured details."""

    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorOut(BaseModel):
    """Every error response."""

    detail: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text} for status, text in (
        (401, "No or unknown API key"), (404, "Not found in your organization"),
        (409, "Conflict with the current state"), (413, "Body over the size cap"),
        (422, "Invalid request"))
}


def ok(model: Any) -> dict[int | str, dict[str, Any]]:
    """``responses=`` documenting a 200 body of ``model``."""
    return {200: {"model": model, "description": "Successful Response"}}


# --------------------------------------------------------------------------- responses


class PageOut(BaseModel, Generic[T]):
    """One page: ``list_metadata.after`` is null on the last page."""

    data: list[T]
    list_metadata: ListMetadata


class StepOut(Step):
    """A step (modern shape), ``block_type`` in the SDK enum."""

    stepwell_block_type: str
    stepwell_artifact: ArtifactRef | None = None


class LegacyStepOut(LegacyStep):
    """A step (legacy flat shape), ``node_type`` in the SDK enum."""

    stepwell_block_type: str


class RunOut(WorkflowRun):
    """A run (Retab ``WorkflowRun``)."""

    stepwell_trigger_type: str | None = None
    #: Of a pending or running run: ``{pid, heartbeat_at, alive, orphaned}``.
    stepwell_owner: dict[str, Any] | None = None


class WorkflowOut(BaseModel):
    """A registered workflow (Retab ``Workflow``)."""

    id: str
    name: str
    description: str
    project_id: str | None = None
    published: dict[str, Any] | None = None
    created_at: str
    updated_at: str
    organization_id: str
    stepwell_draft_version_id: str


class PlanSummary(BaseModel):
    """Counts of a plan."""

    add: int = 0
    change: int = 0
    destroy: int = 0
    replace: int = 0
    noop: int = 0
    total: int = 0
    has_changes: bool = False


class ApplyOut(BaseModel):
    """Result of ``spec/apply`` and ``spec/plan``."""

    workflow_id: str
    action: Literal["create", "update", "noop"]
    created: bool = False
    block_count: int
    edge_count: int
    diagnostics: dict[str, Any]
    format_version: str = "workflows-plan/v1"
    summary: PlanSummary
    resource_changes: list[dict[str, Any]] = Field(default_factory=list)
    rendered_plan: str
    workflow_version_id: str


class ValidateOut(BaseModel):
    """Result of ``spec/validate`` for a valid spec (an invalid one is a 422)."""

    workflow_id: str
    block_count: int
    edge_count: int
    is_valid: bool
    diagnostics: dict[str, Any]


class SpecOut(BaseModel):
    """A registered workflow's YAML."""

    workflow_id: str
    yaml_definition: str


class CancelOut(BaseModel):
    """Result of a cancel request."""

    run: RunOut
    redis_available: bool = False
    cancellation_status: Literal["cancelled", "cancellation_requested", "cancellation_failed"]


class ActorOut(BaseModel):
    """Who made a version or a decision."""

    kind: Literal["model", "agent", "human"]
    id: str
    display_name: str


class DecisionOut(BaseModel):
    """The decision recorded on a review."""

    verdict: Literal["approved", "rejected"]
    version_id: str
    author: ActorOut
    created_at: str
    reason: str | None = None


class ReviewOut(BaseModel):
    """A review (Retab ``Review``); ``block_type`` in the SDK enum."""

    id: str
    workflow_id: str
    workflow_version_id: str
    run_id: str
    block_id: str
    step_id: str
    parent_step_id: str | None = None
    iteration_key: str | None = None
    block_type: Literal["extract", "split", "classifier", "for_each"]
    stepwell_block_type: str
    triggered_by: dict[str, Any]
    created_at: str
    decision: DecisionOut | None = None
    cancelled_at: str | None = None
    proposed_version_id: str


class ReviewVersionOut(BaseModel):
    """A version of a review: the proposal, or a correction."""

    id: str
    review_id: str
    parent_id: str | None = None
    author: ActorOut
    snapshot: dict[str, Any]
    note: str | None = None
    created_at: str


class SubmitDecisionOut(BaseModel):
    """Result of approve / reject."""

    submission_status: Literal["accepted", "already_applied", "conflict"]
    review: ReviewOut
    resume_status: Literal["resumed", "pending", "failed", "skipped"]
    resume_error: str | None = None


# --------------------------------------------------------------------------- requests


class DeclarativeWorkflowBody(_Strict):
    """A workflow YAML to validate, plan or apply."""

    yaml_definition: str = Field(description="Retab declarative YAML (or the same as JSON).")
    project_id: str | None = Field(default=None, max_length=200,
                                   description="The project a workflow created from this "
                                               "spec belongs to (kept, filterable).")


class DocumentIn(_Strict):
    """A run document: ``url`` is a data URL (or a server path when allowed)."""

    filename: str | None = Field(default=None, max_length=512)
    url: str = Field(description="data:<mime>;base64,<content>")


class CreateRunBody(_Strict):
    """Start a run of a registered workflow."""

    workflow_id: str
    documents: dict[str, DocumentIn] | None = None
    json_inputs: dict[str, Any] | None = None
    version: str | None = Field(default="production",
                                description="production/draft/latest, or a version id.")
    metadata: dict[str, str] | None = Field(
        default=None,
        description=f"String tags (filterable): at most {MAX_METADATA_KEYS} keys of at most "
                    f"{MAX_METADATA_KEY_CHARS} characters, values of at most "
                    f"{MAX_METADATA_VALUE_CHARS} characters, {MAX_METADATA_BYTES} bytes in "
                    "all as UTF-8 JSON; more is a 422 INVALID_INPUT.")
    sources: Any = Field(default=None, description="Accepted and ignored.")


class CancelBody(_Strict):
    """Optional cancel body."""

    command_id: str | None = None


class ApproveBody(_Strict):
    """Approve one version of a review."""

    version_id: str
    acknowledged_superseded_version_ids: list[str] = Field(default_factory=list)


class RejectBody(_Strict):
    """Reject one version of a review, with a reason."""

    version_id: str
    reason: str = Field(min_length=1)


class CreateVersionBody(_Strict):
    """A corrected version of a review's snapshot."""

    review_id: str
    parent_id: str
    snapshot: dict[str, Any]
    note: str | None = None
    acknowledged_superseded_version_ids: list[str] = Field(default_factory=list)
