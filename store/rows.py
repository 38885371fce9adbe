"""Stored rows as read models: the decoding side of :mod:`store.api`.

Stored payload maps may hold ``{"ref": [step_id, handle]}`` (an input that is another
step's output) and ``{"blob": id}`` (a large payload in the file store); both are
resolved here (:class:`_Resolver`), in one batched query per page.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from store.codec import _loads, inline_blobs
from store.files import LocalFileStore
from store.shapes import LegacyStep, Step, WorkflowRun

# --------------------------------------------------------------------------- decoding


def ts(value: float | None) -> datetime | None:
    """Stored epoch seconds as an aware UTC datetime (serialized with ``Z``)."""
    return None if value is None else datetime.fromtimestamp(value, timezone.utc)


_STEP_COLUMNS = (
    "run_id", "step_id", "seq", "block_id", "block_type", "label", "status", "scope",
    "retry_count", "inputs", "outputs", "error", "reason", "artifact_id",
    "artifact_operation", "model", "tokens", "cost", "trace_spans", "created_at",
    "started_at", "completed_at", "updated_at", "duration_ms",
)
_STEP_SELECT = f"SELECT {', '.join(_STEP_COLUMNS)} FROM steps"
_RUN_COLUMNS = (
    "id", "workflow_id", "workflow_name", "workflow_digest", "inputs", "metadata",
    "organization_id", "trigger", "status", "failing_step_id", "error", "reason",
    "waiting_for", "outputs", "parent_run_id", "created_at", "started_at", "completed_at",
)
_RUN_SELECT = "SELECT " + ", ".join(
    '"trigger"' if c == "trigger" else c for c in _RUN_COLUMNS
) + " FROM runs"


class _Resolver:
    """Turns stored payload maps of a set of step rows into wire payload dicts."""

    def __init__(self, conn: sqlite3.Connection, files: LocalFileStore) -> None:
        self.conn = conn
        self.files = files
        self.blobs: dict[str, Any] = {}
        self.outputs: dict[tuple[str, str], dict[str, Any]] = {}

    def prepare(self, rows: Sequence[dict[str, Any]]) -> None:
        """Decode outputs of ``rows`` and fetch every producer their inputs refer to."""
        for row in rows:
            self.outputs[(row["run_id"], row["step_id"])] = _loads(row["outputs"]) or {}
        wanted: dict[str, set[str]] = {}
        for row in rows:
            row["inputs_map"] = inputs = _loads(row["inputs"]) or {}
            for value in inputs.values():
                if isinstance(value, dict) and "ref" in value:
                    key = (row["run_id"], value["ref"][0])
                    if key not in self.outputs:
                        wanted.setdefault(key[0], set()).add(key[1])
        for run_id, step_ids in wanted.items():
            self._fetch(run_id, sorted(step_ids))

    def _fetch(self, run_id: str, step_ids: list[str]) -> None:
        for i in range(0, len(step_ids), 500):
            chunk = step_ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT step_id, outputs FROM steps WHERE run_id = ? AND step_id IN ({marks})"
            for step_id, raw in self.conn.execute(sql, (run_id, *chunk)):
                self.outputs[(run_id, step_id)] = _loads(raw) or {}

    def handle_outputs(self, row: dict[str, Any]) -> dict[str, Any]:
        """Wire payloads of the row's outputs."""
        stored = self.outputs.get((row["run_id"], row["step_id"]), {})
        return {h: inline_blobs(v, self.files, self.blobs) for h, v in stored.items()}

    def handle_inputs(self, row: dict[str, Any]) -> dict[str, Any]:
        """Wire payloads of the row's inputs, references followed."""
        result: dict[str, Any] = {}
        for handle, value in row["inputs_map"].items():
            if isinstance(value, dict) and "ref" in value:
                source, source_handle = value["ref"]
                value = self.outputs.get((row["run_id"], source), {}).get(source_handle)
                if value is None:
                    continue  # the producer's output is gone (never stored)
            result[handle] = inline_blobs(value, self.files, self.blobs)
        return result


# --------------------------------------------------------------------------- row -> model


def _lifecycle(row: dict[str, Any]) -> dict[str, Any]:
    status = row["status"]
    if status == "error":
        error = _loads(row["error"]) or {}
        return {"status": status, "message": error.get("message") or "step failed",
                "stage": error.get("stage"), "category": error.get("category"),
                "details": error.get("details")}
    if status in ("skipped", "cancelled"):
        return {"status": status, "reason": row["reason"] or ""}
    return {"status": status}


def _artifact(row: dict[str, Any]) -> dict[str, str] | None:
    if row["artifact_id"] is None:
        return None
    return {"operation": row["artifact_operation"], "id": row["artifact_id"]}


