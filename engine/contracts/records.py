"""Records the review and workflow stores hand back: reviews, their versions, workflows.

Every store implementation returns these same values, so the engine, the CLI and the
HTTP server never see how a store keeps them. Ids are derived from content where the
contract says so (:func:`review_id_for`, :func:`version_id_for`): two stores given the
same history agree on every id.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import field
from typing import Any

from engine.contracts.frozen import record


def review_id_for(run_id: str, step_id: str) -> str:
    """The review id of ``step_id`` in ``run_id``: ``rev_`` and 20 hex of sha256.

    A step waits on at most one review per run, so opening it twice is harmless.
    """
    return "rev_" + hashlib.sha256(f"{run_id}\0{step_id}".encode()).hexdigest()[:20]


def version_id_for(review_id: str, parent_id: str | None, snapshot: Any) -> str:
    """The content-addressed id of a review version (``rvv_`` and 20 hex of sha256)."""
    body = json.dumps(snapshot, sort_keys=True, separators=(",", ":"), default=str)
    raw = f"{review_id}\0{parent_id or ''}\0{body}".encode()
    return "rvv_" + hashlib.sha256(raw).hexdigest()[:20]


@record
class Review:
    """A human review a step waits on, and its decision once made.

    Attributes:
        status: ``pending``, ``approved`` or ``rejected``.
        data: what the reviewer decides on: ``{"outputs": {...}, "review": ...}``.
        decision: ``approved`` / ``rejected``, None while pending.
        decision_data: ``{"data": ...}`` when the approval carried corrected data.
        reason: the note given with the decision.
    """

    id: str
    run_id: str
    step_id: str
    block_id: str
    status: str
    data: Any
    decision: str | None
    decision_data: Any
    reason: str | None
    created_at: float
    decided_at: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form for ``--json`` and HTTP."""
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@record
class ReviewVersion:
    """One version of a review (``parent_id`` None for the block's proposal)."""

    id: str
    review_id: str
    parent_id: str | None
    snapshot: dict[str, Any]
    note: str | None
    author_id: str
    author_kind: str
    created_at: float


def proposal(review_id: str, snapshot: dict[str, Any], created_at: float,
             block_id: str) -> ReviewVersion:
    """The first version of a review: what the block proposed (never stored)."""
    return ReviewVersion(id=version_id_for(review_id, None, snapshot), review_id=review_id,
                         parent_id=None, snapshot=snapshot, note=None, author_id=block_id,
                         author_kind="model", created_at=created_at)


@record
class RegisteredWorkflow:
    """A workflow of the registry: its draft, and the version it published.

    Attributes:
        id: the workflow id (``wf_...``).
        name / description: as applied, created or last updated.
        version_id: the draft's version id (its definition's digest).
        definition: the draft (:meth:`Workflow.to_dict` form).
        yaml: the YAML text the draft was applied from ("" after graph edits).
        organization_id: the owner.
        created_at / updated_at: epoch seconds of the creation and the latest change.
        project_id: the project it was created in, if any.
        published_version_id / published_at / published_description: the version runs
            get by default (``production``), when it was published and its release note;
            None when nothing was published.
        revision: how many times the draft was saved (compare-and-set of edits).
        stamps: ``{"block:<id>" | "edge:<id>": epoch seconds}``, when each part of the
            draft last changed.
    """

    id: str
    name: str
    description: str
    version_id: str
    definition: dict[str, Any]
    yaml: str
    organization_id: str
    created_at: float
    updated_at: float
    project_id: str | None = None
    published_version_id: str | None = None
    published_at: float | None = None
    published_description: str = ""
    revision: int = 0
    stamps: dict[str, float] = field(default_factory=dict)


@record
class WorkflowVersion:
    """One version of a registered workflow."""

    workflow_id: str
    id: str
    definition: dict[str, Any]
    yaml: str
    created_at: float


@record
class ApplyOutcome:
    """What applying a workflow did: ``create``, ``update`` or ``noop``."""

    workflow: RegisteredWorkflow
    action: str
