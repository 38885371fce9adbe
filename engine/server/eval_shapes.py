"""Evals on the wire: request bodies, and evals, eval runs and results in the Retab SDK's
models (``WorkflowEval``, ``WorkflowEvalRun``, ``WorkflowEvalResult``).

An eval's replayed step belongs to no run, so ``artifact`` is null and the operation
record is returned whole as ``stepwell_artifact``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.contracts.evals import EvalDefinition, EvalResult, EvalRun
from engine.server.shapes import iso


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EvalTargetIn(_Strict):
    """The block an eval replays."""

    type: Literal["block"] = "block"
    block_id: str = Field(min_length=1)


class ManualSourceIn(_Strict):
    """Inputs given by hand, per input handle."""

    type: Literal["manual"] = "manual"
    handle_inputs: dict[str, dict[str, Any]] = Field(default_factory=dict)


class RunStepSourceIn(_Strict):
    """Inputs captured from a step of an earlier run (``step_id`` defaults to the block)."""

    type: Literal["run_step"] = "run_step"
    run_id: str
    step_id: str | None = None


SourceIn = Annotated[ManualSourceIn | RunStepSourceIn, Field(discriminator="type")]


class CreateEvalBody(_Strict):
    """A new eval."""

    workflow_id: str
    target: EvalTargetIn
    source: SourceIn
    name: str | None = Field(default=None, max_length=500)
    assertion: dict[str, Any]


class UpdateEvalBody(_Strict):
    """What to change on an eval."""

    name: str | None = Field(default=None, max_length=500)
    assertion: dict[str, Any] | None = None
    source: SourceIn | None = None


class SingleScope(_Strict):
    """One eval."""

    type: Literal["single"]
    eval_id: str


class BlockScope(_Strict):
    """Every eval of one block."""

    type: Literal["block"]
    block_id: str


class WorkflowScope(_Strict):
    """Every eval of the workflow."""

    type: Literal["workflow"]


class CreateEvalRunBody(_Strict):
    """Run evals of a workflow against its draft."""

    workflow_id: str
    scope: Annotated[SingleScope | BlockScope | WorkflowScope, Field(discriminator="type")] | None = None


def lifecycle(status: str, error: str | None, reason: str | None) -> dict[str, Any]:
    """The discriminated lifecycle object of a run or result."""
    if status == "error":
        return {"status": "error", "message": error or "(no message)"}
    if status == "cancelled":
        return {"status": "cancelled", "reason": reason}
    return {"status": status}


def timing(created: float, started: float | None, completed: float | None) -> dict[str, Any]:
    """``{created_at, started_at, completed_at, duration_ms}``."""
    duration = None if started is None or completed is None else int((completed - started) * 1000)
    return {"created_at": iso(created), "started_at": iso(started),
            "completed_at": iso(completed), "duration_ms": duration}


def summary(result: EvalResult) -> dict[str, Any]:
    """A result as the eval's ``latest_run_summary`` shows it."""
    outcome = (result.assertion_result or {}).get("outcome")
    return {"run_record_id": result.eval_run_id, "status": result.status,
            "outcome": result.verdict, "started_at": iso(result.started_at or result.created_at),
            "completed_at": iso(result.completed_at),
            "duration_ms": timing(result.created_at, result.started_at,
                                  result.completed_at)["duration_ms"],
            "assertions_passed": int(outcome == "passed"),
            "assertions_failed": int(outcome == "failed"),
            "blocked_assertions": int(outcome == "blocked")}


def eval_json(record: EvalDefinition, latest: list[EvalResult], draft_blocks: set[str]
              ) -> dict[str, Any]:
    """An eval (``WorkflowEval``) with its latest results (newest first)."""
    done = [r for r in latest if r.status in ("completed", "error", "cancelled")]
    passing = next((r for r in done if r.verdict == "passed"), None)
    failing = next((r for r in done if r.verdict in ("failed", "blocked")), None)
    broken = record.block_id not in draft_blocks
    return {
        "id": record.id, "workflow_id": record.workflow_id,
        "target": {"type": "block", "block_id": record.block_id}, "source": record.source,
        "name": record.name, "assertion": record.assertion,
        "assertion_drift_status": "broken" if broken else "valid",
        "schema_drift": "unknown", "validation_status": "invalid" if broken else "valid",
        "validation_issues": ([f"block {record.block_id!r} is not in the draft"]
                              if broken else []),
        "stepwell_handle_inputs": record.handle_inputs,
        "latest_run_summary": summary(done[0]) if done else None,
        "latest_passing_run_summary": summary(passing) if passing else None,
        "latest_failing_run_summary": summary(failing) if failing else None,
        "created_at": iso(record.created_at), "updated_at": iso(record.updated_at),
    }


def eval_run_json(run: EvalRun, counts: dict[str, Any]) -> dict[str, Any]:
    """An eval run (``WorkflowEvalRun``)."""
    scope = run.scope
    target = None
    if scope.get("type") == "block":
        target = {"type": "block", "block_id": scope.get("block_id")}
    return {
        "id": run.id, "workflow_id": run.workflow_id,
        "workflow_version_id": run.workflow_version_id, "trigger": {"type": run.trigger},
        "lifecycle": lifecycle(run.status, run.error, run.reason),
        "timing": timing(run.created_at, run.started_at, run.completed_at), "target": target,
        "eval_id": scope.get("eval_id") if scope.get("type") == "single" else None,
        "total_evals": run.total, "counts": counts, "stepwell_scope": scope,
    }


def result_json(result: EvalResult) -> dict[str, Any]:
    """An eval result (``WorkflowEvalResult``)."""
    outcome = (result.assertion_result or {}).get("outcome")
    verdict_summary = None
    if result.assertion_result is not None:
        verdict_summary = {
            "passed": outcome == "passed", "assertions_passed": int(outcome == "passed"),
            "assertions_failed": int(outcome == "failed"),
            "blocked_assertions": int(outcome == "blocked"),
            "failed_assertion_ids": ([result.assertion_result.get("assertion_id")]
                                     if outcome in ("failed", "blocked") else [])}
    return {
        "id": result.id, "workflow_eval_run_id": result.eval_run_id,
        "eval_id": result.eval_id, "workflow_id": result.workflow_id,
        "block_id": result.block_id, "block_type": result.block_type,
        "lifecycle": lifecycle(result.status, result.error, "cancelled by request"),
        "timing": timing(result.created_at, result.started_at, result.completed_at),
        "verdict": result.verdict, "artifact": None, "stepwell_artifact": result.artifact,
        "handle_inputs": result.handle_inputs, "handle_outputs": result.handle_outputs,
        "routing_decisions": sorted(result.handle_outputs or {}),
        "warnings": result.warnings, "assertion_result": result.assertion_result,
        "verdict_summary": verdict_summary,
    }