def _step_model(row: dict[str, Any], resolver: _Resolver) -> Step:
    return Step.model_validate({
        "step_id": row["step_id"], "run_id": row["run_id"], "block_id": row["block_id"],
        "block_type": row["block_type"], "block_label": row["label"],
        "lifecycle": _lifecycle(row),
        "started_at": ts(row["started_at"]), "completed_at": ts(row["completed_at"]),
        "created_at": ts(row["created_at"]), "updated_at": ts(row["updated_at"]),
        "loop_containers": _loads(row["scope"]) or [],
        "handle_inputs": resolver.handle_inputs(row),
        "handle_outputs": resolver.handle_outputs(row),
        "artifact": _artifact(row), "retry_count": row["retry_count"], "model": row["model"],
        "cost": _loads(row["cost"]), "tokens": _loads(row["tokens"]),
        "trace_spans": _loads(row["trace_spans"]), "duration_ms": row["duration_ms"],
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


def _legacy_documents(row: dict[str, Any], inputs: dict[str, Any], outputs: dict[str, Any]
                      ) -> dict[str, Any]:
    file_in = [p["document"] for p in inputs.values() if p.get("type") == "file"]
    file_out = {h: p["document"] for h, p in outputs.items() if p.get("type") == "file"}
    split = None
    if row["block_type"] == "split":
        split = {h.removeprefix("output-file-"): _legacy_doc(d) for h, d in file_out.items()}
    out_doc = file_out.get("output-file-0")
    if out_doc is None and len(file_out) == 1 and split is None:
        out_doc = next(iter(file_out.values()))
    return {
        "input_document": _legacy_doc(file_in[0]) if file_in else None,
        "output_document": _legacy_doc(out_doc) if out_doc else None,
        "split_documents": split,
    }


def _legacy_model(row: dict[str, Any], resolver: _Resolver, org: str,
                  review: tuple[str | None, float | None] | None) -> LegacyStep:
    inputs, outputs = resolver.handle_inputs(row), resolver.handle_outputs(row)
    status = row["status"]
    error = (_loads(row["error"]) or {}) if status == "error" else {}
    scope = _loads(row["scope"]) or []
    inner = scope[-1] if scope else None
    decision, decided_at = review if review else (None, None)
    return LegacyStep.model_validate({
        "run_id": row["run_id"], "organization_id": org, "node_id": row["block_id"],
        "step_id": row["step_id"], "node_type": row["block_type"], "node_label": row["label"],
        "status": "waiting_for_human" if status == "awaiting_review" else status,
        "started_at": ts(row["started_at"]), "completed_at": ts(row["completed_at"]),
        "duration_ms": row["duration_ms"],
        "error": error.get("message") if status == "error" else None,
        "error_stage": error.get("stage"), "error_category": error.get("category"),
        "error_details": error.get("details"),
        "model": row["model"], "cost": _loads(row["cost"]), "tokens": _loads(row["tokens"]),
        "trace_spans": _loads(row["trace_spans"]), "output": _legacy_output(outputs),
        "handle_outputs": _legacy_payloads(outputs), "handle_inputs": _legacy_payloads(inputs),
        **_legacy_documents(row, inputs, outputs),
        "requires_human_review": True if (review or status == "awaiting_review") else None,
        "human_reviewed_at": ts(decided_at),
        "human_review_approved": _approved(decision),
        "retry_count": row["retry_count"],
        "loop_id": inner["container_id"] if inner else None,
        "iteration": inner["iteration"] if inner else None,
        "iteration_context": {"containers": scope} if scope else None,
        "created_at": ts(row["created_at"]), "updated_at": ts(row["updated_at"]),
    })


def _approved(decision: str | None) -> bool | None:
    if decision is None:
        return None
    return decision.lower() in ("approved", "approve", "accepted")


def _run_inputs(raw: dict[str, Any] | None) -> dict[str, Any]:
    documents: dict[str, Any] = {}
    json_data: dict[str, Any] = {}
    for block_id, value in (raw or {}).items():
        doc = _as_document(value)
        if doc is not None:
            documents[block_id] = doc
        elif isinstance(value, dict) and value.get("type") == "json" and set(value) <= {"type", "data"}:
            json_data[block_id] = value.get("data")
        else:
            json_data[block_id] = value
    return {"documents": documents, "json_data": json_data}


def _as_document(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    if value.get("type") == "file" and isinstance(value.get("document"), dict):
        value = value["document"]
    if {"id", "filename", "mime_type"} <= set(value) and str(value["id"]).startswith("file_"):
        return {k: value[k] for k in ("id", "filename", "mime_type")}
    return None


def _run_lifecycle(row: dict[str, Any]) -> dict[str, Any]:
    status = row["status"]
    if status == "awaiting_review":
        return {"status": status, "waiting_for_block_ids": _loads(row["waiting_for"]) or []}
    if status == "error":
        error = _loads(row["error"]) or {}
        return {"status": status, "message": error.get("message") or row["reason"] or "run failed",
                "stage": error.get("stage"), "category": error.get("category"),
                "details": error.get("details"), "failing_step_id": row["failing_step_id"]}
    if status == "cancelled":
        return {"status": status, "reason": row["reason"]}
    return {"status": status}


def _run_model(row: dict[str, Any], files: LocalFileStore) -> WorkflowRun:
    started, completed = row["started_at"], row["completed_at"]
    duration = None
    if started is not None and completed is not None:
        duration = int(round((completed - started) * 1000))
    return WorkflowRun.model_validate({
        "id": row["id"], "workflow_id": row["workflow_id"],
        "workflow_version_id": row["workflow_digest"], "workflow_name": row["workflow_name"],
        "trigger": {"type": row["trigger"], "parent_run_id": row["parent_run_id"]},
        "lifecycle": _run_lifecycle(row),
        "timing": {"created_at": ts(row["created_at"]), "started_at": ts(started),
                   "completed_at": ts(completed), "duration_ms": duration},
        "inputs": _run_inputs(_loads(row["inputs"])),
        "metadata": _loads(row["metadata"]) or {},
        "organization_id": row["organization_id"], "outputs": _run_outputs(row, files),
    })


def _run_outputs(row: dict[str, Any], files: LocalFileStore) -> dict[str, Any] | None:
    outputs = _loads(row["outputs"])
    if outputs is None:
        return None
    return {key: inline_blobs(value, files) for key, value in outputs.items()}
