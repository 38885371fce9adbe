"""The runner's inline fast path keeps every guarantee of the worker path."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest

from blocks.base import BlockType
from blocks.registry import default_registry
from engine.contracts.blocks import BlockContext, BlockResult, HandleKind
from engine.contracts.values import Payload, RunStatus
from engine.core import Engine
from engine.definition import Workflow
from engine.runner import Runner, untimed_yields
from store.sqlite import SQLiteStore
from tests.engine import runner_targets

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def _chain(steps: int, target: str) -> Workflow:
    b = Workflow.builder("chain").block("start", "start_json")
    prev = "start"
    for i in range(steps):
        b.block(f"f{i}", "function", config={"python": target, "output_schema": SCHEMA})
        b.edge(prev, f"f{i}")
        prev = f"f{i}"
    return b.build()


def test_an_inline_step_starts_only_after_its_upstream_completion_is_committed(
        tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    runner_targets.DB["path"] = str(db)
    with Engine(db) as engine:
        result = engine.run(_chain(40, "tests.engine.runner_targets:upstream_committed"),
                            {"start": {"n": 0}})
    assert result.ok, result.error
    assert result.outputs == {}  # no end block: nothing recorded, but every step ran
    with Engine(db) as engine:
        steps = engine.client.workflows.steps.list(result.run_id, limit=100).data
    assert [s.lifecycle.status for s in steps].count("completed") == 41



def _looped(kind: str, config: dict[str, Any], prefix: str, target: str) -> Workflow:
    """start -> a ``kind`` container (handles ``<prefix>-left-in`` ...) whose body is one
    function calling ``target`` -> end."""
    return (Workflow.builder(kind)
            .block("start", "start_json")
            .block("loop", kind, config=config)
            .block("bump", "function", parent="loop",
                   config={"python": target, "output_schema": SCHEMA})
            .block("done", "end")
            .edge("start", "loop", target_handle=f"{prefix}-left-in")
            .edge("loop", "bump", source_handle=f"{prefix}-left-out")
            .edge("bump", "loop", target_handle=f"{prefix}-right-in")
            .edge("loop", "done", source_handle=f"{prefix}-right-out")
            .build())


def _while(iterations: int, target: str) -> Workflow:
    condition = {"logical_operator": "and", "sub_conditions": [
        {"path_ref": {"input": "default", "path": "n"}, "operator": "greater_than",
         "value": iterations + 1}]}
    return _looped("while_loop", {"max_iterations": iterations,
                                  "termination_condition": condition}, "loop", target)


def test_a_while_iteration_is_one_commit_and_its_body_starts_running_in_the_database(
        tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    runner_targets.DB["path"] = str(db)
    iterations = 12
    workflow = _while(iterations, "tests.engine.runner_targets:body_committed")
    with Engine(db) as engine:
        result = engine.run(workflow, {"start": {"n": 0}})
    assert result.ok, result.error
    store = SQLiteStore(db)
    try:
        trail = store.transitions(result.run_id)
    finally:
        store.close()
    # Each committed batch stamps its transitions with one time: the sentinels of an
    # iteration go with the commit that starts its body (plus four: the steps' creation,
    # the start block, the loop's opening and the run's end). Three per iteration before.
    assert len({t["at"] for t in trail}) <= iterations + 4
    assert [t["status"] for t in trail if t["step_id"] == "loop_iter_3_loop_sentinel_end"] \
        == ["pending", "queued", "running", "completed"]


def _run_noting_end_rows(db: Path, iterations: int, target: str) -> tuple[str, list[str]]:
    """Run a while loop whose body notes its end sentinel's row; the run id and the
    ids of its steps in listing order."""
    runner_targets.DB["path"] = str(db)
    runner_targets.END_ROWS.clear()
    with Engine(db) as engine:
        result = engine.run(_while(iterations, f"tests.engine.runner_targets:{target}"),
                            {"start": {"n": 0}})
        assert result.ok, result.error
        steps = engine.client.workflows.steps.list(result.run_id, limit=100).data
    return result.run_id, [s.step_id for s in steps]


def test_an_inline_body_end_sentinel_is_created_with_its_outcome_in_creation_order(
        tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    run_id, listed = _run_noting_end_rows(db, 5, "end_row_seen")
    # The first body is imported by its first attempt (a worker, not inline): its end
    # sentinel is in the database while it runs. The next ones run inline, and their
    # end sentinel's row is written by the commit that holds its outcome.
    assert runner_targets.END_ROWS == {"loop_iter_0_bump": "pending",
                                       **{f"loop_iter_{i}_bump": None for i in range(1, 5)}}
    # Listed in creation order all the same: each iteration's start, body, end.
    ids = [step_id for step_id in listed if step_id.startswith("loop_iter_")]
    assert ids == [f"loop_iter_{i}_{name}" for i in range(5)
                   for name in ("loop_sentinel_start", "bump", "loop_sentinel_end")]
    store = SQLiteStore(db)
    try:
        trail = store.transitions(run_id)
    finally:
        store.close()
    end = [t for t in trail if t["step_id"] == "loop_iter_3_loop_sentinel_end"]
    assert [t["status"] for t in end] == ["pending", "queued", "running", "completed"]
    assert len({t["at"] for t in end}) == 1


def test_an_async_body_finds_its_end_sentinel_in_the_database(tmp_path: Path) -> None:
    _run_noting_end_rows(tmp_path / "run.db", 4, "end_row_seen_async")
    # The driver waits for it: everything the batch created is committed before that.
    assert runner_targets.END_ROWS == {f"loop_iter_{i}_bump": "pending" for i in range(4)}


def _for_each(items: int, concurrency: int, target: str) -> tuple[Workflow, dict[str, Any]]:
    config = {"map_method": "iterate_array", "map_source_path": "items",
              "max_concurrency": concurrency}
    return (_looped("for_each", config, "fe", target),
            {"start": {"items": [{"n": i} for i in range(items)]}})


_TARGETS = "tests.engine.runner_targets"


@pytest.mark.parametrize(("shape", "target", "limit"), [
    ("while", "quiet", 8), ("while", "async_mark", 8), ("while", "async_mark", 1),
    ("for_each", "quiet", 8), ("for_each", "async_mark", 1), ("for_each", "async_mark", 2),
    ("for_each", "async_mark", 8),
])
def test_holding_end_sentinels_back_never_costs_a_commit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shape: str, target: str,
        limit: int) -> None:
    workflow, inputs = (_while(6, f"{_TARGETS}:{target}"), {"start": {"n": 0}}) \
        if shape == "while" else _for_each(9, 3, f"{_TARGETS}:{target}")

    def commits(db: Path) -> list[list[tuple[str, str]]]:
        batches: list[list[tuple[str, str]]] = []

        def listener(run_id: str, events: list[Any], update: Any) -> None:
            batches.append([(e.step_id, e.status.value) for e in events])

        with Engine(db, max_concurrency=limit) as engine:
            prepared = engine.prepare(workflow, inputs)
            result = anyio.run(lambda: engine.execute(prepared, listeners=[listener]))
        assert result.ok, result.error
        return batches

    held = commits(tmp_path / "held.db")
    # no commit is made of held creations alone
    for batch in held:
        assert batch and not all(status == "pending" and "_sentinel_end" in step_id
                                 for step_id, status in batch), batch
    monkeypatch.setattr(Runner, "_defer_end_sentinels", lambda self, events, ends: events)
    assert len(held) <= len(commits(tmp_path / "written.db"))


def test_what_a_step_printed_is_committed_with_its_outcome(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from store.connection import Database

    commits: list[str] = []
    write = Database.write

    def counted(self: Database, fn: Any, *args: Any) -> Any:
        commits.append(getattr(fn, "__name__", "?"))
        return write(self, fn, *args)

    monkeypatch.setattr(Database, "write", counted)
    counts = {}
    for target in ("quiet", "chatty"):
        commits.clear()
        with Engine(tmp_path / f"{target}.db") as engine:
            result = engine.run(_chain(6, f"tests.engine.runner_targets:{target}"),
                                {"start": {"n": 0}})
            assert result.ok, result.error
            lines = engine.client.workflows.steps.logs("f3", run_id=result.run_id).data
        counts[target] = len(commits)
        if target == "chatty":
            assert [line.message for line in lines] == ["step 3"]
    # printing adds lines to the step's own commit, not a commit of its own
    assert counts["chatty"] == counts["quiet"]


class _Sleepy(BlockType):
    """Claims to run inline, then awaits a sleep: a contract violation."""

    type_name = "sleepy"

    def input_handles(self, config: Any) -> dict[str, HandleKind]:
        return {"input-json-0": "json"}

    def output_handles(self, config: Any) -> dict[str, HandleKind]:
        return {"output-json-0": "json"}

    def runs_inline(self, config: Any) -> bool:
        return True

    async def run(self, ctx: BlockContext, config: Any,
                  inputs: Mapping[str, Payload]) -> BlockResult:
        await anyio.sleep(0.01)
        return BlockResult(outputs={"output-json-0": inputs["input-json-0"]})


def test_an_inline_block_that_suspends_fails_its_step_with_a_clear_error(tmp_path: Path) -> None:
    registry = default_registry().copy()
    registry.register(_Sleepy())
    wf = (Workflow.builder("sleepy").block("start", "start_json").block("nap", "sleepy")
          .edge("start", "nap").build())
    with Engine(tmp_path / "run.db", registry=registry) as engine:
        result = engine.run(wf, {"start": {"n": 1}})
        step = engine.client.workflows.steps.get("nap", run_id=result.run_id)
    assert result.status is RunStatus.ERROR and result.failing_step_id == "nap"
    assert "declared runs_inline() but suspended" in (result.error or "")
    assert step.lifecycle.status == "error"


def test_a_long_inline_chain_still_notices_a_cancel_from_elsewhere(tmp_path: Path) -> None:
    """Judged by what the engine did, not by wall time alone (the machine may be loaded):
    no step completed more than a second after the request (the heartbeat thread looks
    every 0.25 s), and the thread running the chain spent little CPU from the request to
    the end (the 7,800 steps left would take tens of seconds)."""
    import sqlite3

    db = tmp_path / "run.db"
    wf = _chain(8_000, "bench.workloads:bump")
    run_id = "run_cancel_me"
    driver = time.pthread_getcpuclockid(threading.get_ident())
    asked: list[tuple[float, float]] = []  # (wall clock, the driver thread's CPU time)

    def cancel_once_running() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.05)
            try:
                conn = sqlite3.connect(db)
                done = conn.execute("SELECT count(*) FROM steps WHERE run_id = ? AND "
                                    "status = 'completed'", (run_id,)).fetchone()[0]
                conn.close()
            except sqlite3.Error:
                continue
            if done >= 200:
                with Engine(db) as other:
                    other.cancel(run_id, "stop the chain")
                    asked.append((time.time(), time.clock_gettime(driver)))
                return

    thread = threading.Thread(target=cancel_once_running)
    thread.start()
    with Engine(db) as engine:
        result = engine.run(wf, {"start": {"n": 0}}, run_id=run_id)
        spent = time.thread_time()
        ended = time.time()
    thread.join()
    assert asked, "the run ended before it could be cancelled"
    assert result.status is RunStatus.CANCELLED and result.reason == "stop the chain"
    with sqlite3.connect(db) as conn:
        completed, last = conn.execute("SELECT count(*), max(completed_at) FROM steps WHERE "
                                       "run_id = ? AND status = 'completed'",
                                       (run_id,)).fetchone()
    wall, cpu = asked[0]
    assert completed < 8_000
    assert last - wall < 1.0  # the chain stopped within the heartbeat's look, plus slack
    assert spent - cpu < 1.5, (spent - cpu, ended - wall)  # the cancel's own work


def test_the_heartbeat_keeps_beating_while_a_sync_step_holds_the_loop(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    runner_targets.DB["path"] = str(db)
    wf = (Workflow.builder("busy").block("start", "start_json")
          .block("busy", "function", config={
              "python": "tests.engine.runner_targets:block_the_loop",
              "output_schema": {"type": "object"}})
          .block("done", "end").edge("start", "busy").edge("busy", "done").build())
    with Engine(db) as engine:
        result = engine.run(wf, {"start": {}})
    assert result.ok, result.error
    assert result.outputs["done"]["input-json-0"]["data"] == {"beat_during_sleep": True}


def test_a_finished_run_leaves_its_steps_to_reference_counting(tmp_path: Path) -> None:
    """A scope and its steps point at each other: finished iterations and the finished run
    let go of them, so the cyclic collector finds none of a run's step records (a
    for_each of 10,000 items would otherwise leave it 40,000 objects to trace)."""
    import gc

    from bench.workloads import WORKLOADS
    from engine.scope import Scope, StepState

    with Engine(tmp_path / "runs.db") as engine:
        for name, steps in (("chain", 30), ("for_each", 60), ("while", 30)):
            workflow, inputs, _ = WORKLOADS[name](steps)
            engine.run(workflow, inputs)  # imports, compiled graph
            gc.collect()
            gc.set_debug(gc.DEBUG_SAVEALL)
            try:
                assert engine.run(workflow, inputs).ok
                gc.collect()
                left = [type(o).__name__ for o in gc.garbage  # the top scope may stay
                        if isinstance(o, StepState) or (isinstance(o, Scope) and o.loop)]
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
            assert left == [], f"{name}: {len(left)} step records left to the collector"


def test_loop_sentinels_get_no_log_and_their_bodies_keep_theirs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sentinel writes nothing, so its attempt has no log to register, drain or store;
    the function inside the loop still has one, and what it prints is stored."""
    from bench.workloads import WORKLOADS
    from engine import attempts

    seen: dict[str, bool] = {}
    inline = attempts.run_attempt_inline

    def watched(task: Any, ctx: BlockContext) -> Any:
        seen[ctx.block_type] = seen.get(ctx.block_type, False) or ctx.log is not None
        return inline(task, ctx)

    monkeypatch.setattr("engine.runner.run_attempt_inline", watched)
    with Engine(tmp_path / "loops.db") as engine:
        each, inputs, _ = WORKLOADS["for_each"](12, target="bench.workloads:bump_printing")
        result = engine.run(each, inputs)
        assert result.ok, result.error
        lines = engine.client.workflows.steps.logs("each_iter_2_bump",
                                                   run_id=result.run_id).data
        loop, inputs, _ = WORKLOADS["while"](12)
        assert engine.run(loop, inputs).ok
    assert [line.message for line in lines] == ["n is 2"]
    sentinels = {kind: logged for kind, logged in seen.items() if "sentinel" in kind}
    assert set(sentinels) == {"for_each_sentinel_start", "for_each_sentinel_end",
                              "while_loop_sentinel_start", "while_loop_sentinel_end"}
    assert not any(sentinels.values())
    assert seen["function"] is True


