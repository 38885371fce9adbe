"""Scheduler unit tests: no event loop, no database."""

from __future__ import annotations

import pytest

from engine.contracts.blocks import (
    BlockResult,
    BlockRole,
    JoinMode,
    LoopDecision,
    SentinelRole,
)
from engine.contracts.errors import IllegalTransition
from engine.contracts.values import Payload, RunStatus
from engine.scheduler import Scheduler, Task
from tests.engine.graphs import GraphSpec, drive, echo, error, expand, loop_start


def chain(n: int) -> GraphSpec:
    spec = GraphSpec().block("start", inputs=())
    prev = "start"
    for i in range(n):
        spec.block(f"f{i}").edge(prev, f"f{i}")
        prev = f"f{i}"
    return spec


def test_linear_chain_runs_in_order_and_completes() -> None:
    sched, trace = drive(chain(3).build())
    assert trace.started == ["start", "f0", "f1", "f2"]
    assert set(trace.status().values()) == {"completed"}
    assert sched.outcome().status is RunStatus.COMPLETED


def test_each_step_walks_pending_queued_running_completed() -> None:
    _, trace = drive(chain(1).build())
    assert [e.status.value for e in trace.events if e.step_id == "f0"] == [
        "pending", "queued", "running", "completed"]
    queued = trace.event("f0", "queued")
    assert queued.inputs["input-json-0"].source_step == "start"


def branching() -> GraphSpec:
    return (GraphSpec()
            .block("start", inputs=())
            .block("cond", outputs=("output-json-big", "output-json-else"))
            .block("big").block("small")
            .block("after_big")
            .block("merge", inputs=("input-json-a", "input-json-b"), join=JoinMode.ANY_NO_FAIL)
            .block("end", inputs=("input-json-0",), outputs=(), join=JoinMode.ANY, type_="end",
                   role=BlockRole.END)
            .edge("start", "cond")
            .edge("cond", "big", "output-json-big").edge("cond", "small", "output-json-else")
            .edge("big", "after_big")
            .edge("after_big", "merge", th="input-json-a")
            .edge("small", "merge", th="input-json-b")
            .edge("merge", "end"))


def route_else(task: Task) -> BlockResult:
    if task.node.id == "cond":
        return BlockResult(outputs={"output-json-else": Payload.json({"x": 1})})
    return echo(task)


def test_unselected_branch_is_skipped_with_reason_and_join_runs() -> None:
    sched, trace = drive(branching().build(), route_else)
    status = trace.status()
    assert status["big"] == "skipped"
    assert trace.event("big", "skipped").reason == "branch_not_selected: cond.output-json-big"
    assert trace.event("after_big", "skipped").reason == "upstream_skipped: big"
    assert status["merge"] == "completed" and status["end"] == "completed"
    assert set(trace.event("merge", "queued").inputs) == {"input-json-b"}
    assert sched.outcome().status is RunStatus.COMPLETED
    assert sched.outcome().outputs == {"end": {"input-json-0": {"type": "json", "data": {"x": 1}}}}


def test_error_skips_dependents_and_independent_branch_completes() -> None:
    spec = (GraphSpec().block("start", inputs=())
            .block("bad").block("after").block("other").block("other2")
            .edge("start", "bad").edge("bad", "after")
            .edge("start", "other").edge("other", "other2"))

    def behave(task: Task):
        return error("kaput") if task.node.id == "bad" else echo(task)

    sched, trace = drive(spec.build(), behave)
    status = trace.status()
    assert status == {"start": "completed", "bad": "error", "after": "skipped",
                      "other": "completed", "other2": "completed"}
    assert trace.event("after", "skipped").reason == "upstream_error: bad"
    outcome = sched.outcome()
    assert outcome.status is RunStatus.ERROR and outcome.failing_step_id == "bad"


def test_an_error_before_a_line_longer_than_the_recursion_limit_skips_all_of_it() -> None:
    import sys

    length = sys.getrecursionlimit() * 2
    sched, trace = drive(chain(length).build(),
                         lambda t: error("kaput") if t.node.id == "f0" else echo(t))
    status = trace.status()
    assert status["f0"] == "error"
    assert [status[f"f{i}"] for i in range(1, length)] == ["skipped"] * (length - 1)
    assert trace.event(f"f{length - 1}", "skipped").reason == f"upstream_skipped: f{length - 2}"
    assert sched.outcome().failing_step_id == "f0"


