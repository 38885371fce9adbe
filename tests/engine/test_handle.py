"""Embedding: Engine.start / RunHandle (result, events, cancel, resume) and sharing engines."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path

import anyio
import pytest

from engine import Engine, Workflow
from engine.contracts.errors import UsageError, WorkflowValidationError
from engine.contracts.values import RunStatus
from engine.graph import compile_workflow
from engine.handle import RunEvent, RunHandle
from engine.runner import Runner, RunSettings
from engine.testing import INSTANT_RETRY, Attempts, Failure, assert_step
from tests.engine.embedding_blocks import slow_workflow, vat_workflow

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    with Engine(tmp_path / "runs.db", retry=INSTANT_RETRY) as eng:
        yield eng


def hil_workflow() -> Workflow:
    return (Workflow.builder("review").block("start", "start_json")
            .block("check", "hil").block("done", "end")
            .edge("start", "check", target_handle="input-json-0")
            .edge("check", "done", source_handle="output-json-0").build())


async def collect(handle: RunHandle) -> list[RunEvent]:
    return [event async for event in handle.events()]


def persisted_moves(engine: Engine, run_id: str) -> dict[str, list[str]]:
    moves: dict[str, list[str]] = defaultdict(list)
    for t in engine.store.transitions(run_id):
        moves[t["step_id"]].append(t["status"])
    return dict(moves)


def streamed_moves(events: list[RunEvent]) -> dict[str, list[str]]:
    moves: dict[str, list[str]] = defaultdict(list)
    for event in events:
        if event.kind == "step":
            moves[event.step_id].append(event.status)
    return dict(moves)


# --------------------------------------------------------------------------- start / events


async def test_events_are_every_persisted_transition_in_order_ending_with_the_run(
        engine: Engine) -> None:
    engine.stubs = {"vat": Attempts(Failure.transient("busy"), {"gross": 2})}
    handle = await engine.start(vat_workflow(), {"invoice": {"net": 1}})
    events = await collect(handle)
    result = await handle.result()
    assert result.ok and result.run_id == handle.run_id and handle.done
    assert [e.seq for e in events] == list(range(len(events)))
    assert (events[0].kind, events[0].status) == ("run", "running")
    assert (events[-1].kind, events[-1].status, events[-1].final) == ("run", "completed", True)
    assert [e.final for e in events].count(True) == 1
    assert streamed_moves(events) == persisted_moves(engine, handle.run_id)
    assert streamed_moves(events)["vat"] == ["pending", "queued", "running", "queued",
                                             "running", "completed"]
    retry = next(e for e in events if e.step_id == "vat" and e.status == "queued"
                 and e.retry_count == 1)
    assert retry.error == {"message": "busy", "stage": "execution", "category": "transient",
                           "code": "STUB_FAILURE"}
    done = next(e for e in events if e.step_id == "vat" and e.status == "completed")
    assert done.outputs == {"output-json-0": {"type": "json", "data": {"gross": 2}}}
    assert events[-1].to_dict()["status"] == "completed"


async def test_each_event_is_committed_before_it_is_seen(engine: Engine) -> None:
    handle = await engine.start(vat_workflow(), {"invoice": {"net": 1}})
    async for event in handle.events():
        if event.kind == "step":
            persisted = persisted_moves(engine, handle.run_id)[event.step_id]
            assert event.status in persisted, (event, persisted)


async def test_late_and_concurrent_subscribers_get_the_whole_stream(engine: Engine) -> None:
    handle = await engine.start(vat_workflow(), {"invoice": {"net": 1}})
    streams: list[list[RunEvent]] = []

    async def read() -> None:
        streams.append(await collect(handle))

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        tg.start_soon(read)
    await handle.result()
    late = await collect(handle)
    assert streams[0] == streams[1] == late
    assert late[-1].final and len(late) > 10


async def test_start_rejects_bad_workflows_and_stubs_before_anything_runs(engine: Engine) -> None:
    broken = vat_workflow()
    broken.edges.append(broken.edges[0].model_copy(update={"target_block": "nowhere"}))
    with pytest.raises(WorkflowValidationError):
        await engine.start(broken, {"invoice": {}})
    engine.stubs = {"vta": {}}
    with pytest.raises(UsageError, match="'vta' is not a block or step id"):
        await engine.start(vat_workflow(), {"invoice": {}})
    assert engine.client.workflows.runs.list().data == []


async def test_a_failing_step_ends_the_stream_with_the_error_run(engine: Engine) -> None:
    engine.stubs = {"vat": Failure.permanent("no")}
    handle = await engine.start(vat_workflow(), {"invoice": {"net": 1}})
    events = await collect(handle)
    assert (events[-1].status, events[-1].failing_step_id) == ("error", "vat")
    assert events[-1].error["message"] == "no"
    assert (await handle.result()).status is RunStatus.ERROR


# --------------------------------------------------------------------------- cancel / resume


async def test_cancel_interrupts_a_running_step(engine: Engine) -> None:
    handle = await engine.start(slow_workflow(), {"start": {}})
    async for event in handle.events():
        if event.step_id == "wait" and event.status == "running":
            assert handle.cancel() is True
    result = await handle.result()
    assert result.status is RunStatus.CANCELLED
    assert_step(result, "wait", status="cancelled", reason="cancelled by request")
    assert_step(result, "done", status="cancelled")
    events = await collect(handle)
    assert (events[-1].status, events[-1].final) == ("cancelled", True)
    assert handle.cancel() is False


async def test_cancel_wakeup_stops_the_runner_without_waiting_for_a_poll(engine: Engine) -> None:
    wf = slow_workflow()
    graph = compile_workflow(wf, engine.registry)
    handle = await engine.start(vat_workflow(), {"invoice": {"net": 1}})
    await handle.result()  # a run row to drive by hand
    wakeup = anyio.Event()
    settings = RunSettings(run_id=handle.run_id + "_x", run_inputs={"start": {}},
                           cancel_poll_s=60.0, cancel_wakeup=wakeup)
    from engine.contracts.events import NewRun

    engine.store.create_run(NewRun(run_id=settings.run_id, workflow_id="w", workflow_name="slow",
                                   workflow_digest=wf.digest(), definition=wf.to_dict(),
                                   inputs={}), now=time.time())

    async def cancel_soon() -> None:
        await anyio.sleep(0.2)
        engine.store.request_cancel(settings.run_id)
        wakeup.set()

    with anyio.fail_after(20):  # without the wakeup the watcher would sleep 60 s
        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_soon)
            outcome = await Runner(graph, engine.store, settings).run()
    assert outcome.status is RunStatus.CANCELLED


async def test_review_pause_cancel_and_resume(engine: Engine) -> None:
    paused = await engine.start(hil_workflow(), {"start": {"ok": 1}})
    first = await paused.result()
    assert first.status is RunStatus.AWAITING_REVIEW and first.waiting_for == ["check"]
    events = await collect(paused)
    assert (events[-1].status, events[-1].waiting_for, events[-1].final) == (
        "awaiting_review", ["check"], True)
    [review] = engine.store.reviews(run_id=paused.run_id)
    engine.decide(review.id, approved=True, resume=False)
    resumed = await engine.start_resume(paused.run_id)
    assert (await resumed.result()).ok
    resumed_events = await collect(resumed)
    assert streamed_moves(resumed_events)["check"] == ["completed"]
    assert resumed_events[-1].status == "completed"
    with pytest.raises(UsageError, match="already ended completed"):
        await engine.start_resume(paused.run_id)

    other = await engine.start(hil_workflow(), {"start": {"ok": 2}})
    await other.result()
    assert other.cancel() is True
    assert engine.client.workflows.runs.get(other.run_id).lifecycle.status == "cancelled"


# --------------------------------------------------------------------------- backends, sharing


async def test_start_in_the_apps_task_group(engine: Engine) -> None:
    async with anyio.create_task_group() as tg:
        handle = await engine.start(vat_workflow(), {"invoice": {"net": 3}}, task_group=tg)
        events = await collect(handle)
    assert (await handle.result()).ok and events[-1].status == "completed"


async def test_one_engine_runs_many_runs_concurrently(engine: Engine) -> None:
    engine.stubs = {"vat": lambda call: {"gross": call.input["net"] * 2}}
    handles = [await engine.start(vat_workflow(), {"invoice": {"net": n}}) for n in range(25)]
    streams: dict[str, list[RunEvent]] = {}

    async def follow(handle: RunHandle) -> None:
        streams[handle.run_id] = await collect(handle)

    async with anyio.create_task_group() as tg:
        for handle in handles:
            tg.start_soon(follow, handle)
    for n, handle in enumerate(handles):
        result = await handle.result()
        assert result.outputs["done"]["input-json-0"]["data"] == {"gross": n * 2}
        events = streams[handle.run_id]
        assert {e.run_id for e in events} == {handle.run_id}
        assert streamed_moves(events) == persisted_moves(engine, handle.run_id)
    assert len(engine.client.workflows.runs.list(limit=100).data) == 25


def test_one_engine_shared_by_threads(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    results: list[str] = []
    with Engine(tmp_path / "shared.db") as eng:
        def work(offset: int) -> None:
            try:
                for n in range(4):
                    result = eng.run(vat_workflow(), {"invoice": {"net": offset + n}})
                    assert result.ok, result.error
                    results.append(result.run_id)
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i * 100,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        runs = eng.client.workflows.runs.list(limit=100).data
        assert sorted(r.id for r in runs) == sorted(results) and len(results) == 24


def test_two_engines_on_two_databases_in_one_process(tmp_path: Path) -> None:
    seen: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            with Engine(tmp_path / f"{name}.db", stubs={"vat": {"db": name}}) as eng:
                seen[name] = [eng.run(vat_workflow(), {"invoice": {"net": 1}}).run_id
                              for _ in range(5)]
                for run_id in seen[name]:
                    assert_step(eng, "vat", run_id=run_id, output={"db": name})
                assert len(eng.client.workflows.runs.list().data) == 5
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in ("left", "right")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert not set(seen["left"]) & set(seen["right"])