def _slow_chain_beside_an_async_step() -> Workflow:
    b = Workflow.builder("slow chain").block("start", "start_json")
    prev = "start"
    for name in ("s1", "s2", "s3"):
        b.block(name, "function", config={"python": "tests.engine.runner_targets:slow",
                                          "output_schema": SCHEMA})
        b.edge(prev, name)
        prev = name
    b.block("a", "function", config={"python": "tests.engine.runner_targets:async_mark",
                                     "output_schema": SCHEMA})
    return b.edge("start", "a").build()


def test_untimed_yields_keep_an_async_step_waiting_until_the_inline_work_runs_dry() -> None:
    """Slow inline steps let an async step run between them; within ``untimed_yields``
    the driver yields only when it waits, so the order no longer depends on time."""
    workflow = _slow_chain_beside_an_async_step()
    inputs = {"start": {"n": 0}}
    with Engine(":memory:") as engine:
        assert engine.run(workflow, inputs).ok  # imports the targets: inline from now on
        runner_targets.ORDER.clear()
        assert engine.run(workflow, inputs).ok
        timed = list(runner_targets.ORDER)
        runner_targets.ORDER.clear()
        with untimed_yields():
            assert engine.run(workflow, inputs).ok
        untimed = list(runner_targets.ORDER)
    assert timed.index("async") < timed.index("s3"), timed
    assert untimed == ["s1", "s2", "s3", "async"]


def test_untimed_yields_restore_the_time_based_yield_on_exit() -> None:
    with pytest.raises(RuntimeError), untimed_yields():
        raise RuntimeError("left early")
    workflow = _slow_chain_beside_an_async_step()
    with Engine(":memory:") as engine:
        engine.run(workflow, {"start": {"n": 0}})
        runner_targets.ORDER.clear()
        assert engine.run(workflow, {"start": {"n": 0}}).ok
    assert runner_targets.ORDER.index("async") < runner_targets.ORDER.index("s3")