def test_skips_are_emitted_depth_first_in_edge_order() -> None:
    # bad -> a -> a2 and bad -> b: a's whole line is skipped before b, as edges are listed
    spec = (GraphSpec().block("start", inputs=()).block("bad")
            .block("a").block("a2").block("b")
            .edge("start", "bad").edge("bad", "a").edge("a", "a2").edge("bad", "b"))
    _, trace = drive(spec.build(), lambda t: error() if t.node.id == "bad" else echo(t))
    skipped = [e.step_id for e in trace.events if e.status.value == "skipped"]
    assert skipped == ["a", "a2", "b"]


def test_merge_skips_when_an_input_died_of_an_error_but_end_runs() -> None:
    spec = (GraphSpec().block("start", inputs=()).block("a").block("b")
            .block("merge", inputs=("input-json-a", "input-json-b"), join=JoinMode.ANY_NO_FAIL)
            .block("end", inputs=("input-json-a", "input-json-b"), outputs=(),
                   join=JoinMode.ANY, type_="end", role=BlockRole.END)
            .edge("start", "a").edge("start", "b")
            .edge("a", "merge", th="input-json-a").edge("b", "merge", th="input-json-b")
            .edge("a", "end", th="input-json-a").edge("b", "end", th="input-json-b"))
    _, trace = drive(spec.build(), lambda t: error() if t.node.id == "b" else echo(t))
    assert trace.event("merge", "skipped").reason == "upstream_error: b"
    assert trace.status()["end"] == "completed"


def test_join_all_dead_is_skipped() -> None:
    spec = (GraphSpec().block("start", inputs=())
            .block("cond", outputs=("output-json-x", "output-json-y"))
            .block("end", inputs=("input-json-a", "input-json-b"), outputs=(),
                   join=JoinMode.ANY, type_="end", role=BlockRole.END)
            .edge("start", "cond")
            .edge("cond", "end", "output-json-x", "input-json-a")
            .edge("cond", "end", "output-json-y", "input-json-b"))
    sched, trace = drive(spec.build(), lambda t: BlockResult() if t.node.id == "cond" else echo(t))
    assert trace.event("end", "skipped").reason == "branch_not_selected: cond.output-json-x"
    assert sched.outcome().status is RunStatus.COMPLETED


def test_illegal_transition_raises_and_emits_nothing() -> None:
    sched = Scheduler(chain(1).build())
    sched.start()
    sched.drain()
    with pytest.raises(IllegalTransition, match="can't move|Can't move"):
        sched.mark_running("f0")  # still pending, never queued
    assert sched.drain() == []


def test_retry_moves_running_back_to_queued_with_count() -> None:
    sched = Scheduler(chain(0).build())
    sched.start()
    [task] = sched.take_ready()
    sched.mark_running(task.step_id)
    again = sched.retry(task.step_id, error("flaky"))
    assert again.retry_count == 1
    sched.mark_running(task.step_id)
    sched.complete(task.step_id, echo(task))
    moves = [(e.status.value, e.retry_count) for e in sched.drain()]
    assert moves == [("pending", 0), ("queued", 0), ("running", 0), ("queued", 1),
                     ("running", 1), ("completed", 1)]


def test_cancel_marks_every_unfinished_step() -> None:
    sched = Scheduler(chain(2).build())
    sched.start()
    [task] = sched.take_ready()
    sched.mark_running(task.step_id)
    sched.cancel("user asked")
    events = sched.drain()
    cancelled = {e.step_id for e in events if e.status.value == "cancelled"}
    assert cancelled == {"start", "f0", "f1"}
    assert sched.finished and sched.outcome().status is RunStatus.CANCELLED


# ---------------------------------------------------------------------------- loops


def for_each_graph(**cfg: int | str) -> GraphSpec:
    return (GraphSpec().block("start", inputs=())
            .container("each", "for_each", **cfg)
            .block("work", parent="each")
            .block("sum")
            .edge("start", "each", th="fe-left-in")
            .edge("each_sentinel_start", "work", "fe-left-out")
            .edge("work", "each_sentinel_end", th="fe-right-in")
            .edge("each", "sum", "fe-right-out"))


