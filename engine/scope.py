"""The scheduler's live records: scopes and the steps in them.

A :class:`Scope` is one copy of a member set: the top level, or one iteration of a
container. It holds a :class:`StepState` per member and counts the members that are not
terminal yet; when that count reaches zero an iteration scope is closed (see
:mod:`engine.iteration`). These are mutable on purpose and private to the state machine:
the scheduler hands out :class:`~engine.scheduler.Task` values and
:class:`~engine.contracts.events.StepEvent` records, never these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.compiled import Node
from engine.contracts.blocks import BlockResult
from engine.contracts.events import InputRecord
from engine.contracts.values import LoopFrame, StepStatus

#: A module constant: reading a member off its enum class costs a slow attribute lookup.
_PENDING = StepStatus.PENDING

if TYPE_CHECKING:
    from engine.iteration import ForEachLoop, WhileLoop


@dataclass(frozen=True, slots=True)
class DeadInput:
    """Why an input handle will never receive a payload.

    Attributes:
        reason: what downstream steps record when they are skipped for it.
        by_error: an upstream error (not a routing choice) caused it.
    """

    reason: str
    by_error: bool


class StepState:
    """One step of a run while it is live: its status and what reached its inputs."""

    __slots__ = (
        "arrived",
        "dead",
        "node",
        "result",
        "retry_count",
        "scope",
        "status",
        "step_id",
        "waiting",
    )

    def __init__(self, step_id: str, node: Node, scope: Scope, waiting: int) -> None:
        self.step_id = step_id
        self.node = node
        self.scope = scope
        self.status = _PENDING
        self.retry_count = 0
        self.arrived: dict[str, InputRecord] = {}
        self.dead: dict[str, DeadInput] = {}
        self.waiting = waiting
        self.result: BlockResult | None = None


class Scope:
    """One copy of a member set: the top level, or one iteration of a container."""

    __slots__ = ("error_step", "frames", "index", "loop", "open", "steps")

    def __init__(self, frames: tuple[LoopFrame, ...],
                 loop: ForEachLoop | WhileLoop | None = None, index: int = 0) -> None:
        self.frames = frames
        self.steps: dict[str, StepState] = {}
        self.open = 0
        self.loop = loop
        self.index = index
        self.error_step: str | None = None
