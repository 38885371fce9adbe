"""A run in Retab's WorkflowRun shape as plain JSON data, without building the models.

:func:`run_fields` is the one mapping from a :class:`~engine.contracts.reads.RunRecord`
to the fields of :class:`store.shapes.WorkflowRun`; :func:`store.convert.run_model`
validates them into the model. :func:`run_json` turns the same fields straight into what
``run_model(run).model_dump(mode="json")`` gives (same keys, same order, same values),
for a caller that only prints one run and need not import pydantic's read models.

The shortcut only covers what the models pass through unchanged: text where the model
wants text, JSON data with finite numbers, a known run status. Anything the models would
coerce or reject makes :func:`run_json` answer None, and the caller builds the model,
so the output (or the error) is always the model's.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.contracts.reads import RunRecord

#: Run statuses with no data besides the status itself.
_PLAIN_STATUSES = frozenset({"pending", "queued", "running", "completed"})
#: The fields of ``ErrorDetails``, in order; the model drops any other key.
_DETAIL_FIELDS = ("stack_trace", "block_id", "block_name", "error_code")


def run_lifecycle(run: RunRecord) -> dict[str, Any]:
    """The ``lifecycle`` of a run: its status and the data that status carries."""
    status = run.status
    if status == "awaiting_review":
        return {"status": status, "waiting_for_block_ids": run.waiting_for or []}
    if status == "error":
        error = run.error or {}
        return {"status": status, "message": error.get("message") or run.reason or "run failed",
                "stage": error.get("stage"), "category": error.get("category"),
                "details": error.get("details"), "failing_step_id": run.failing_step_id}
    if status == "cancelled":
        return {"status": status, "reason": run.reason}
    return {"status": status}


def run_inputs(raw: dict[str, Any]) -> dict[str, Any]:
    """The ``inputs`` of a run: documents and JSON data keyed by start block id."""
    documents: dict[str, Any] = {}
    json_data: dict[str, Any] = {}
    for block_id, value in raw.items():
        doc = as_document(value)
        if doc is not None:
            documents[block_id] = doc
        elif (isinstance(value, dict) and value.get("type") == "json"
              and set(value) <= {"type", "data"}):
            json_data[block_id] = value.get("data")
        else:
            json_data[block_id] = value
    return {"documents": documents, "json_data": json_data}


def as_document(value: Any) -> dict[str, Any] | None:
    """``{id, filename, mime_type}`` of a stored file input (bare or as a file payload),
    None when ``value`` is not one."""
    if not isinstance(value, dict):
        return None
    if value.get("type") == "file" and isinstance(value.get("document"), dict):
        value = value["document"]
    if {"id", "filename", "mime_type"} <= set(value) and str(value["id"]).startswith("file_"):
        return {k: value[k] for k in ("id", "filename", "mime_type")}
    return None


def run_fields(run: RunRecord) -> dict[str, Any]:
    """The fields of ``WorkflowRun`` for ``run``; times stay epoch seconds (or None)."""
    started, completed = run.started_at, run.completed_at
    duration = None
    if started is not None and completed is not None:
        duration = round((completed - started) * 1000)
    return {
        "id": run.id, "workflow_id": run.workflow_id,
        "workflow_version_id": run.workflow_digest, "workflow_name": run.workflow_name,
        "trigger": {"type": run.trigger, "parent_run_id": run.parent_run_id},
        "lifecycle": run_lifecycle(run),
        "timing": {"created_at": run.created_at, "started_at": started,
                   "completed_at": completed, "duration_ms": duration},
        "inputs": run_inputs(run.inputs), "metadata": run.metadata,
        "organization_id": run.organization_id, "outputs": run.outputs,
    }


def run_json(run: RunRecord) -> dict[str, Any] | None:
    """``run_model(run).model_dump(mode="json")`` without the models, or None when the
    record holds anything the models would coerce or reject (then build the model).

    Args:
        run: the run as stored, payloads in wire form.

    Returns:
        The run's JSON data, or None.
    """
    fields = run_fields(run)
    texts = (fields["id"], fields["workflow_id"], fields["workflow_version_id"],
             fields["workflow_name"], fields["organization_id"], fields["trigger"]["type"])
    if not (all(isinstance(v, str) for v in texts) and _optional_text(run.parent_run_id)
            and isinstance(fields["metadata"], dict) and isinstance(run.inputs, dict)
            and (run.outputs is None or isinstance(run.outputs, dict))):
        return None
    lifecycle = _lifecycle_json(fields["lifecycle"])
    timing = _timing_json(fields["timing"])
    inputs = fields["inputs"]
    documents = inputs["documents"].values()
    if (lifecycle is None or timing is None
            or not all(isinstance(v, str) for doc in documents for v in doc.values())
            or not all(_plain(v) for v in (inputs["json_data"], fields["metadata"],
                                           run.outputs))):
        return None
    return {**fields, "lifecycle": lifecycle, "timing": timing}


def _lifecycle_json(lifecycle: dict[str, Any]) -> dict[str, Any] | None:
    status = lifecycle["status"]
    if status in _PLAIN_STATUSES or status == "cancelled":
        return lifecycle if _optional_text(lifecycle.get("reason")) else None
    if status == "awaiting_review":
        waiting = lifecycle["waiting_for_block_ids"]
        ok = isinstance(waiting, list) and all(isinstance(b, str) for b in waiting)
        return lifecycle if ok else None
    if status != "error":
        return None
    texts = (lifecycle["stage"], lifecycle["category"], lifecycle["failing_step_id"])
    if not (isinstance(lifecycle["message"], str) and all(map(_optional_text, texts))):
        return None
    details = lifecycle["details"]
    if details is None:
        return lifecycle
    if not isinstance(details, dict):
        return None
    shown = {name: details.get(name) for name in _DETAIL_FIELDS}
    if not all(map(_optional_text, shown.values())):
        return None
    context = details.get("context")
    if not (context is None or isinstance(context, dict)) or not _plain(context):
        return None
    return {**lifecycle, "details": {**shown, "context": context}}


def _timing_json(timing: dict[str, Any]) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    for name in ("created_at", "started_at", "completed_at"):
        value = timing[name]
        if value is None:
            out[name] = None
        elif isinstance(value, int | float) and not isinstance(value, bool) \
                and math.isfinite(value):
            out[name] = datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")
        else:
            return None
    out["duration_ms"] = timing["duration_ms"]
    return out


def _optional_text(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _plain(value: Any) -> bool:
    """JSON data the models pass through unchanged: no NaN or infinity (shown as null)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, str | int)
