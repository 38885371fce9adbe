"""The memory store's tables, and how a batch of step events changes them.

:class:`Tables` holds every row in dicts, under one lock. A batch is applied in two
phases, like the SQLite store's: :func:`stage` folds the events into copies of the
touched step rows (checking every move with
:func:`~engine.contracts.values.check_move` and encoding every value as the SQLite store
would, so the same values are refused with the same errors); only when the whole batch
(and the run change, :func:`staged_run`) is staged does the caller swap the copies in.
Rows are the store's mutable state; values handed out are copies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from engine.contracts.errors import IllegalTransition
from engine.contracts.events import RunUpdate, StepEvent
from engine.contracts.reads import ArtifactRecord
from engine.contracts.records import Review, ReviewVersion, WorkflowVersion
from engine.contracts.values import RunStatus, StepStatus, check_move
from store.codec import dumps
from store.stepdata import artifact_key, error_json, review_data


def as_json(value: Any, what: str, owner: str) -> Any:
    """``value`` as the JSON a store keeps (a fresh copy).

    Raises:
        StorageError: JSON cannot hold it (the SQLite store's message).
    """
    return json.loads(dumps(value, what, owner))


@dataclass(slots=True, kw_only=True)
class RunRow:
    """A run, as the memory store keeps it (mutable state)."""

    id: str
    workflow_id: str
    workflow_name: str
    workflow_digest: str
    definition: dict[str, Any]
    inputs: dict[str, Any]
    metadata: dict[str, Any]
    organization_id: str
    trigger: str
    status: RunStatus = RunStatus.PENDING
    failing_step_id: str | None = None
    error: dict[str, Any] | None = None
    reason: str | None = None
    waiting_for: list[str] | None = None
    outputs: dict[str, Any] | None = None
    owner_pid: int | None = None
    heartbeat_at: float | None = None
    cancel_requested: bool = False
    parent_run_id: str | None = None
    created_at: float
    started_at: float | None = None
    completed_at: float | None = None


@dataclass(slots=True, kw_only=True)
class StepRow:
    """A step, as the memory store keeps it (mutable state).

    ``inputs`` holds a sourced input as ``{"ref": [step_id, handle]}``, resolved on read
    like the SQLite store's; ``trail`` holds the audit trail.
    """

    seq: int
    run_id: str
    step_id: str
    block_id: str
    block_type: str
    label: str
    status: StepStatus
    scope: list[dict[str, Any]]
    retry_count: int = 0
    inputs: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    reason: str | None = None
    artifact_id: str | None = None
    artifact_operation: str | None = None
    model: str | None = None
    tokens: Any = None
    cost: Any = None
    trace_spans: Any = None
    control: Any = None
    created_at: float
    queued_at: float | None = None
    started_at: float | None = None
    completed_at: float | None = None
    updated_at: float
    duration_ms: int | None = None
    trail: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class WorkflowRow:
    """A registered workflow: its draft and published version (mutable state)."""

    id: str
    name: str
    digest: str
    definition: dict[str, Any]
    yaml: str
    organization_id: str
    created_at: float
    description: str = ""
    project_id: str | None = None
    published_version: str | None = None
    published_at: float | None = None
    published_description: str = ""
    revision: int = 0
    stamps: dict[str, float] = field(default_factory=dict)
    updated_at: float = 0.0


@dataclass(slots=True)
class Tables:
    """Every row of a memory store. Callers hold ``lock`` (an ``RLock``) while using them."""

    lock: Any
    runs: dict[str, RunRow] = field(default_factory=dict)
    steps: dict[str, dict[str, StepRow]] = field(default_factory=dict)
    artifacts: dict[str, ArtifactRecord] = field(default_factory=dict)
    reviews: dict[str, Review] = field(default_factory=dict)
    review_versions: dict[str, ReviewVersion] = field(default_factory=dict)
    workflows: dict[str, WorkflowRow] = field(default_factory=dict)
    workflow_versions: dict[tuple[str, str], WorkflowVersion] = field(default_factory=dict)
    last_seq: int = 0


@dataclass(slots=True)
class Staged:
    """What one batch will write: step rows (copies), artifacts and reviews to open."""

    steps: dict[str, StepRow] = field(default_factory=dict)
    artifacts: list[ArtifactRecord] = field(default_factory=list)
    #: Ids of records a later attempt of their step replaced (no longer served).
    replaced_artifacts: list[str] = field(default_factory=list)
    reviews: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)


def stage(tables: Tables, run_id: str, events: Sequence[StepEvent], now: float) -> Staged:
    """Fold ``events`` into copies of the rows they touch; nothing is changed in ``tables``.

    Raises:
        IllegalTransition: a forbidden move, a step created twice or moved uncreated.
        StorageError: a value JSON cannot hold, an artifact without ``operation``.
    """
    current = tables.steps.get(run_id, {})
    staged = Staged()
    seq = tables.last_seq
    for ev in events:
        sid = ev.step_id
        row = staged.steps.get(sid)
        if row is None and sid in current:
            # Shallow: column values are replaced, never changed in place; the trail grows.
            row = staged.steps[sid] = replace(current[sid], trail=list(current[sid].trail))
        if ev.status is StepStatus.PENDING:
            if row is not None:
                raise IllegalTransition(sid, row.status.value, "pending")
            seq += 1
            row = staged.steps[sid] = StepRow(
                seq=seq, run_id=run_id, step_id=sid, block_id=ev.block_id,
                block_type=ev.block_type, label=ev.label, status=StepStatus.PENDING,
                scope=[f.to_dict() for f in ev.scope], created_at=now, updated_at=now)
        elif row is None:
            raise IllegalTransition(sid, "not created", ev.status.value)
        else:
            check_move(sid, row.status, ev.status)
        _fold(row, run_id, ev, now, staged)
    return staged


def _fold(row: StepRow, run_id: str, ev: StepEvent, now: float, staged: Staged) -> None:
    status = row.status = ev.status
    row.retry_count, row.updated_at = ev.retry_count, now
    if status is StepStatus.QUEUED and row.queued_at is None:
        row.queued_at = now
    elif status is StepStatus.RUNNING and row.started_at is None:
        row.started_at = now
    elif status.terminal:
        row.completed_at = now
        row.duration_ms = None if row.started_at is None else round((now - row.started_at) * 1000)
    sid = ev.step_id
    if ev.inputs is not None:
        row.inputs = as_json({
            h: {"ref": [r.source_step, r.source_handle or h]} if r.source_step is not None
            else r.payload.to_dict() for h, r in ev.inputs.items()}, "inputs", sid)
    if ev.outputs is not None:
        row.outputs = as_json({h: p.to_dict() for h, p in ev.outputs.items()}, "outputs", sid)
    error = None
    if ev.error is not None:
        error = row.error = as_json(error_json(ev.error, ev.block_id, ev.label), "error", sid)
    if ev.reason is not None:
        row.reason = ev.reason
    if ev.artifact is not None:
        previous = row.artifact_id
        row.artifact_id, row.artifact_operation = artifact_key(run_id, ev)
        if previous is not None and previous != row.artifact_id:
            staged.replaced_artifacts.append(previous)  # as the SQL stores: the last attempt's
        staged.artifacts.append(ArtifactRecord(
            id=row.artifact_id, run_id=run_id, step_id=sid, operation=row.artifact_operation,
            record=as_json(ev.artifact, "artifact", sid), created_at=now))
    for name in ("model", "tokens", "cost", "trace_spans", "control"):
        value = getattr(ev, name)
        if value is not None:
            setattr(row, name, value if name == "model" else as_json(value, name, sid))
    if status is StepStatus.AWAITING_REVIEW:
        staged.reviews.append((sid, ev.block_id, as_json(review_data(ev), "review", sid)))
    detail: dict[str, Any] | None = None
    if error is not None or ev.reason is not None:
        detail = {k: v for k, v in (("error", error), ("reason", ev.reason)) if v is not None}
    row.trail.append({"status": status.value, "at": now, "retry_count": ev.retry_count,
                      "detail": detail})


def staged_run(run: RunRow, update: RunUpdate, steps: Mapping[str, StepRow], now: float
               ) -> RunRow:
    """A copy of ``run`` with ``update`` applied; ``steps`` are the run's steps as the
    batch leaves them (to name the failing step in the error).

    Raises:
        StorageError: the run outputs are not JSON.
    """
    new = replace(run)
    status = new.status = update.status
    if status is RunStatus.RUNNING and new.started_at is None:
        new.started_at = now
    new.completed_at = now if status.terminal else None
    new.failing_step_id = update.failing_step_id
    new.error = None
    if update.error is not None:
        block_id, label = "", ""
        if update.failing_step_id is not None:
            failing = steps.get(update.failing_step_id)
            block_id, label = ((failing.block_id, failing.label) if failing is not None
                               else (update.failing_step_id, update.failing_step_id))
        new.error = as_json(error_json(update.error, block_id, label), "error", run.id)
    new.reason = update.reason
    waiting = update.waiting_for_block_ids if status is RunStatus.AWAITING_REVIEW else None
    new.waiting_for = None if waiting is None else list(waiting)
    if update.outputs is not None:
        new.outputs = as_json(update.outputs, "outputs", run.id)
    return new
