"""Read models and queries: steps and runs as the Retab API shows them.

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

Stored payload maps may hold ``{"ref": [step_id, handle]}`` (an input that is another
step's output) and ``{"blob": id}`` (a large payload in the file store); both are
resolved here, in one batched query per page.

Lists are keyset-paginated: steps on their per-run creation ``seq``, runs on
``(created_at, id)`` newest first. Cursors are the id of the boundary row.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from engine.errors import ConflictError, NotFoundError, StepwellError, UsageError
from store.files import LocalFileStore
from store.layout import EXCEPTIONAL_STATUSES, EXCEPTIONAL_STATUSES_SQL

T = TypeVar("T")

# --------------------------------------------------------------------------- payloads


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, protected_namespaces=())


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


class PendingRun(_Model):
    """Created, not started."""

    status: Literal["pending"] = "pending"


class QueuedRun(_Model):
    """Waiting for a process to pick it up."""

    status: Literal["queued"] = "queued"


class RunningRun(_Model):
    """Executing."""

    status: Literal["running"] = "running"


class AwaitingReviewRun(_Model):
    """Paused on at least one review."""

    status: Literal["awaiting_review"] = "awaiting_review"
    waiting_for_block_ids: list[str] = Field(default_factory=list)


class CompletedRun(_Model):
    """Finished successfully."""

    status: Literal["completed"] = "completed"


class ErrorRun(_Model):
    """Failed; ``failing_step_id`` names the step that failed first."""

    status: Literal["error"] = "error"
    message: str
    stage: str | None = None
    category: str | None = None
    details: ErrorDetails | None = None
    failing_step_id: str | None = None


class CancelledRun(_Model):
    """Cancelled."""

    status: Literal["cancelled"] = "cancelled"
    reason: str | None = None


RunLifecycle = Annotated[
    PendingRun | QueuedRun | RunningRun | AwaitingReviewRun | CompletedRun | ErrorRun
    | CancelledRun,
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


# --------------------------------------------------------------------------- decoding


def ts(value: float | None) -> datetime | None:
    """Stored epoch seconds as an aware UTC datetime (serialized with ``Z``)."""
    return None if value is None else datetime.fromtimestamp(value, timezone.utc)


def inline_blobs(value: Any, files: LocalFileStore, cache: dict[str, Any] | None = None) -> Any:
    """Replace a ``{"blob": id}`` marker by the JSON it points to."""
    if isinstance(value, dict) and len(value) == 1 and "blob" in value:
        blob_id = value["blob"]
        if cache is not None and blob_id in cache:
            return cache[blob_id]
        decoded = json.loads(files.get_json_blob(blob_id))
        if cache is not None:
            cache[blob_id] = decoded
        return decoded
    return value


def _loads(raw: str | None) -> Any:
    return None if raw is None else json.loads(raw)


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


# --------------------------------------------------------------------------- queries

_STATUS_ALIASES = {"waiting_for_human": "awaiting_review"}


def _as_list(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


class ReadAPI:
    """Queries over a stepwell database, scoped to one organization when given.

    Args:
        conn: an open ``sqlite3`` connection to the database.
        files: the file store holding large payload blobs.
        organization_id: when set, runs of other organizations are invisible (not found).
        lock: serializes use of ``conn`` with other users of it (the store's lock).
        db_path: the database path, for error messages.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        files: LocalFileStore,
        *,
        organization_id: str | None = None,
        lock: Any = None,
        db_path: str = "",
    ) -> None:
        self.conn = conn
        self.files = files
        self.organization_id = organization_id
        self._lock = lock if lock is not None else threading.RLock()
        self.db_path = db_path

    @contextmanager
    def _read(self, action: str) -> Iterator[sqlite3.Connection]:
        from store.sqlite import storage_error

        with self._lock:
            try:
                yield self.conn
            except StepwellError:
                raise
            except sqlite3.Error as exc:
                raise storage_error(self.db_path, action, exc) from exc

    # ------------------------------------------------------------------ runs

    def get_run(self, run_id: str) -> WorkflowRun:
        """One run. Raises NotFoundError (also for another organization's run)."""
        with self._read(f"reading run {run_id}"):
            return _run_model(self._run_row(run_id), self.files)

    def list_runs(
        self,
        *,
        status: str | Sequence[str] | None = None,
        workflow_id: str | None = None,
        limit: int = 20,
        after: str | None = None,
        before: str | None = None,
    ) -> Page[WorkflowRun]:
        """Runs, newest first, keyset-paginated by run id cursors."""
        _check_page(limit, after, before)
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        self._scope_org(where, params)
        _add_in(where, params, "status", _as_list(status))
        if workflow_id is not None:
            where.append("workflow_id = ?")
            params.append(workflow_id)
        with self._read("listing runs") as conn:
            cursor = after or before
            key = None
            if cursor is not None:
                row = self._run_row(cursor)
                key = (row["created_at"], row["id"])
            rows, more_before, more_after = _keyset(
                conn, "runs", _RUN_COLUMNS, where, params, ("created_at", "id"), key,
                forward=before is None, limit=limit, descending=True)
            page = [_run_model(r, self.files) for r in rows]
        return _page(page, [r["id"] for r in rows], more_before, more_after)

    def _run_row(self, run_id: str) -> dict[str, Any]:
        where, params = ["id = ?"], [run_id]
        self._scope_org(where, params)
        row = self.conn.execute(f"{_RUN_SELECT} WHERE {' AND '.join(where)}", params).fetchone()
        if row is None:
            raise NotFoundError("run", run_id)
        return dict(zip(_RUN_COLUMNS, row, strict=True))

    def _scope_org(self, where: list[str], params: list[Any], prefix: str = "") -> None:
        if self.organization_id is not None:
            where.append(f"{prefix}organization_id = ?")
            params.append(self.organization_id)

    # ------------------------------------------------------------------ steps

    def get_step(self, step_id: str, run_id: str | None = None) -> Step:
        """One step by id; ``run_id`` disambiguates a step id several runs share.

        Raises:
            NotFoundError: no such step (visible to this organization).
            ConflictError: several runs have this step id and ``run_id`` was not given.
        """
        with self._read(f"reading step {step_id}") as conn:
            row = self._step_row(conn, step_id, run_id)
            resolver = _Resolver(conn, self.files)
            resolver.prepare([row])
            return _step_model(row, resolver)

    def _step_row(self, conn: sqlite3.Connection, step_id: str, run_id: str | None
                  ) -> dict[str, Any]:
        if run_id is not None:
            self._run_row(run_id)
            found = conn.execute(f"{_STEP_SELECT} WHERE run_id = ? AND step_id = ?",
                                 (run_id, step_id)).fetchall()
        else:
            where, params = ["s.step_id = ?"], [step_id]
            join = ""
            if self.organization_id is not None:
                join = " JOIN runs r ON r.id = s.run_id"
                self._scope_org(where, params, "r.")
            cols = ", ".join(f"s.{c}" for c in _STEP_COLUMNS)
            found = conn.execute(
                f"SELECT {cols} FROM steps s{join} WHERE {' AND '.join(where)} LIMIT 21", params
            ).fetchall()
        if not found:
            hint = "List the run's steps with `stepwell steps list RUN_ID`."
            raise NotFoundError("step", step_id, hint)
        if len(found) > 1:
            runs = ", ".join(sorted(r[0] for r in found))
            raise ConflictError(
                f"Step {step_id!r} exists in several runs ({runs}). "
                "Pass run_id= (or --run) to say which one."
            )
        return dict(zip(_STEP_COLUMNS, found[0], strict=True))

    def list_steps(
        self,
        run_id: str,
        *,
        block_id: str | None = None,
        step_id: str | None = None,
        block_type: str | Sequence[str] | None = None,
        status: str | Sequence[str] | None = None,
        limit: int = 100,
        after: str | None = None,
        before: str | None = None,
    ) -> Page[Step]:
        """A run's steps in creation order, filtered, keyset-paginated by step id cursors.

        Raises:
            NotFoundError: unknown run, or a cursor that is not a step of this run.
            UsageError: both ``after`` and ``before``, or a limit outside 1..1000.
        """
        _check_page(limit, after, before)
        where, params = ["run_id = ?"], [run_id]
        if block_id is not None:
            where.append("block_id = ?")
            params.append(block_id)
        if step_id is not None:
            where.append("step_id = ?")
            params.append(step_id)
        _add_in(where, params, "block_type", _as_list(block_type))
        statuses = _as_list(status)
        wanted = None if statuses is None else [_STATUS_ALIASES.get(s, s) for s in statuses]
        _add_in(where, params, "status", wanted)
        if wanted and set(wanted) <= set(EXCEPTIONAL_STATUSES):
            where.append(EXCEPTIONAL_STATUSES_SQL)  # lets SQLite pick the partial index
        with self._read(f"listing steps of run {run_id}") as conn:
            self._run_row(run_id)
            cursor = after or before
            key = None if cursor is None else (self._cursor_seq(conn, run_id, cursor),)
            rows, more_before, more_after = _keyset(
                conn, "steps", _STEP_COLUMNS, where, params, ("seq",), key,
                forward=before is None, limit=limit, descending=False)
            resolver = _Resolver(conn, self.files)
            resolver.prepare(rows)
            data = [_step_model(r, resolver) for r in rows]
        return _page(data, [r["step_id"] for r in rows], more_before, more_after)

    def _cursor_seq(self, conn: sqlite3.Connection, run_id: str, cursor: str) -> int:
        row = conn.execute("SELECT seq FROM steps WHERE run_id = ? AND step_id = ?",
                           (run_id, cursor)).fetchone()
        if row is None:
            raise NotFoundError("step", cursor, "Cursors are the step ids returned in "
                                "list_metadata for the same run.")
        return int(row[0])

    def list_legacy_steps(self, run_id: str) -> list[LegacyStep]:
        """Every step of a run in the legacy flat shape, in creation order."""
        with self._read(f"listing steps of run {run_id}") as conn:
            org = self._run_row(run_id)["organization_id"]
            rows = [dict(zip(_STEP_COLUMNS, r, strict=True)) for r in conn.execute(
                f"{_STEP_SELECT} WHERE run_id = ? ORDER BY seq", (run_id,))]
            reviews = self._reviews(conn, run_id)
            resolver = _Resolver(conn, self.files)
            resolver.prepare(rows)
            return [_legacy_model(r, resolver, org, reviews.get(r["step_id"])) for r in rows]

    def _reviews(self, conn: sqlite3.Connection, run_id: str
                 ) -> dict[str, tuple[str | None, float | None]]:
        rows = conn.execute(
            "SELECT step_id, decision, decided_at FROM reviews WHERE run_id = ? "
            "ORDER BY created_at", (run_id,))
        return {step_id: (decision, decided_at) for step_id, decision, decided_at in rows}

    def get_artifact(self, artifact_id: str) -> dict[str, Any]:
        """The operation record behind a step's ``artifact`` ref (with id, run, step)."""
        with self._read(f"reading artifact {artifact_id}") as conn:
            row = conn.execute(
                "SELECT id, run_id, step_id, operation, record, created_at FROM artifacts "
                "WHERE id = ?", (artifact_id,)).fetchone()
            if row is not None:
                self._run_row(row[1])
        if row is None:
            raise NotFoundError("artifact", artifact_id, "Artifact ids come from step.artifact.id.")
        record = inline_blobs(_loads(row[4]), self.files) or {}
        created = ts(row[5])
        return {**record, "id": row[0], "workflow_run_id": row[1], "step_id": row[2],
                "operation": row[3], "created_at": created.isoformat() if created else None}


