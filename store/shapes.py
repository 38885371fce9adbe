"""Read models: steps and runs as the Retab API shows them.

Two step shapes are served from the same rows:

- :class:`Step`, the modern shape (``GET /v1/workflows/steps/{id}``): ``block_*``,
  a ``lifecycle`` object discriminated by ``status`` (``error`` adds message, stage,
  category, details; ``skipped``/``cancelled`` add reason), handle payloads, artifact ref.
- :class:`LegacyStep`, the older flat shape (``GET /v1/workflows/runs/{id}/steps``):
  ``node_*``, ``status`` with ``waiting_for_human``, flat ``error_*`` fields, documents
  with ``file_id``.

Runs are served as :class:`WorkflowRun`. Read models show the *true* block type and run
status; :func:`sdk_step`, :func:`sdk_legacy_step` and :func:`sdk_run` map them onto the
strict enums of the Retab SDK (keeping the true type in ``stepwell_block_type``).

Rows become these models in :mod:`store.rows`; :class:`store.api.ReadAPI` serves them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

# --------------------------------------------------------------------------- payloads


class _Model(BaseModel):
    # Validators are built on a model's first use: a command that reads one run builds
    # the run's models, not the steps' or the pages'.
    model_config = ConfigDict(populate_by_name=True, protected_namespaces=(), defer_build=True)


class DocumentRef(_Model):
    """A file in the file store."""

    id: str
    filename: str
    mime_type: str


class JsonPayload(_Model):
    """``{type: json, data}``."""

    type: Literal["json"] = "json"
    data: Any = None


class FilePayload(_Model):
    """``{type: file, document: {id, filename, mime_type}}``."""

    type: Literal["file"] = "file"
    document: DocumentRef


HandlePayload = Annotated[JsonPayload | FilePayload, Field(discriminator="type")]


class LegacyDocumentRef(_Model):
    """A file in the legacy shape (``file_id`` instead of ``id``)."""

    file_id: str
    filename: str
    mime_type: str


class LegacyFilePayload(_Model):
    """Legacy ``{type: file, document: {file_id, filename, mime_type}}``."""

    type: Literal["file"] = "file"
    document: LegacyDocumentRef


LegacyHandlePayload = Annotated[JsonPayload | LegacyFilePayload, Field(discriminator="type")]

# --------------------------------------------------------------------------- step lifecycle


class ErrorDetails(_Model):
    """``error.details``: where and why a step failed."""

    stack_trace: str | None = None
    block_id: str | None = None
    block_name: str | None = None
    error_code: str | None = None
    context: dict[str, Any] | None = None


class PendingLifecycle(_Model):
    """Created, not started."""

    status: Literal["pending"] = "pending"


class QueuedLifecycle(_Model):
    """Ready, waiting for a worker."""

    status: Literal["queued"] = "queued"


class RunningLifecycle(_Model):
    """Executing."""

    status: Literal["running"] = "running"


class CompletedLifecycle(_Model):
    """Finished successfully."""

    status: Literal["completed"] = "completed"


class AwaitingReviewLifecycle(_Model):
    """Paused on a human decision."""

    status: Literal["awaiting_review"] = "awaiting_review"


class ErrorLifecycle(_Model):
    """Failed; the error is bundled here."""

    status: Literal["error"] = "error"
    message: str
    stage: str | None = None
    category: str | None = None
    details: ErrorDetails | None = None


class SkippedLifecycle(_Model):
    """Not run; ``reason`` names the cause."""

    status: Literal["skipped"] = "skipped"
    reason: str


class CancelledLifecycle(_Model):
    """Cancelled; ``reason`` says why."""

    status: Literal["cancelled"] = "cancelled"
    reason: str


StepLifecycle = Annotated[
    PendingLifecycle | QueuedLifecycle | RunningLifecycle | CompletedLifecycle
    | AwaitingReviewLifecycle | ErrorLifecycle | SkippedLifecycle | CancelledLifecycle,
    Field(discriminator="status"),
]


class LoopContainer(_Model):
    """One level of loop nesting (outermost first in ``loop_containers``)."""

    container_id: str
    iteration: int
    is_parallel: bool = False
    parallel_item_index: int | None = None


class ArtifactRef(_Model):
    """``(operation, id)`` pointer to the operation record a step produced."""

    operation: str
    id: str


class Step(_Model):
    """A step in the modern shape (seed ``get-step``), plus cost, tokens, trace, timing."""

    step_id: str
    run_id: str
    block_id: str
    block_type: str
    block_label: str
    lifecycle: StepLifecycle
    started_at: datetime | None = None
    completed_at: datetime | None = None
    created_at: datetime | None = None
    loop_containers: list[LoopContainer] = Field(default_factory=list)
    handle_inputs: dict[str, HandlePayload] = Field(default_factory=dict)
    handle_outputs: dict[str, HandlePayload] = Field(default_factory=dict)
    artifact: ArtifactRef | None = None
    retry_count: int = 0
    model: str | None = None
    cost: dict[str, Any] | None = None
    tokens: dict[str, Any] | None = None
    trace_spans: list[dict[str, Any]] | None = None
    duration_ms: int | None = None
    updated_at: datetime | None = None


class IterationContext(_Model):
    """Legacy ``iteration_context``: the container hierarchy."""

    containers: list[LoopContainer] = Field(default_factory=list)


class LegacyStep(_Model):
    """A step in the legacy flat shape (seed ``list-run-steps``)."""

    run_id: str
    organization_id: str
    node_id: str
    step_id: str
    node_type: str
    node_label: str
    status: str
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_ms: int | None = None
    error: str | None = None
    error_stage: str | None = None
    error_category: str | None = None
    error_details: ErrorDetails | None = None
    model: str | None = None
    cost: dict[str, Any] | None = None
    tokens: dict[str, Any] | None = None
    trace_spans: list[dict[str, Any]] | None = None
    output: Any = None
    handle_outputs: dict[str, LegacyHandlePayload] = Field(default_factory=dict)
    handle_inputs: dict[str, LegacyHandlePayload] = Field(default_factory=dict)
    input_document: LegacyDocumentRef | None = None
    output_document: LegacyDocumentRef | None = None
    split_documents: dict[str, LegacyDocumentRef] | None = None
    requires_human_review: bool | None = None
    human_reviewed_at: datetime | None = None
    human_review_approved: bool | None = None
    retry_count: int | None = 0
    loop_id: str | None = None
    iteration: int | None = None
    iteration_context: IterationContext | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


# --------------------------------------------------------------------------- runs


class AwaitingReviewRun(_Model):
    """Paused on at least one review."""

    status: Literal["awaiting_review"] = "awaiting_review"
    waiting_for_block_ids: list[str] = Field(default_factory=list)


class ErrorRun(ErrorLifecycle):
    """Failed; ``failing_step_id`` names the step that failed first."""

    failing_step_id: str | None = None


class CancelledRun(_Model):
    """Cancelled."""

    status: Literal["cancelled"] = "cancelled"
    reason: str | None = None


# A run goes through the same plain states as a step; only the states that carry data
# (waiting, error, cancelled) have run-specific shapes.
RunLifecycle = Annotated[
    PendingLifecycle | QueuedLifecycle | RunningLifecycle | AwaitingReviewRun
    | CompletedLifecycle | ErrorRun | CancelledRun,
    Field(discriminator="status"),
]


class RunTrigger(_Model):
    """What started the run."""

    type: str = "manual"
    parent_run_id: str | None = None


class RunTiming(_Model):
    """When the run was created, started and finished."""

    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_ms: int | None = None


class RunInputs(_Model):
    """Run inputs: documents and JSON keyed by start block id."""

    documents: dict[str, DocumentRef] = Field(default_factory=dict)
    json_data: dict[str, Any] = Field(default_factory=dict)


class WorkflowRun(_Model):
    """A run in Retab's WorkflowRun shape (``workflow_version_id`` is the digest)."""

    id: str
    workflow_id: str
    workflow_version_id: str
    workflow_name: str = ""
    trigger: RunTrigger
    lifecycle: RunLifecycle
    timing: RunTiming
    inputs: RunInputs
    metadata: dict[str, Any] = Field(default_factory=dict)
    organization_id: str
    outputs: dict[str, Any] | None = None


