"""What read queries take and give: typed filters, decoded records, keyset pages.

A :class:`~engine.contracts.store.ReadStore` answers queries about runs, steps,
artifacts and the review queue with plain records (:class:`RunRecord`,
:class:`StepRecord`, ...), payloads already in wire form: a sourced input is resolved to
the producer's output, a large payload is inlined. The read API (``store.api.ReadAPI``)
turns records into the Retab read models; no query language crosses this boundary,
only the filter dataclasses below.

Paging is keyset paging on a fixed order: runs and reviews on ``(created_at, id)``,
steps on their creation order within the run. A cursor is the id of a row of an earlier
page: ``after`` pages forward past it, ``before`` backward. A page says whether rows
exist before its first and after its last row (:class:`RecordPage`). Every query takes
``organization_id``: when given, rows of other organizations do not exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import field
from enum import StrEnum
from typing import Any, Generic, TypeVar

from engine.contracts.errors import ConflictError, NotFoundError, UsageError
from engine.contracts.frozen import record
from engine.contracts.run_record import RunRecord

__all__ = [
    "ArtifactRecord", "DecisionStatus", "RecordPage", "ReviewEntry", "ReviewFilters",
    "RunFilters", "RunRecord", "StepFilters", "StepRecord", "ambiguous_step",
    "artifact_not_found", "check_page", "review_entry_not_found", "step_cursor_not_found",
    "step_not_found",
]

T = TypeVar("T")

# --------------------------------------------------------------------------- records

# RunRecord is defined in engine.contracts.run_record: every run reads its record back,
# and needs none of the shapes below.


@record
class StepRecord:
    """A step as stored, payload maps in wire form (``{type: json, data}`` / file).

    ``inputs`` holds sourced inputs resolved to the producer's output (an input whose
    producer never stored that output is left out). ``error`` is the stored
    ``{message, stage, category, details}`` of the last failure, if any.
    """

    run_id: str
    step_id: str
    block_id: str
    block_type: str
    label: str
    status: str
    scope: list[dict[str, Any]]
    retry_count: int
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    error: dict[str, Any] | None
    reason: str | None
    artifact_id: str | None
    artifact_operation: str | None
    model: str | None
    tokens: Any
    cost: Any
    trace_spans: Any
    created_at: float
    started_at: float | None
    completed_at: float | None
    updated_at: float
    duration_ms: int | None


@record
class ArtifactRecord:
    """The operation record a step produced (``record`` with large payloads inlined)."""

    id: str
    run_id: str
    step_id: str
    operation: str
    record: dict[str, Any]
    created_at: float


@record
class ReviewEntry:
    """A review in the queue, with what the queue shows of its run and step."""

    id: str
    run_id: str
    step_id: str
    block_id: str
    status: str
    data: Any
    decision: str | None
    decision_data: Any
    note: str | None
    created_at: float
    decided_at: float | None
    organization_id: str
    workflow_id: str
    workflow_digest: str
    run_status: str
    run_completed_at: float | None
    definition: dict[str, Any] | None
    block_type: str | None

    def to_dict(self) -> dict[str, Any]:
        """The entry as a plain dict (one key per field)."""
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@record
class RecordPage(Generic[T]):
    """One page of records in list order, and whether rows exist on either side."""

    items: list[T]
    more_before: bool
    more_after: bool


# --------------------------------------------------------------------------- filters


@record
class RunFilters:
    """Which runs a run query keeps (every field optional; empty means no filter).

    Attributes:
        statuses / exclude_statuses: stored run statuses.
        workflow_id: runs of this workflow.
        trigger_types: ``manual``, ``api``, ``restart``...
        created_from / created_to: epoch seconds, inclusive / exclusive.
        min_duration_ms / max_duration_ms: finished runs whose duration is in range.
        search: a substring (ASCII case-insensitive) of the run id, workflow id or
            workflow name.
        metadata: ``{key: value}`` pairs the run's metadata must all hold (string values).
    """

    statuses: Sequence[str] | None = None
    exclude_statuses: Sequence[str] | None = None
    workflow_id: str | None = None
    trigger_types: Sequence[str] | None = None
    created_from: float | None = None
    created_to: float | None = None
    min_duration_ms: int | None = None
    max_duration_ms: int | None = None
    search: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@record
class StepFilters:
    """Which steps of a run a step query keeps (empty means no filter)."""

    block_id: str | None = None
    step_id: str | None = None
    block_types: Sequence[str] | None = None
    statuses: Sequence[str] | None = None


class DecisionStatus(StrEnum):
    """Where a review stands in the queue.

    ``pending``: undecided and its run still going; ``cancelled``: undecided but its run
    finished; ``approved`` / ``rejected`` / ``decided``; ``all``.
    """

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    DECIDED = "decided"
    CANCELLED = "cancelled"
    ALL = "all"


@record
class ReviewFilters:
    """Which reviews a queue query keeps; ``decision_status`` is a :class:`DecisionStatus`
    value."""

    workflow_id: str | None = None
    run_id: str | None = None
    block_id: str | None = None
    step_id: str | None = None
    decision_status: str = DecisionStatus.PENDING


def check_page(limit: int, after: str | None, before: str | None) -> None:
    """Validate the paging arguments every list query takes.

    Raises:
        UsageError: ``limit`` outside 1..1000, or both cursors given.
    """
    if not 1 <= limit <= 1000:
        raise UsageError(f"limit must be between 1 and 1000 (got {limit}).")
    if after is not None and before is not None:
        raise UsageError("Pass either after= or before=, not both.")


# --------------------------------------------------------------------------- errors


def step_not_found(step_id: str) -> NotFoundError:
    """The error for a step that does not exist (or is not visible)."""
    return NotFoundError("step", step_id, "List the run's steps with `stepwell steps list RUN_ID`.")


def ambiguous_step(step_id: str, run_ids: Sequence[str]) -> ConflictError:
    """The error for a step id several runs share, asked for without a run id."""
    return ConflictError(
        f"Step {step_id!r} exists in several runs ({', '.join(sorted(run_ids))}). "
        "Pass run_id= (or --run) to say which one."
    )


def step_cursor_not_found(cursor: str) -> NotFoundError:
    """The error for a step cursor that is not a step of the listed run."""
    return NotFoundError("step", cursor, "Cursors are the step ids returned in "
                         "list_metadata for the same run.")


def artifact_not_found(artifact_id: str) -> NotFoundError:
    """The error for an unknown artifact id."""
    return NotFoundError("artifact", artifact_id, "Artifact ids come from step.artifact.id.")


def review_entry_not_found(review_id: str) -> NotFoundError:
    """The error for a review that is not in the (organization's) queue."""
    return NotFoundError("review", review_id, "List open reviews with `stepwell reviews "
                         "list` (HTTP: GET /v1/workflows/reviews).")