# --------------------------------------------------------------------------- keyset


def _check_page(limit: int, after: str | None, before: str | None) -> None:
    if not 1 <= limit <= 1000:
        raise UsageError(f"limit must be between 1 and 1000 (got {limit}).")
    if after is not None and before is not None:
        raise UsageError("Pass either after= or before=, not both.")


def _add_in(where: list[str], params: list[Any], column: str, values: list[str] | None) -> None:
    if not values:
        return
    if len(values) == 1:
        where.append(f"{column} = ?")
    else:
        where.append(f"{column} IN ({','.join('?' * len(values))})")
    params.extend(values)


def _keyset(
    conn: sqlite3.Connection, table: str, columns: Sequence[str], where: list[str],
    params: list[Any], key_cols: tuple[str, ...], key: tuple[Any, ...] | None, *,
    forward: bool, limit: int, descending: bool,
) -> tuple[list[dict[str, Any]], bool, bool]:
    """Fetch one page past ``key`` in list order (or before it when not ``forward``).

    Returns the rows in list order and whether rows exist before and after the page.
    """
    # "Later in list order" is ">" ascending, "<" descending.
    later, earlier = (">", "<") if not descending else ("<", ">")
    direction = "ASC" if forward != descending else "DESC"
    key_sql = "(" + ", ".join(key_cols) + ")"
    clauses = list(where)
    if key is not None:
        clauses.append(f"{key_sql} {later if forward else earlier} {_marks(key)}")
    order = ", ".join(f"{c} {direction}" for c in key_cols)
    select = ", ".join(f'"{c}"' for c in columns)
    sql = f"SELECT {select} FROM {table} WHERE {' AND '.join(clauses)} ORDER BY {order} LIMIT ?"
    found = conn.execute(sql, (*params, *(key or ()), limit + 1)).fetchall()
    extra = len(found) > limit
    rows = [dict(zip(columns, r, strict=True)) for r in found[:limit]]
    if not forward:
        rows.reverse()
    if not rows:
        return rows, False, False
    first = tuple(rows[0][c] for c in key_cols)
    last = tuple(rows[-1][c] for c in key_cols)
    probe = f"SELECT 1 FROM {table} WHERE {' AND '.join(where)} AND {key_sql} "
    tail = f" {_marks(first)} LIMIT 1"
    if forward:
        before = conn.execute(probe + earlier + tail, (*params, *first)).fetchone() is not None
        return rows, before, extra
    after = conn.execute(probe + later + tail, (*params, *last)).fetchone() is not None
    return rows, extra, after


def _marks(key: tuple[Any, ...]) -> str:
    return "(" + ", ".join("?" * len(key)) + ")"


def _page(data: list[T], ids: list[str], more_before: bool, more_after: bool) -> Page[T]:
    meta = ListMetadata(
        before=ids[0] if ids and more_before else None,
        after=ids[-1] if ids and more_after else None,
    )
    return Page[Any](data=data, list_metadata=meta)
