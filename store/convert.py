"""Read records as read models: the Retab shapes of :mod:`store.shapes`.

Every store answers the read API with the records of :mod:`engine.contracts.reads`;
this module turns them into the models the read API serves, so both stores show a run
or a step identically. Payload maps arrive in wire form (refs resolved, blobs inlined).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from engine.contracts.reads import RunRecord, StepRecord
from store.shapes import LegacyStep, Step, WorkflowRun
from store.shapes_json import run_fields


def ts(value: float | None) -> datetime | None:
    """Stored epoch seconds as an aware UTC datetime (serialized with ``Z``)."""
    return None if value is None else datetime.fromtimestamp(value, UTC)


# --------------------------------------------------------------------------- steps


def _lifecycle(step: StepRecord) -> dict[str, Any]:
    status = step.status
    if status == "error":
        error = step.error or {}
        return {"status": status, "message": error.get("message") or "step failed",
                "stage": error.get("stage"), "category": error.get("category"),
                "details": error.get("details")}
    if status in ("skipped", "cancelled"):
        return {"status": status, "reason": step.reason or ""}
    return {"status": status}


def _artifact(step: StepRecord) -> dict[str, Any] | None:
    if step.artifact_id is None:
        return None
    return {"operation": step.artifact_operation, "id": step.artifact_id}


def step_model(step: StepRecord) -> Step:
    """A step record in the modern shape."""
    return Step.model_validate({
        "step_id": step.step_id, "run_id": step.run_id, "block_id": step.block_id,
        "block_type": step.block_type, "block_label": step.label,
        "lifecycle": _lifecycle(step),
        "started_at": ts(step.started_at), "completed_at": ts(step.completed_at),
        "created_at": ts(step.created_at), "updated_at": ts(step.updated_at),
        "loop_containers": step.scope, "handle_inputs": step.inputs,
        "handle_outputs": step.outputs, "artifact": _artifact(step),
        "retry_count": step.retry_count, "model": step.model, "cost": step.cost,
        "tokens": step.tokens, "trace_spans": step.trace_spans,
        "duration_ms": step.duration_ms,
    })


def _legacy_payloads(payloads: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for handle, payload in payloads.items():
        if payload.get("type") == "file":
            out[handle] = {"type": "file", "document": _legacy_doc(payload["document"])}
        else:
            out[handle] = payload
    return out


def _legacy_doc(doc: dict[str, Any]) -> dict[str, Any]:
    return {"file_id": doc["id"], "filename": doc["filename"], "mime_type": doc["mime_type"]}


def _legacy_output(outputs: dict[str, Any]) -> Any:
    if "output-json-0" in outputs:
        return outputs["output-json-0"].get("data")
    json_outputs = [p for p in outputs.values() if p.get("type") == "json"]
    return json_outputs[0].get("data") if len(json_outputs) == 1 else None


def _legacy_documents(step: StepRecord) -> dict[str, Any]:
    file_in = [p["document"] for p in step.inputs.values() if p.get("type") == "file"]
    file_out = {h: p["document"] for h, p in step.outputs.items() if p.get("type") == "file"}
    split = None
    if step.block_type == "split":
        split = {h.removeprefix("output-file-"): _legacy_doc(d) for h, d in file_out.items()}
    out_doc = file_out.get("output-file-0")
    if out_doc is None and len(file_out) == 1 and split is None:
        out_doc = next(iter(file_out.values()))
    return {
        "input_document": _legacy_doc(file_in[0]) if file_in else None,
        "output_document": _legacy_doc(out_doc) if out_doc else None,
        "split_documents": split,
    }


def legacy_model(step: StepRecord, org: str,
                 review: tuple[str | None, float | None] | None) -> LegacyStep:
    """A step record in the legacy flat shape.

    Args:
        step: the step.
        org: its run's organization.
        review: ``(decision, decided_at)`` of the step's review, None when it has none.
    """
    status = step.status
    error = (step.error or {}) if status == "error" else {}
    scope = step.scope
    inner = scope[-1] if scope else None
    decision, decided_at = review if review else (None, None)
    return LegacyStep.model_validate({
        "run_id": step.run_id, "organization_id": org, "node_id": step.block_id,
        "step_id": step.step_id, "node_type": step.block_type, "node_label": step.label,
        "status": "waiting_for_human" if status == "awaiting_review" else status,
        "started_at": ts(step.started_at), "completed_at": ts(step.completed_at),
        "duration_ms": step.duration_ms,
        "error": error.get("message") if status == "error" else None,
        "error_stage": error.get("stage"), "error_category": error.get("category"),
        "error_details": error.get("details"),
        "model": step.model, "cost": step.cost, "tokens": step.tokens,
        "trace_spans": step.trace_spans, "output": _legacy_output(step.outputs),
        "handle_outputs": _legacy_payloads(step.outputs),
        "handle_inputs": _legacy_payloads(step.inputs),
        **_legacy_documents(step),
        "requires_human_review": True if (review or status == "awaiting_review") else None,
        "human_reviewed_at": ts(decided_at),
        "human_review_approved": _approved(decision),
        "retry_count": step.retry_count,
        "loop_id": inner["container_id"] if inner else None,
        "iteration": inner["iteration"] if inner else None,
        "iteration_context": {"containers": scope} if scope else None,
        "created_at": ts(step.created_at), "updated_at": ts(step.updated_at),
    })


def _approved(decision: str | None) -> bool | None:
    if decision is None:
        return None
    return decision.lower() in ("approved", "approve", "accepted")


# --------------------------------------------------------------------------- runs


def run_model(run: RunRecord) -> WorkflowRun:
    """A run record in Retab's WorkflowRun shape."""
    fields = run_fields(run)
    timing = fields["timing"]
    for name in ("created_at", "started_at", "completed_at"):
        timing[name] = ts(timing[name])
    return WorkflowRun.model_validate(fields)
