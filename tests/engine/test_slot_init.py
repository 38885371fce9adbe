"""slot_init: the fast ``__init__`` of step records builds the same objects as the one
dataclasses generates."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import pytest

from engine.contracts.blocks import BlockContext
from engine.contracts.events import InputRecord, StepErrorInfo, StepEvent
from engine.contracts.frozen import slot_init
from engine.contracts.errors import ErrorCategory, ErrorStage
from engine.contracts.values import LoopFrame, Payload, StepStatus
from engine.scheduler import Task


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Generated:
    """Reference: the same fields with the generated ``__init__``."""

    a: str
    b: int = 3
    c: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Fast:
    a: str
    b: int = 3
    c: dict[str, Any] = dataclasses.field(default_factory=dict)


_Fast.__init__ = slot_init(_Fast)  # type: ignore[method-assign]


def _event(**overrides: Any) -> StepEvent:
    fields: dict[str, Any] = {
        "step_id": "s", "block_id": "b", "block_type": "function", "label": "B",
        "status": StepStatus.COMPLETED, "scope": (LoopFrame(container_id="l", iteration=1),),
        "retry_count": 2, "inputs": {"in": InputRecord(payload=Payload.json(1))},
        "outputs": {"out": Payload.json({"n": 1})}, "reason": "r", "artifact": {"x": 1},
        "model": "m", "tokens": {"t": 1}, "cost": {"c": 1}, "trace_spans": [{}],
        "control": {"k": 1},
    }
    fields.update(overrides)
    return StepEvent(**fields)


def test_step_event_keeps_dataclass_behaviour() -> None:
    event = _event()
    assert event == _event()
    assert event != _event(retry_count=3)
    assert repr(event).startswith("StepEvent(step_id='s', block_id='b'")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.label = "other"  # type: ignore[misc]
    changed = dataclasses.replace(event, status=StepStatus.ERROR)
    assert changed.status is StepStatus.ERROR and changed.outputs is event.outputs
    assert pickle.loads(pickle.dumps(event)) == event
    assert dataclasses.asdict(event)["retry_count"] == 2


def test_defaults_and_factories_as_generated() -> None:
    short = StepEvent(step_id="s", block_id="b", block_type="t", label="l",
                      status=StepStatus.PENDING)
    assert short.scope == () and short.retry_count == 0 and short.outputs is None
    assert repr(_Fast(a="x")) == repr(_Generated(a="x")).replace("_Generated", "_Fast")
    assert _Fast(a="x").c is not _Fast(a="x").c  # a new dict per instance
    assert _Fast(a="x", c={"k": 1}).c == {"k": 1}


def test_argument_errors_as_generated() -> None:
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'a'"):
        _Fast()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'z'"):
        _Fast(a="x", z=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _Fast("x")  # type: ignore[misc]


def test_every_field_is_set() -> None:
    """A field added to a record is set by the fast ``__init__`` too (no unset slot)."""
    for cls, value in ((StepEvent, _event()), (InputRecord, InputRecord(payload=Payload.json(1))),
                       (Task, Task(step_id="s", node=None, scope=(), inputs={}))):  # type: ignore[arg-type]
        for item in dataclasses.fields(cls):
            getattr(value, item.name)


def test_block_context_built_on_a_new_object() -> None:
    init = slot_init(BlockContext)
    ctx = object.__new__(BlockContext)
    init(ctx, run_id="r", step_id="s", block_id="b", block_type="t", label="l")
    assert ctx == BlockContext(run_id="r", step_id="s", block_id="b", block_type="t", label="l")


def test_refuses_what_it_cannot_build() -> None:
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class NoSlots:
        a: int

    with pytest.raises(TypeError):
        slot_init(NoSlots)
    info = StepErrorInfo(message="m", stage=ErrorStage.EXECUTION, category=ErrorCategory.PERMANENT)
    assert info.context == {}
