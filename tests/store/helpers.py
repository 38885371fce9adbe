"""Event builders shared by the store tests."""

from __future__ import annotations

from typing import Any

from engine.contracts.artifacts import artifact_id
from engine.contracts.errors import ErrorCategory, ErrorStage
from engine.contracts.events import InputRecord, NewRun, StepErrorInfo, StepEvent
from engine.contracts.values import LoopFrame, Payload, StepStatus

S = StepStatus
T0 = 1_780_000_000.0


def new_run(run_id: str = "run_1", **kw: Any) -> NewRun:
    """A NewRun with small defaults."""
    fields: dict[str, Any] = dict(
        run_id=run_id, workflow_id="wf_1", workflow_name="Invoices", workflow_digest="sha_1",
        definition={"blocks": []}, inputs={"start": {"a": 1}},
    )
    fields.update(kw)
    return NewRun(**fields)


def ev(step_id: str, status: StepStatus, *, block_id: str | None = None,
       block_type: str = "function", **kw: Any) -> StepEvent:
    """A StepEvent for ``step_id`` (block id defaults to the step id)."""
    block = block_id or step_id
    return StepEvent(step_id=step_id, block_id=block, block_type=block_type,
                     label=block.replace("_", " ").title(), status=status, **kw)


def lifecycle(step_id: str, outputs: dict[str, Payload] | None = None,
              inputs: dict[str, InputRecord] | None = None, **kw: Any) -> list[StepEvent]:
    """pending -> queued -> running -> completed for one step."""
    return [
        ev(step_id, S.PENDING, **kw),
        ev(step_id, S.QUEUED, inputs=inputs, **kw),
        ev(step_id, S.RUNNING, **kw),
        ev(step_id, S.COMPLETED, outputs=outputs or {}, **kw),
    ]


def error_info(message: str = "boom") -> StepErrorInfo:
    """A permanent execution error."""
    return StepErrorInfo(message=message, stage=ErrorStage.EXECUTION,
                         category=ErrorCategory.PERMANENT, code="FUNCTION_RAISED",
                         context={"line": 3})


def frame(container: str, iteration: int) -> LoopFrame:
    """A sequential loop frame."""
    return LoopFrame(container_id=container, iteration=iteration)


def write_steps_in_process(path: str, run_id: str, n_steps: int, start: Any) -> int:
    """Child-process body for the concurrency test: one run, ``n_steps`` steps, each in
    three transactions (as the runner writes them). Returns the steps written."""
    from store.sqlite import SQLiteStore

    start.wait()
    with SQLiteStore(path) as store:
        store.create_run(new_run(run_id), now=T0)
        for i in range(n_steps):
            sid = f"s{i}"
            out = {"output-json-0": Payload.json({"i": i, "run": run_id})}
            store.apply(run_id, [ev(sid, S.PENDING), ev(sid, S.QUEUED)], now=T0 + i)
            store.apply(run_id, [ev(sid, S.RUNNING)], now=T0 + i)
            store.apply(run_id, [ev(sid, S.COMPLETED, outputs=out)], now=T0 + i)
    return n_steps


def in_row_artifact_id(operation: str, seq: int, run_id: str, step_id: str, attempt: int) -> str:
    """The id a database store gives an artifact kept in the step row ``seq``: the
    operation's prefix, ``seq`` in 6 hex digits, then 6 of the hash of run, step and
    attempt (``store.stepdata.artifact_stub``)."""
    prefix, _, digits = artifact_id(operation, run_id, step_id, attempt).partition("_")
    return f"{prefix}_{seq:06x}{digits[:6]}"
