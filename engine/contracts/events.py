"""Records the scheduler emits and the store persists.

The scheduler is sans-IO: every state change it makes is appended to its outbox as a
:class:`StepEvent` (or a :class:`RunUpdate`). The runner drains the outbox and hands
the batch to the store, which writes it in one transaction, stamping the time. A step's
first event is always ``pending`` (creation, with its loop scope); each later event is
one lifecycle transition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from engine.contracts.errors import ErrorCategory, ErrorStage
from engine.contracts.values import LoopFrame, Payload, RunStatus, StepStatus


def slot_init(cls: type) -> Callable[..., None]:
    """An ``__init__`` for the frozen, slotted, keyword-only dataclass ``cls`` that stores
    each field through its slot's own setter.

    The ``__init__`` dataclasses generates for a frozen class calls
    ``object.__setattr__`` per field, which costs about twice as much; step records are
    built several times per step. The instance is the same either way: immutable, equal,
    printed and ``dataclasses.replace``-able alike. Declare the class with ``init=False``,
    so that importing it does not also compile the ``__init__`` this one replaces.

    Args:
        cls: the dataclass (every field in ``__init__``, no ``__post_init__``).

    Returns:
        The function to assign to ``cls.__init__``, or to call on ``object.__new__(cls)``.
    """
    if hasattr(cls, "__post_init__") or not hasattr(cls, "__slots__"):
        raise TypeError(f"{cls.__name__}: slot_init needs a slotted class without __post_init__")
    namespace: dict[str, Any] = {"_FACTORY": object()}
    params: list[str] = []
    body: list[str] = []
    for item in fields(cls):
        name = item.name
        if not item.init:
            raise TypeError(f"{cls.__name__}.{name}: slot_init needs every field in __init__")
        if item.default is not MISSING:
            namespace[f"_default_{name}"] = item.default
            params.append(f"{name}=_default_{name}")
        elif item.default_factory is not MISSING:
            namespace[f"_factory_{name}"] = item.default_factory
            params.append(f"{name}=_FACTORY")
            body.append(f"    if {name} is _FACTORY:\n        {name} = _factory_{name}()\n")
        else:
            params.append(name)
        namespace[f"_set_{name}"] = cls.__dict__[name].__set__
        body.append(f"    _set_{name}(self, {name})\n")
    source = f"def __init__(self, *, {', '.join(params)}):\n{''.join(body)}"
    exec(source, namespace)  # noqa: S102 - code built from the field names above
    init: Callable[..., None] = namespace["__init__"]
    init.__annotations__ = {item.name: item.type for item in fields(cls)} | {"return": None}
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    return init


@dataclass(frozen=True, slots=True, kw_only=True, init=False)
class InputRecord:
    """A payload that reached an input handle, and where it came from.

    ``source_step``/``source_handle`` are None for payloads the engine injected (run
    inputs on start blocks, loop items on sentinel starts). Stores may keep sourced
    inputs as references to the producing step's output so each payload is stored once.
    """

    payload: Payload
    source_step: str | None = None
    source_handle: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
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


@dataclass(frozen=True, slots=True, kw_only=True, init=False)
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


# Several of these are built per step: see slot_init.
InputRecord.__init__ = slot_init(InputRecord)  # type: ignore[method-assign]
StepEvent.__init__ = slot_init(StepEvent)  # type: ignore[method-assign]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunUpdate:
    """A change of the run's lifecycle."""

    status: RunStatus
    failing_step_id: str | None = None
    error: StepErrorInfo | None = None
    reason: str | None = None
    waiting_for_block_ids: list[str] | None = None
    outputs: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
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