def items_behaviour(items: list[int], fail_on: int | None = None):
    def behave(task: Task):
        if task.node.container:
            return expand(task, items)
        if task.node.id == "work":
            value = task.inputs["input-json-0"].data
            if value == fail_on:
                return error(f"item {value}")
            return BlockResult(outputs={"output-json-0": Payload.json(value * 10)})
        return echo(task)
    return behave


def test_for_each_expands_iterations_with_scoped_ids_and_ordered_results() -> None:
    sched, trace = drive(for_each_graph().build(), items_behaviour([1, 2, 3]), lifo=True)
    ids = set(trace.status())
    assert ids == {"start", "each", "sum"} | {
        f"each_iter_{i}_{b}" for i in range(3)
        for b in ("each_sentinel_start", "work", "each_sentinel_end")}
    done = trace.event("each", "completed")
    assert done.outputs["fe-right-out"].data == [10, 20, 30]
    frame = trace.event("each_iter_2_work", "pending").scope[0]
    assert (frame.container_id, frame.iteration, frame.is_parallel) == ("each", 2, True)
    assert sched.outcome().status is RunStatus.COMPLETED


def test_for_each_respects_max_concurrency() -> None:
    graph = for_each_graph(max_concurrency=2).build()
    sched = Scheduler(graph)
    sched.start()
    behave = items_behaviour(list(range(5)))
    open_iterations: set[str] = set()
    peak = 0
    running: list[Task] = []
    while True:
        for task in sched.take_ready():
            sched.mark_running(task.step_id)
            running.append(task)
        for e in sched.drain():
            if e.block_id == "each_sentinel_start" and e.status.value == "pending":
                open_iterations.add(e.step_id)
            if e.block_id == "each_sentinel_end" and e.status.value == "completed":
                open_iterations.discard(e.step_id.replace("sentinel_end", "sentinel_start"))
        peak = max(peak, len(open_iterations))
        if not running:
            break
        task = running.pop(0)
        sched.complete(task.step_id, behave(task))
    assert peak == 2
    assert sched.outcome().status is RunStatus.COMPLETED


def test_for_each_empty_list_emits_empty_result() -> None:
    _, trace = drive(for_each_graph().build(), items_behaviour([]))
    assert trace.event("each", "completed").outputs["fe-right-out"].data == []
    assert not any("_iter_" in sid for sid in trace.status())


def test_for_each_item_failure_fails_container_after_others_settle() -> None:
    sched, trace = drive(for_each_graph(max_concurrency=3).build(),
                         items_behaviour([1, 2, 3], fail_on=2))
    status = trace.status()
    assert status["each_iter_1_work"] == "error"
    assert status["each_iter_0_work"] == status["each_iter_2_work"] == "completed"
    assert status["each"] == "error" and status["sum"] == "skipped"
    assert sched.outcome().failing_step_id == "each_iter_1_work"


def test_for_each_names_its_lowest_failed_item_whatever_order_they_failed_in() -> None:
    def behave(task: Task):
        if task.node.id == "work" and task.inputs["input-json-0"].data in (1, 3):
            return error(f"item {task.inputs['input-json-0'].data}")
        return items_behaviour([1, 2, 3])(task)

    # lifo: the last item opened ends first, so item 2 fails before item 0 does
    sched, trace = drive(for_each_graph(max_concurrency=3).build(), behave, lifo=True)
    failed = [e.step_id for e in trace.events if e.status.value == "error"]
    assert failed[:2] == ["each_iter_2_work", "each_iter_0_work"]
    container = trace.event("each", "error").error
    assert container is not None and "iteration 0 failed" in container.message
    assert container.context["first_error_step_id"] == "each_iter_0_work"
    assert sched.outcome().failing_step_id == "each_iter_0_work"


