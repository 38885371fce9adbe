"""Records the scheduler emits and the store persists.

The scheduler is sans-IO: every state change it makes is appended to its outbox as a
:class:`StepEvent` (or a :class:`RunUpdate`). The runner drains the outbox and hands
the batch to the store, which writes it in one transaction, stamping the time. A step's
first event is always ``pending`` (creation, with its loop scope); each later event is
one lifecycle transition.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

from engine.contracts.errors import ErrorCategory, ErrorStage
from engine.contracts.frozen import builder, record
from engine.contracts.values import LoopFrame, Payload, RunStatus, StepStatus


@record
class InputRecord:
    """A payload that reached an input handle, and where it came from.

    ``source_step``/``source_handle`` are None for payloads the engine injected (run
    inputs on start blocks, loop items on sentinel starts). Stores may keep sourced
    inputs as references to the producing step's output so each payload is stored once.
    """

    payload: Payload
    source_step: str | None = None
    source_handle: str | None = None


@record
class StepErrorInfo:
    """The ``error`` lifecycle of a step."""

    message: str
    stage: ErrorStage
    category: ErrorCategory
    code: str = "BLOCK_ERROR"
    stack_trace: str | None = None
    context: dict[str, Any] = field(default_factory=dict)

    def details(self, block_id: str, block_name: str) -> dict[str, Any]:
        """``error.details`` as stored and served."""
        return {
            "stack_trace": self.stack_trace,
            "block_id": block_id,
            "block_name": block_name,
            "error_code": self.code,
            "context": self.context,
        }


@record
class StepEvent:
    """One step creation or lifecycle transition."""

    step_id: str
    block_id: str
    block_type: str
    label: str
    status: StepStatus
    scope: tuple[LoopFrame, ...] = ()
    retry_count: int = 0
    inputs: dict[str, InputRecord] | None = None
    outputs: dict[str, Payload] | None = None
    error: StepErrorInfo | None = None
    reason: str | None = None
    artifact: dict[str, Any] | None = None
    model: str | None = None
    tokens: dict[str, int] | None = None
    cost: dict[str, Any] | None = None
    trace_spans: list[dict[str, Any]] | None = None
    control: dict[str, Any] | None = None


#: ``StepEvent(**fields)`` and ``InputRecord(**fields)``, about twice as fast
#: (:func:`~engine.contracts.frozen.builder`): the scheduler makes several per step.
step_event = builder(StepEvent)
input_record = builder(InputRecord)


@record
class RunUpdate:
    """A change of the run's lifecycle."""

    status: RunStatus
    failing_step_id: str | None = None
    error: StepErrorInfo | None = None
    reason: str | None = None
    waiting_for_block_ids: list[str] | None = None
    outputs: dict[str, Any] | None = None


@record
class NewRun:
    """Everything needed to create a run row.

    Attributes:
        definition: the workflow as JSON (enough to rebuild it for resume and rerun); a
            store may keep the dict it was given, encoded, for later runs: do not change
            it once a run was created with it.
        inputs: run inputs keyed by start block id, in wire form.
    """

    run_id: str
    workflow_id: str
    workflow_name: str
    workflow_digest: str
    definition: dict[str, Any]
    inputs: dict[str, Any]
    metadata: dict[str, str] = field(default_factory=dict)
    organization_id: str = "org_local"
    trigger: str = "manual"
    parent_run_id: str | None = None
