"""Saved block evals, their runs and results, and one-off block executions: records and
the :class:`EvalStore` protocol.

An eval pins an expected outcome for one block of a registered workflow: the handle
inputs to replay (given by hand, or captured from a step of an earlier run) and one
assertion on an output handle. An eval run replays a set of evals against the
workflow's draft and writes one result per eval. A block execution replays one block of
a run with that step's inputs, outside any run.

Every record carries its ``organization_id``; a store answers another organization's
ids with ``NotFoundError``, exactly like ids that do not exist. Lists are keyset pages
on ``(created_at, id)``; a cursor is the id of a row of the same list.

Rules every implementation keeps (``tests/store/test_contract_evals.py``):

- ``save_*`` inserts or replaces the record with the same id, committed on return.
- :meth:`EvalStore.save_eval_run` never clears a cancel request; only
  :meth:`EvalStore.cancel_eval_run` sets one, and a run saved as ``cancelled`` stays so.
- Deleting an eval keeps its results (they name the eval by id).
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

from engine.contracts.eval_store import EvalStore  # noqa: F401 - re-exported

# The protocol lives apart so that composing Store imports no record class.
from engine.contracts.frozen import record

#: Eval run and result lifecycle states; a terminal state is never left.
EVAL_STATUSES = ("pending", "queued", "running", "completed", "error", "cancelled")
EVAL_TERMINAL = frozenset({"completed", "error", "cancelled"})


@record
class EvalDefinition:
    """A saved eval.

    Attributes:
        source: ``{"type": "manual", "handle_inputs": ...}`` or
            ``{"type": "run_step", "run_id": ..., "step_id": ...}`` as given.
        handle_inputs: the inputs replayed, in wire form (``{"type": "json", "data"}`` or
            ``{"type": "file", "document": {id, filename, mime_type}}`` per handle); a
            ``run_step`` source is captured when the eval is saved.
        assertion: ``{id, target: {output_handle_id, path}, condition, label}``.
    """

    id: str
    workflow_id: str
    organization_id: str
    name: str | None
    block_id: str
    source: dict[str, Any]
    handle_inputs: dict[str, Any]
    assertion: dict[str, Any]
    created_at: float
    updated_at: float


@record
class EvalRun:
    """One run of a set of evals against a workflow version.

    Attributes:
        scope: ``{"type": "workflow"}``, ``{"type": "block", "block_id"}`` or
            ``{"type": "single", "eval_id"}``.
        status: one of :data:`EVAL_STATUSES`.
        trigger: ``api`` or ``manual`` (the CLI).
        total: how many evals the run replays.
    """

    id: str
    workflow_id: str
    organization_id: str
    workflow_version_id: str
    scope: dict[str, Any]
    status: str
    trigger: str
    total: int
    created_at: float
    started_at: float | None = None
    completed_at: float | None = None
    error: str | None = None
    reason: str | None = None
    cancel_requested: bool = False


@record
class EvalResult:
    """What one eval of a run did.

    Attributes:
        verdict: ``passed``, ``failed`` or ``blocked`` once completed, else None.
        assertion_result: ``{assertion_id, condition_kind, outcome, actual_value,
            expected_value, score, threshold, failure}``.
        artifact: the replayed step's operation record, if any.
    """

    id: str
    eval_run_id: str
    eval_id: str
    workflow_id: str
    organization_id: str
    block_id: str
    block_type: str
    status: str
    created_at: float
    verdict: str | None = None
    handle_inputs: dict[str, Any] = field(default_factory=dict)
    handle_outputs: dict[str, Any] | None = None
    artifact: dict[str, Any] | None = None
    assertion_result: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    started_at: float | None = None
    completed_at: float | None = None


@record
class BlockExecution:
    """One block of a run executed again, outside any run, with that step's inputs."""

    id: str
    workflow_id: str
    organization_id: str
    workflow_version_id: str | None
    source_run_id: str
    source_step_id: str
    block_id: str
    block_type: str
    status: str
    created_at: float
    message: str | None = None
    handle_inputs: dict[str, Any] = field(default_factory=dict)
    handle_outputs: dict[str, Any] | None = None
    routing_decisions: list[str] | None = None
    artifact: dict[str, Any] | None = None
    block_config: dict[str, Any] | None = None
    started_at: float | None = None
    completed_at: float | None = None


@record
class EvalRunFilters:
    """Which eval runs a list keeps (every field optional)."""

    workflow_id: str | None = None
    eval_id: str | None = None
    block_id: str | None = None
    statuses: tuple[str, ...] = ()
    exclude_statuses: tuple[str, ...] = ()
    triggers: tuple[str, ...] = ()
    created_from: float | None = None
    created_to: float | None = None