def test_for_each_opens_iterations_the_record_holds_after_a_failure() -> None:
    graph = for_each_graph(max_concurrency=1).build()
    behave = items_behaviour([1, 2, 3], fail_on=1)
    _, fresh = drive(graph, behave)
    assert not any(sid.startswith(("each_iter_1_", "each_iter_2_")) for sid in fresh.status())
    # a resumed run whose interrupted run had opened item 1 before item 0 failed
    sched, resumed = drive(graph, behave, recorded=frozenset({"each_iter_1_each_sentinel_start"}))
    status = resumed.status()
    assert status["each_iter_1_work"] == "completed"
    assert not any(sid.startswith("each_iter_2_") for sid in status)
    assert status["each"] == "error"
    assert sched.outcome().failing_step_id == "each_iter_0_work"


def test_for_each_skip_mode_puts_null_and_run_completes() -> None:
    sched, trace = drive(for_each_graph(on_item_error="skip").build(),
                         items_behaviour([1, 2, 3], fail_on=2))
    assert trace.event("each", "completed").outputs["fe-right-out"].data == [10, None, 30]
    assert sched.outcome().status is RunStatus.COMPLETED


def while_graph(max_iterations: int) -> GraphSpec:
    return (GraphSpec().block("start", inputs=())
            .container("loop", "while_loop", max_iterations=max_iterations)
            .block("inc", parent="loop")
            .block("report")
            .edge("start", "loop", th="loop-left-in")
            .edge("loop_sentinel_start", "inc", "loop-left-out")
            .edge("inc", "loop_sentinel_end", th="loop-right-in")
            .edge("loop", "report", "loop-right-out"))


def counting(stop_at: int):
    def behave(task: Task):
        if task.node.container:
            return loop_start(task, 0)
        if task.node.id == "inc":
            value = task.inputs["input-json-0"].data + 1
            return BlockResult(outputs={"output-json-0": Payload.json(value)})
        if task.node.sentinel_role is SentinelRole.END:
            value = task.inputs["loop-right-in"].data
            return BlockResult(control=LoopDecision(matched=value >= stop_at))
        if task.node.id == "start":
            return BlockResult(outputs={"output-json-0": Payload.json(0)})
        return echo(task)
    return behave


def test_while_loop_stops_on_condition() -> None:
    _, trace = drive(while_graph(10).build(), counting(3))
    done = trace.event("loop", "completed")
    assert done.outputs["loop-right-out"].data == 3
    assert done.artifact["termination_reason"] == "condition_matched"
    assert {s for s in trace.status() if s.endswith("_inc")} == {
        "loop_iter_0_inc", "loop_iter_1_inc", "loop_iter_2_inc"}


def test_while_loop_bound_is_a_normal_completion() -> None:
    sched, trace = drive(while_graph(4).build(), counting(100))
    done = trace.event("loop", "completed")
    assert done.artifact["termination_reason"] == "max_iterations_reached"
    assert done.outputs["loop-right-out"].data == 4
    assert sched.outcome().status is RunStatus.COMPLETED


def test_nested_for_each_ids_repeat_the_prefix() -> None:
    spec = (GraphSpec().block("start", inputs=())
            .container("outer", "for_each")
            .container("inner", "for_each", parent="outer")
            .block("leaf", parent="inner")
            .edge("start", "outer", th="fe-left-in")
            .edge("outer_sentinel_start", "inner", "fe-left-out", "fe-left-in")
            .edge("inner", "outer_sentinel_end", "fe-right-out", "fe-right-in")
            .edge("inner_sentinel_start", "leaf", "fe-left-out")
            .edge("leaf", "inner_sentinel_end", th="fe-right-in"))

    def behave(task: Task):
        if task.node.container:
            value = task.inputs["fe-left-in"].data
            items = value if isinstance(value, list) else [[1, 2], [3]]
            return expand(task, items)
        return echo(task)

    _, trace = drive(spec.build(), behave)
    assert "outer_iter_0_inner_iter_1_leaf" in trace.status()
    assert "outer_iter_1_inner_iter_0_leaf" in trace.status()
    assert trace.event("outer", "completed").outputs["fe-right-out"].data == [[1, 2], [3]]
    frames = trace.event("outer_iter_0_inner_iter_1_leaf", "pending").scope
    assert [(f.container_id, f.iteration) for f in frames] == [("outer", 0), ("inner", 1)]
