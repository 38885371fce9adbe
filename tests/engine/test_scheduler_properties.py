"""Hypothesis properties of the scheduler over random DAGs, routing, failures and loops."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.contracts.blocks import (
    BlockResult,
    JoinMode,
    LoopDecision,
    SentinelRole,
)
from engine.contracts.values import Payload, RunStatus
from engine.scheduler import Task
from tests.engine.graphs import GraphSpec, drive, echo, error, expand, loop_start

OUTS = ("output-json-a", "output-json-b")
TERMINAL = {"completed", "skipped", "error", "cancelled"}


@st.composite
def dags(draw: st.DrawFn) -> tuple[GraphSpec, dict[str, Any]]:
    n = draw(st.integers(min_value=1, max_value=10))
    spec = GraphSpec().block("n0", inputs=(), outputs=OUTS)
    behaviour: dict[str, Any] = {"n0": ("fire", OUTS)}
    for i in range(1, n):
        sources = draw(st.lists(st.integers(0, i - 1), min_size=1, max_size=3, unique=True))
        join = draw(st.sampled_from(list(JoinMode)[:3]))
        spec.block(f"n{i}", inputs=tuple(f"input-json-{k}" for k in range(len(sources))),
                   outputs=OUTS, join=join)
        for k, src in enumerate(sources):
            spec.edge(f"n{src}", f"n{i}", draw(st.sampled_from(OUTS)), f"input-json-{k}")
        if draw(st.integers(0, 9)) == 0:
            behaviour[f"n{i}"] = ("fail", ())
        else:
            behaviour[f"n{i}"] = ("fire", tuple(draw(st.lists(st.sampled_from(OUTS), unique=True))))
    return spec, behaviour


def behave_from(table: dict[str, Any]):
    def behave(task: Task):
        kind, fired = table[task.node.id]
        if kind == "fail":
            return error(f"{task.node.id} failed")
        value = sorted((h, p.data) for h, p in task.inputs.items())
        return BlockResult(outputs={h: Payload.json([task.node.id, value]) for h in fired})
    return behave


@settings(max_examples=150, deadline=None)
@given(dags(), st.randoms(use_true_random=False))
def test_every_step_ends_terminal_and_never_starts_early(
    case: tuple[GraphSpec, dict[str, Any]], rnd: Any
) -> None:
    spec, table = case
    graph = spec.build()
    sched, trace = drive(graph, behave_from(table), pick=lambda ts: rnd.randrange(len(ts)))
    assert sched.finished
    status = trace.status()
    assert set(status) == set(graph.nodes)
    assert set(status.values()) <= TERMINAL
    settled_at: dict[str, int] = {}
    for index, event in enumerate(trace.events):
        if event.status.value in TERMINAL:
            settled_at.setdefault(event.step_id, index)
        if event.status.value == "queued":
            for edge in graph.incoming.get(event.step_id, {}).values():
                assert settled_at.get(edge.source, 10**9) < index, (
                    f"{event.step_id} queued before {edge.source} settled")
    started = trace.started
    assert len(started) == len(set(started)), "a step id was released twice"
    expected = RunStatus.ERROR if "error" in status.values() else RunStatus.COMPLETED
    assert sched.outcome().status is expected


@settings(max_examples=100, deadline=None)
@given(dags(), st.randoms(use_true_random=False), st.randoms(use_true_random=False))
def test_same_inputs_give_same_ids_statuses_and_outputs(
    case: tuple[GraphSpec, dict[str, Any]], r1: Any, r2: Any
) -> None:
    spec, table = case
    graph = spec.build()
    _, t1 = drive(graph, behave_from(table), pick=lambda ts: r1.randrange(len(ts)))
    _, t2 = drive(graph, behave_from(table), pick=lambda ts: r2.randrange(len(ts)))
    assert t1.status() == t2.status()

    def outputs(trace: Any) -> dict[str, Any]:
        return {e.step_id: {h: p.data for h, p in (e.outputs or {}).items()}
                for e in trace.events if e.status.value == "completed"}

    def reasons(trace: Any) -> dict[str, Any]:
        return {e.step_id: e.reason for e in trace.events if e.status.value == "skipped"}

    assert outputs(t1) == outputs(t2)
    assert reasons(t1) == reasons(t2)


# ---------------------------------------------------------------------------- loops


def nested_for_each(depth: int) -> GraphSpec:
    spec = GraphSpec().block("start", inputs=())
    parent: str | None = None
    for level in range(depth):
        name = f"L{level}"
        spec.container(name, "for_each", parent=parent, max_concurrency=2)
        if parent is None:
            spec.edge("start", name, th="fe-left-in")
        else:
            spec.edge(f"{parent}_sentinel_start", name, "fe-left-out", "fe-left-in")
            spec.edge(name, f"{parent}_sentinel_end", "fe-right-out", "fe-right-in")
        parent = name
    spec.block("leaf", parent=parent)
    spec.edge(f"{parent}_sentinel_start", "leaf", "fe-left-out")
    spec.edge("leaf", f"{parent}_sentinel_end", th="fe-right-in")
    return spec


def nested_lists(depth: int) -> st.SearchStrategy[Any]:
    leaf: st.SearchStrategy[Any] = st.integers(0, 99)
    for _ in range(depth):
        leaf = st.lists(leaf, max_size=3)
    return leaf


def count_steps(value: Any, depth: int) -> int:
    """Container step + per item (2 sentinels + the body) at each level."""
    if depth == 0:
        return 1  # the leaf
    return 1 + sum(2 + count_steps(item, depth - 1) for item in value)


@settings(max_examples=120, deadline=None)
@given(st.integers(1, 3).flatmap(lambda d: st.tuples(st.just(d), nested_lists(d))),
       st.randoms(use_true_random=False))
def test_for_each_step_count_unique_ids_and_item_order(case: tuple[int, Any], rnd: Any) -> None:
    depth, data = case

    def behave(task: Task):
        if task.node.container:
            items = task.inputs["fe-left-in"].data
            return expand(task, items)
        if task.node.id == "start":
            return BlockResult(outputs={"output-json-0": Payload.json(data)})
        if task.node.id == "leaf":
            value = task.inputs["input-json-0"].data * 2
            return BlockResult(outputs={"output-json-0": Payload.json(value)})
        return echo(task)

    sched, trace = drive(nested_for_each(depth).build(), behave,
                         pick=lambda ts: rnd.randrange(len(ts)))
    creations = [e.step_id for e in trace.events if e.status.value == "pending"]
    assert len(creations) == len(set(creations)), "duplicate step ids"
    assert len(creations) == 1 + count_steps(data, depth)

    def doubled(v: Any) -> Any:
        return [doubled(x) for x in v] if isinstance(v, list) else v * 2

    assert trace.event("L0", "completed").outputs["fe-right-out"].data == doubled(data)
    assert sched.outcome().status is RunStatus.COMPLETED


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12), st.integers(0, 20))
def test_while_loop_never_exceeds_max_iterations(bound: int, stop_at: int) -> None:
    spec = (GraphSpec().block("start", inputs=())
            .container("loop", "while_loop", max_iterations=bound)
            .block("inc", parent="loop")
            .edge("start", "loop", th="loop-left-in")
            .edge("loop_sentinel_start", "inc", "loop-left-out")
            .edge("inc", "loop_sentinel_end", th="loop-right-in"))

    def behave(task: Task):
        if task.node.container:
            return loop_start(task, 0)
        if task.node.id == "inc":
            value = task.inputs["input-json-0"].data + 1
            return BlockResult(outputs={"output-json-0": Payload.json(value)})
        if task.node.sentinel_role is SentinelRole.END:
            matched = task.inputs["loop-right-in"].data >= stop_at
            return BlockResult(control=LoopDecision(matched=matched))
        if task.node.sentinel_role is SentinelRole.START:
            return echo(task)
        return BlockResult(outputs={"output-json-0": Payload.json(0)})

    _, trace = drive(spec.build(), behave)
    iterations = [s for s in trace.status() if s.endswith("_inc")]
    expected = min(bound, max(stop_at, 1))
    assert len(iterations) == expected
    reason = trace.event("loop", "completed").artifact["termination_reason"]
    assert reason == ("condition_matched" if max(stop_at, 1) <= bound else "max_iterations_reached")
