"""Hand-built CompiledGraphs and a synchronous driver for scheduler tests (no I/O)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from blocks.base import BlockType
from engine.compiled import CompiledGraph, Edge, Node
from engine.contracts.blocks import (
    BlockResult,
    BlockRole,
    ExpandItems,
    JoinMode,
    LoopStart,
    SentinelRole,
    sentinel_id,
)
from engine.contracts.errors import ErrorCategory, ErrorStage
from engine.contracts.events import StepErrorInfo, StepEvent
from engine.contracts.values import Payload
from engine.definition import Workflow
from engine.scheduler import Scheduler, Task

CONTAINER_HANDLES = {
    "for_each": ("fe-left-in", "fe-right-out", "fe-left-out", "fe-right-in"),
    "while_loop": ("loop-left-in", "loop-right-out", "loop-left-out", "loop-right-in"),
}


class _Impl(BlockType):
    type_name = "fake"


@dataclass
class Cfg:
    """Stand-in parsed config for containers."""

    max_concurrency: int = 4
    on_item_error: str = "fail"
    max_iterations: int = 10


@dataclass
class GraphSpec:
    """Collects nodes and edges, then builds a CompiledGraph."""

    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    order: list[str] = field(default_factory=list)

    def block(self, node_id: str, *, inputs: tuple[str, ...] = ("input-json-0",),
              outputs: tuple[str, ...] = ("output-json-0",), join: JoinMode = JoinMode.ALL,
              parent: str | None = None, type_: str = "function",
              role: BlockRole = BlockRole.TASK,
              unfired: str = "branch_not_selected") -> GraphSpec:
        self.nodes[node_id] = Node(
            id=node_id, type=type_, label=node_id, parent=parent, config=Cfg(), impl=_Impl(),
            inputs={h: "json" for h in inputs}, outputs={h: "json" for h in outputs},
            join=join, unfired_reason=unfired, role=role)
        self.order.append(node_id)
        return self

    def container(self, node_id: str, kind: str, *, parent: str | None = None,
                  **cfg: Any) -> GraphSpec:
        left_in, right_out, left_out, right_in = CONTAINER_HANDLES[kind]
        self.nodes[node_id] = Node(
            id=node_id, type=kind, label=node_id, parent=parent, config=Cfg(**cfg),
            impl=_Impl(), inputs={left_in: "json"}, outputs={right_out: "json"},
            join=JoinMode.ALL, unfired_reason="branch_not_selected", container=kind)
        self.order.append(node_id)
        for role, ins, outs, join in ((SentinelRole.START, (), (left_out,), JoinMode.ALL),
                                      (SentinelRole.END, (right_in,), (), JoinMode.SETTLED)):
            sid = sentinel_id(node_id, role)
            self.nodes[sid] = Node(
                id=sid, type=f"{kind}_sentinel_{role.value}", label=sid, parent=node_id,
                config=Cfg(**cfg), impl=_Impl(), inputs={h: "json" for h in ins},
                outputs={h: "json" for h in outs}, join=join,
                unfired_reason="branch_not_selected", sentinel_of=node_id, sentinel_role=role)
            self.order.append(sid)
        return self

    def edge(self, src: str, dst: str, sh: str = "output-json-0",
             th: str = "input-json-0") -> GraphSpec:
        self.edges.append(Edge(source=src, source_handle=sh, target=dst, target_handle=th))
        return self

    def build(self) -> CompiledGraph:
        incoming: dict[str, dict[str, Edge]] = {}
        outgoing: dict[str, dict[str, list[Edge]]] = {}
        for e in self.edges:
            incoming.setdefault(e.target, {})[e.target_handle] = e
            outgoing.setdefault(e.source, {}).setdefault(e.source_handle, []).append(e)
        members: dict[str | None, list[str]] = {}
        for node_id in self.order:  # callers declare in topological order
            members.setdefault(self.nodes[node_id].parent, []).append(node_id)
        return CompiledGraph(workflow=Workflow(), nodes=dict(self.nodes), incoming=incoming,
                             outgoing=outgoing,
                             members={k: tuple(v) for k, v in members.items()})


Behaviour = Callable[[Task], "BlockResult | StepErrorInfo"]


def error(message: str = "boom") -> StepErrorInfo:
    return StepErrorInfo(message=message, stage=ErrorStage.EXECUTION,
                         category=ErrorCategory.PERMANENT)


def echo(task: Task) -> BlockResult:
    """Default behaviour: every declared output carries the first input (or the step id)."""
    value: Any = next(iter(task.inputs.values())).data if task.inputs else task.step_id
    return BlockResult(outputs={h: Payload.json(value) for h in task.node.outputs})


def expand(task: Task, items: list[Any]) -> BlockResult:
    """What a for_each handler returns: the items, with the loop policy of its config."""
    cfg = task.node.config
    return BlockResult(control=ExpandItems(
        items=[Payload.json(i) for i in items], max_concurrency=cfg.max_concurrency,
        on_item_error=cfg.on_item_error))


def loop_start(task: Task, state: Any) -> BlockResult:
    """What a while_loop handler returns: the first state, with the bound of its config."""
    return BlockResult(control=LoopStart(state=Payload.json(state),
                                         max_iterations=task.node.config.max_iterations))


@dataclass
class Trace:
    events: list[StepEvent] = field(default_factory=list)
    started: list[str] = field(default_factory=list)

    def status(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for e in self.events:
            out[e.step_id] = e.status.value
        return out

    def event(self, step_id: str, status: str) -> StepEvent:
        return next(e for e in self.events if e.step_id == step_id and e.status.value == status)


def drive(graph: CompiledGraph, behave: Behaviour = echo, *, lifo: bool = False,
          pick: Callable[[list[Task]], int] | None = None,
          recorded: frozenset[str] = frozenset()) -> tuple[Scheduler, Trace]:
    """Run the scheduler to the end synchronously; ``pick`` chooses which task finishes next;
    ``recorded``: the step ids a resumed run would find in the database."""
    sched = Scheduler(graph, recorded=recorded)
    trace = Trace()
    sched.start()
    running: list[Task] = []
    while True:
        for task in sched.take_ready():
            sched.mark_running(task.step_id)
            trace.started.append(task.step_id)
            running.append(task)
        trace.events.extend(sched.drain())
        if not running:
            break
        index = pick(running) if pick else (len(running) - 1 if lifo else 0)
        task = running.pop(index)
        outcome = behave(task)
        if isinstance(outcome, StepErrorInfo):
            sched.fail(task.step_id, outcome)
        else:
            sched.complete(task.step_id, outcome)
    trace.events.extend(sched.drain())
    return sched, trace