class ListMetadata(_Model):
    """Cursors: ``before`` = first row's id when rows precede it, ``after`` = last row's
    id when rows follow it (None on the last page)."""

    before: str | None = None
    after: str | None = None


class Page(_Model, Generic[T]):
    """One page of a list."""

    data: list[T]
    list_metadata: ListMetadata


# --------------------------------------------------------------------------- SDK mapping

#: Legacy-only block types shown as the nearest type of the SDK's strict modern enum.
SDK_BLOCK_TYPES: dict[str, str] = {
    "start": "start_document",
    "functions": "function",
    "reshape": "function",
    "merge_pdf": "merge_dicts",
    "hil": "note",
    "end": "note",
}
#: Modern block types shown as the legacy enum's name in the legacy shape.
SDK_LEGACY_NODE_TYPES: dict[str, str] = {"start_document": "start", "function": "functions"}


def sdk_block_type(block_type: str) -> str:
    """The SDK-enum block type for a true block type."""
    return SDK_BLOCK_TYPES.get(block_type, block_type)


def sdk_step(step: Step) -> dict[str, Any]:
    """JSON of a step for the strict SDK: mapped ``block_type``, true ``stepwell_block_type``."""
    data = step.model_dump(mode="json")
    data["stepwell_block_type"] = step.block_type
    data["block_type"] = sdk_block_type(step.block_type)
    return data


def sdk_legacy_step(step: LegacyStep) -> dict[str, Any]:
    """JSON of a legacy step for the strict SDK enum (true type in ``stepwell_block_type``)."""
    data = step.model_dump(mode="json")
    data["stepwell_block_type"] = step.node_type
    data["node_type"] = SDK_LEGACY_NODE_TYPES.get(step.node_type, step.node_type)
    return data


def sdk_run(run: WorkflowRun) -> dict[str, Any]:
    """JSON of a run for the SDK: ``queued`` shows as ``pending``."""
    data = run.model_dump(mode="json")
    if data["lifecycle"]["status"] == "queued":
        data["lifecycle"] = {"status": "pending"}
    return data
