"""Wire shapes: read models mapped onto what the Retab SDK's strict models accept.

Steps and runs come from :mod:`store.api` (``sdk_step``, ``sdk_legacy_step``,
``sdk_run``); this module adds what only the HTTP API needs:

* artifact operations the SDK enum lacks (``end``, ``merge_pdf``) are served as
  ``artifact: null`` with the true ref in ``stepwell_artifact``;
* block types registered by the embedding application (not built in) show as
  ``function`` (legacy ``functions``), the true type staying in ``stepwell_block_type``;
* run triggers outside the SDK enum show as ``custom``; run metadata values are strings;
* a run that should have a live owner (pending, queued, running) carries
  ``stepwell_owner``: its owner process, heartbeat, whether it is alive, and, for an
  orphan, why and what happens next (the SDK's run model ignores the key);
* reviews, review versions and registered workflows in the SDK's shapes.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from engine.contracts.reads import RunRecord
from engine.contracts.records import RegisteredWorkflow, ReviewVersion
from engine.orphans import orphan_note
from store.api import LegacyStep, Step, WorkflowRun, sdk_legacy_step, sdk_run, sdk_step

SDK_STEP_TYPES = frozenset({
    "start_document", "start_json", "note", "parse", "edit", "extract", "split",
    "classifier", "conditional", "api_call", "function", "while_loop", "for_each",
    "merge_dicts", "while_loop_sentinel_start", "while_loop_sentinel_end",
    "for_each_sentinel_start", "for_each_sentinel_end",
})
SDK_LEGACY_TYPES = frozenset({
    "start", "start_json", "end", "note", "parse", "edit", "extract", "split", "classifier",
    "conditional", "hil", "api_call", "functions", "reshape", "while_loop", "for_each",
    "merge_pdf", "merge_dicts", "while_loop_sentinel_start", "while_loop_sentinel_end",
    "for_each_sentinel_start", "for_each_sentinel_end",
})
SDK_ARTIFACT_OPERATIONS = frozenset({
    "extraction", "split", "classification", "parse", "edit", "partition",
    "conditional_evaluation", "review_trigger_evaluation", "while_loop_termination",
    "api_call_invocation", "function_invocation",
})
SDK_TRIGGERS = frozenset({"manual", "api", "schedule", "webhook", "email", "custom", "restart"})
SDK_REVIEW_BLOCK_TYPES = frozenset({"extract", "split", "classifier", "for_each"})
#: Step types the SDK's modern enum has, reached from the stored (true) types it lacks.
SDK_TYPE_MEMBERS: dict[str, tuple[str, ...]] = {
    "start_document": ("start_document", "start"),
    "function": ("function", "functions", "reshape"),
    "merge_dicts": ("merge_dicts", "merge_pdf"),
    "note": ("note", "hil", "end"),
}


def iso(value: float | None) -> str | None:
    """Epoch seconds as ISO-8601 UTC (``...Z``)."""
    if value is None:
        return None
    return datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")


def step_json(step: Step) -> dict[str, Any]:
    """A step in the modern shape (seed ``get-step``), valid for ``WorkflowRunStep``."""
    data = sdk_step(step)
    if data["block_type"] not in SDK_STEP_TYPES:
        data["block_type"] = "function"
    artifact = data.get("artifact")
    if artifact is not None and artifact.get("operation") not in SDK_ARTIFACT_OPERATIONS:
        data["stepwell_artifact"] = artifact
        data["artifact"] = None
    return data


def legacy_step_json(step: LegacyStep) -> dict[str, Any]:
    """A step in the legacy flat shape (seed ``list-run-steps``)."""
    data = sdk_legacy_step(step)
    if data["node_type"] not in SDK_LEGACY_TYPES:
        data["node_type"] = "functions"
    return data


def owner_json(record: RunRecord, driving: Collection[str] | None) -> dict[str, Any]:
    """``stepwell_owner`` of an active run: ``pid``, ``heartbeat_at``, ``alive`` and
    ``orphaned`` (why it is an orphan, or null).

    A run no process has taken yet (queued for a worker) has ``alive`` and ``orphaned``
    null. ``driving`` is what :func:`engine.orphans.is_orphan` takes.
    """
    if record.owner_pid is None:
        return {"pid": None, "heartbeat_at": None, "alive": None, "orphaned": None}
    note = orphan_note(record, driving=driving)
    return {"pid": record.owner_pid, "heartbeat_at": iso(record.heartbeat_at),
            "alive": note is None, "orphaned": note}


def run_json(run: WorkflowRun, owner: dict[str, Any] | None = None) -> dict[str, Any]:
    """A run in Retab's ``WorkflowRun`` shape (with ``stepwell_owner`` when given)."""
    data = sdk_run(run)
    if owner is not None:
        data["stepwell_owner"] = owner
    trigger = data.get("trigger") or {}
    if trigger.get("type") not in SDK_TRIGGERS:
        data["stepwell_trigger_type"] = trigger.get("type")
        trigger["type"] = "custom"
    data["metadata"] = {str(k): v if isinstance(v, str) else json.dumps(v, default=str)
                        for k, v in (data.get("metadata") or {}).items()}
    return data


def workflow_json(wf: RegisteredWorkflow) -> dict[str, Any]:
    """A registered workflow in Retab's ``Workflow`` shape (``published`` null until it
    is published; ``stepwell_draft_version_id`` is the draft's version id)."""
    published = None
    if wf.published_version_id is not None:
        published = {"version_id": wf.published_version_id,
                     "published_at": iso(wf.published_at),
                     "description": wf.published_description}
    return {
        "id": wf.id, "name": wf.name, "description": wf.description,
        "project_id": wf.project_id, "published": published,
        "created_at": iso(wf.created_at), "updated_at": iso(wf.updated_at),
        "organization_id": wf.organization_id, "stepwell_draft_version_id": wf.version_id,
    }


def actor(kind: str, ident: str) -> dict[str, str]:
    """``{kind, id, display_name}``."""
    return {"kind": kind, "id": ident, "display_name": ident}


def version_json(version: ReviewVersion) -> dict[str, Any]:
    """A review version in Retab's ``ReviewVersion`` shape."""
    return {"id": version.id, "review_id": version.review_id, "parent_id": version.parent_id,
            "author": actor(version.author_kind, version.author_id),
            "snapshot": version.snapshot, "note": version.note,
            "created_at": iso(version.created_at)}
