"""The launch path: a run is prepared once (compiled, stubbed, inputs stored, row written)
and executed by Engine.execute, whatever asked for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from engine import Engine, Workflow, core
from engine.compiled import CompiledGraph
from engine.contracts.errors import InputError, UsageError
from engine.contracts.values import RunStatus
from engine.launch import PreparedRun, RunOrigin
from engine.stubs import CheckedBlock, StubbedBlock
from engine.testing import INSTANT_RETRY, Outputs, assert_step
from store.memory import MemoryStore
from tests.engine.embedding_blocks import risk_workflow, vat_workflow


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    with Engine(tmp_path / "runs.db", retry=INSTANT_RETRY) as eng:
        yield eng


def hil_workflow() -> Workflow:
    return (Workflow.builder("review").block("start", "start_json")
            .block("check", "hil").block("done", "end")
            .edge("start", "check", target_handle="input-json-0")
            .edge("check", "done", source_handle="output-json-0").build())


def test_prepare_writes_the_run_row_and_execute_runs_it(engine: Engine) -> None:
    prepared = engine.prepare(vat_workflow(), {"invoice": {"net": 10}}, run_id="run_prepared",
                              origin=RunOrigin(trigger="api", metadata={"k": "v"}))
    assert isinstance(prepared, PreparedRun) and prepared.replay is None
    row = engine.store.load_run("run_prepared")
    assert row.status is RunStatus.PENDING and row.inputs == {"invoice": {"net": 10}}
    result = anyio.run(engine.execute, prepared)
    assert result.ok and result.engine is engine
    assert_step(result, "vat", status="completed", output={"net": 10, "gross": 12.0})
    run = engine.client.workflows.runs.get("run_prepared")
    assert run.metadata == {"k": "v"}


def test_a_stubbed_block_is_wrapped_once_on_every_path(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:

    executed: list[CompiledGraph] = []

    class Recording(core.Runner):
        def __init__(self, graph: CompiledGraph, *args: Any) -> None:
            executed.append(graph)
            super().__init__(graph, *args)

    monkeypatch.setattr(core, "Runner", Recording)
    engine.stubs = {"vat": {"net": 1, "gross": 99}}
    prepared = engine.prepare(vat_workflow(), {"invoice": {"net": 1}})
    result = anyio.run(engine.execute, prepared)
    [graph] = executed
    impl = graph.nodes["vat"].impl
    assert isinstance(impl, StubbedBlock)
    assert not isinstance(impl.inner, StubbedBlock | CheckedBlock)
    assert_step(result, "vat", output={"net": 1, "gross": 99},
                artifact={"operation": "stub", "stub_key": "vat"})

    engine.stubs = {}
    waiting = engine.run(hil_workflow(), {"start": {"ok": 1}})
    engine.stubs = {"check": Outputs({"output-json-0": {"ok": 2}})}
    resumed = engine.prepare_resume(waiting.run_id)
    impl = resumed.graph.nodes["check"].impl
    assert isinstance(impl, StubbedBlock) and not isinstance(impl.inner, StubbedBlock)
    assert resumed.replay is not None and set(resumed.replay.steps) >= {"start", "check"}


def test_an_app_block_type_is_checked_once_then_stubbed_once(tmp_path: Path) -> None:
    from blocks.registry import default_registry
    from tests.engine.embedding_blocks import RiskScore

    registry = default_registry().copy()
    registry.register(RiskScore())
    stubs = {"risk": Outputs({"output-json-low": {"score": 1}})}
    with Engine(tmp_path / "runs.db", registry=registry, stubs=stubs) as engine:
        prepared = engine.prepare(risk_workflow(), {"invoice": {"amount": 1}})
        impl = prepared.graph.nodes["risk"].impl
        assert isinstance(impl, StubbedBlock) and isinstance(impl.inner, CheckedBlock)
        assert isinstance(impl.inner.inner, RiskScore)
        assert anyio.run(engine.execute, prepared).ok


def test_nothing_is_written_when_preparing_fails(engine: Engine) -> None:
    with pytest.raises(InputError, match="has no input"):
        engine.prepare(vat_workflow(), {})
    engine.stubs = {"nope": 1}
    with pytest.raises(UsageError, match="'nope' is not a block or step id"):
        engine.prepare(vat_workflow(), {"invoice": {"net": 1}})
    assert engine.client.workflows.runs.list().data == []


def test_a_compiled_graph_is_not_compiled_again(engine: Engine,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    graph = engine.compile(vat_workflow())

    def refuse(*_: object) -> None:
        raise AssertionError("compiled again")

    monkeypatch.setattr(core, "compile_workflow", refuse)
    assert engine.run(graph, {"invoice": {"net": 2}}).ok


def test_an_engine_runs_on_a_given_store_and_leaves_it_open() -> None:
    store = MemoryStore()
    with Engine(store=store, retry=INSTANT_RETRY) as engine:
        assert engine.store is store and engine.db is None
        result = engine.run(hil_workflow(), {"start": {"ok": 1}})
        assert result.status is RunStatus.AWAITING_REVIEW
        [review] = store.reviews(run_id=result.run_id)
        decided = engine.decide(review.id, approved=True)
        assert decided is not None and decided.ok
    assert store.load_run(result.run_id).status is RunStatus.COMPLETED  # still readable
    with pytest.raises(UsageError, match="got both"):
        Engine("x.db", store=store)


def test_adecide_records_then_resumes(engine: Engine) -> None:
    async def main() -> None:
        paused = await engine.arun(hil_workflow(), {"start": {"ok": 1}})
        [review] = engine.store.reviews(run_id=paused.run_id)
        assert await engine.adecide(review.id, approved=True, resume=False) is None
        resumed = await engine.adecide(review.id, approved=True)  # same decision: accepted
        assert resumed is not None and resumed.ok
        rerun = await engine.arerun(paused.run_id, "done")
        assert rerun.ok and rerun.run_id != paused.run_id

    anyio.run(main)


def test_what_a_graph_finds_once_is_kept_with_its_nodes(tmp_path: Path) -> None:
    # start blocks and "every block is built in" are found once per graph; a stubbed
    # copy shares the graph's memo but not its nodes, and finds its own
    import dataclasses

    from blocks.registry import default_registry
    from engine.launch import stand_ins
    from tests.engine.embedding_blocks import RiskScore

    registry = default_registry().copy()
    registry.register(RiskScore())
    with Engine(tmp_path / "runs.db", registry=registry) as engine:
        graph = engine.compile(risk_workflow())
        starts = graph.start_blocks()
        assert [n.id for n in starts] == ["invoice"] and graph.start_blocks() == starts
        checked = stand_ins(graph, {})  # an app block type: checked, so a new graph
        assert checked is not graph and checked.memo is graph.memo
        assert isinstance(checked.nodes["risk"].impl, CheckedBlock)
        again = stand_ins(checked, {}).nodes["risk"].impl  # checked once, not twice
        assert isinstance(again, CheckedBlock) and not isinstance(again.inner, CheckedBlock)
        other = dataclasses.replace(graph.nodes["invoice"], label="another")
        copy = dataclasses.replace(graph, nodes={**graph.nodes, "invoice": other})
        assert copy.memo is graph.memo and copy.start_blocks() == [other]
        assert graph.start_blocks()[0] is graph.nodes["invoice"]
    plain = Engine(store=MemoryStore()).compile(vat_workflow())
    assert stand_ins(plain, {}) is plain and stand_ins(plain, {}) is plain
