"""Resuming a run after any persisted prefix of its events ends like an uninterrupted run.

For random workflows (python functions, conditionals, for_each and while loops, nested;
transient failures that retry once; now and then a step that fails for good) the run is
executed once without interruption. It is executed again through a store that commits the
first ``k`` batches handed to ``apply`` and raises on the next one: a process that died
right after its k-th commit, ``k`` drawn by hypothesis. A fresh Engine on the same
database resumes the run. Both store implementations are checked: a SQLite file (the
fresh Engine opens it again) and a MemoryStore (the fresh Engine is given the same one).
The resumed run must end with the uninterrupted run's outcome
and outputs, every step with the same status, outputs, skip reason and error, and the
same retry count, except that an attempt cut short by the crash counts as spent (so the
attempt limit holds across crashes), and that a failed for_each running several
iterations at a time may have opened one more or one fewer (see ``opened_in_a_race``).
No step ``completed`` in the database at the crash may execute again.

Every function of these workflows logs its step id when it starts; its result depends
only on its input and its block id, so both executions compute the same values.
"""

from __future__ import annotations

import tempfile
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import Any

import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

from engine import Engine, RunResult
from engine.contracts.blocks import current_context
from engine.contracts.errors import PermanentError, TransientError
from engine.contracts.events import RunUpdate, StepEvent
from engine.contracts.logs import AttemptLog
from engine.contracts.store import Store
from engine.contracts.values import RunStatus
from engine.definition import Workflow, WorkflowBuilder
from engine.testing import INSTANT_RETRY, untimed_yields
from store.memory import MemoryStore
from store.sqlite import SQLiteStore

MODULE = "tests.engine.test_resume_properties"
OBJECT = {"type": "object"}
RUN_ID = "run_resume_property"
#: Step ids of the function steps that started, in order (cleared before each execution).
STARTED: list[str] = []
#: Function targets a random workflow draws from (``broken`` is added at the top level).
FUNCTIONS = ("advance", "advance", "advance_async", "flaky")


# ---------------------------------------------------------------------- function targets


def _state(data: Any) -> dict[str, Any]:
    plain = data.model_dump() if hasattr(data, "model_dump") else data
    return {"v": plain["v"], "round": plain.get("round", 0)}


def _started() -> str:
    ctx = current_context()
    assert ctx is not None, "a function ran outside a step"
    STARTED.append(ctx.step_id)
    return ctx.block_id


def _mix(state: dict[str, Any], block_id: str) -> dict[str, Any]:
    return {**state, "v": (state["v"] * 7 + zlib.crc32(block_id.encode())) % 101}


def advance(data: Any) -> dict[str, Any]:
    """Mix the block id into ``v``."""
    return _mix(_state(data), _started())


async def advance_async(data: Any) -> dict[str, Any]:
    """``advance`` after a turn of the event loop (so that steps interleave)."""
    block_id = _started()
    await anyio.lowlevel.checkpoint()
    return _mix(_state(data), block_id)


def flaky(data: Any) -> dict[str, Any]:
    """``advance`` that fails transiently on its first attempt.

    Raises:
        TransientError: on the first attempt.
    """
    block_id = _started()
    ctx = current_context()
    if ctx is not None and ctx.attempt == 0:
        raise TransientError("first attempt fails")
    return _mix(_state(data), block_id)


def broken(data: Any) -> dict[str, Any]:
    """Always fails.

    Raises:
        PermanentError: always.
    """
    _started()
    raise PermanentError("broken on purpose")


def spread(data: Any) -> dict[str, Any]:
    """Zero to three items for a for_each, derived from ``v``."""
    _started()
    state = _state(data)
    return {**state, "items": [{"v": (state["v"] + i) % 101, "round": 0}
                               for i in range(state["v"] % 4)]}


def gather(data: Any) -> dict[str, Any]:
    """Fold a for_each's list of states into one (an iteration that delivered nothing is null)."""
    block_id = _started()
    total = sum(item["v"] for item in data if item is not None)
    return _mix({"v": total % 101, "round": 0}, block_id)


def arm(data: Any) -> dict[str, Any]:
    """Reset the round counter before a while_loop."""
    _started()
    return {**_state(data), "round": 0}


def bump(data: Any) -> dict[str, Any]:
    """One round of a while_loop."""
    block_id = _started()
    state = _state(data)
    return _mix({**state, "round": state["round"] + 1}, block_id)


# ---------------------------------------------------------------------- random workflows


def segments(depth: int) -> st.SearchStrategy[tuple[Any, ...]]:
    """One piece of a chain: a function, a conditional, and (above depth 0) loops.

    Shapes: ``("fn", target)``, ``("cond", threshold, has_else, hi, lo)``,
    ``("each", max_concurrency, body)``, ``("loop", rounds, max_iterations, body)``.
    """
    options: list[st.SearchStrategy[tuple[Any, ...]]] = [
        st.tuples(st.just("fn"), st.sampled_from(FUNCTIONS)),
        st.tuples(st.just("cond"), st.integers(0, 100), st.booleans(),
                  st.sampled_from(FUNCTIONS), st.sampled_from(FUNCTIONS)),
    ]
    if depth > 0:
        body = st.lists(segments(depth - 1), min_size=1, max_size=2).map(tuple)
        options.append(st.tuples(st.just("each"), st.integers(1, 3), body))
        options.append(st.tuples(st.just("loop"), st.integers(1, 3), st.integers(1, 4),
                                 st.lists(segments(depth - 1), max_size=1).map(tuple)))
    return st.one_of(options)


@st.composite
def plans(draw: st.DrawFn) -> tuple[tuple[Any, ...], ...]:
    """A top-level chain of segments; one run in six fails for good somewhere in it."""
    chain = draw(st.lists(segments(2), min_size=1, max_size=3))
    if draw(st.integers(0, 5)) == 0:
        chain.insert(draw(st.integers(0, len(chain))), ("fn", "broken"))
    return tuple(chain)


class _Emitter:
    """Writes a plan into a workflow builder, numbering the blocks."""

    def __init__(self, builder: WorkflowBuilder) -> None:
        self.b = builder
        self.count = 0

    def chain(self, plan: Sequence[tuple[Any, ...]], source: tuple[str, str],
              parent: str | None) -> tuple[str, str]:
        for segment in plan:
            source = getattr(self, segment[0])(segment[1:], source, parent)
        return source

    def block(self, block_type: str, parent: str | None, config: dict[str, Any]) -> str:
        self.count += 1
        block_id = f"b{self.count}"
        self.b.block(block_id, block_type, parent=parent, config=config)
        return block_id

    def fn(self, args: tuple[Any, ...], source: tuple[str, str], parent: str | None,
           *, target_handle: str = "") -> tuple[str, str]:
        block_id = self.block("function", parent, {"python": f"{MODULE}:{args[0]}",
                                                   "output_schema": OBJECT})
        self.b.edge(source[0], block_id, source_handle=source[1], target_handle=target_handle)
        return block_id, ""

    def cond(self, args: tuple[Any, ...], source: tuple[str, str],
             parent: str | None) -> tuple[str, str]:
        threshold, has_else, hi, lo = args
        route = self.block("conditional", parent, {"has_else": has_else, "conditions": [{
            "id": "hi", "name": "hi", "handle_key": "hi", "condition": {
                "logical_operator": "and", "sub_conditions": [{
                    "path_ref": {"input": "default", "path": "v"},
                    "operator": "greater_than_or_equal", "value": threshold}]}}]})
        self.b.edge(source[0], route, source_handle=source[1])
        branches = [("hi", hi, "output-json-hi")] + ([("lo", lo, "output-json-else")]
                                                     if has_else else [])
        merge = self.block("merge_dicts", parent,
                           {"inputs": [{"name": name} for name, _, _ in branches]})
        for name, target, handle in branches:
            branch, _ = self.fn((target,), (route, handle), parent)
            self.b.edge(branch, merge, target_handle=f"input-json-{name}")
        return merge, ""

    def each(self, args: tuple[Any, ...], source: tuple[str, str],
             parent: str | None) -> tuple[str, str]:
        concurrency, body = args
        items, _ = self.fn(("spread",), source, parent)
        container = self.block("for_each", parent, {
            "map_method": "iterate_array", "map_source_path": "items",
            "max_concurrency": concurrency})
        self.b.edge(items, container, target_handle="fe-left-in")
        last = self.chain(body, (container, "fe-left-out"), container)
        self.b.edge(last[0], container, source_handle=last[1], target_handle="fe-right-in")
        return self.fn(("gather",), (container, "fe-right-out"), parent)

    def loop(self, args: tuple[Any, ...], source: tuple[str, str],
             parent: str | None) -> tuple[str, str]:
        rounds, max_iterations, body = args
        armed, _ = self.fn(("arm",), source, parent)
        container = self.block("while_loop", parent, {
            "max_iterations": max_iterations, "termination_condition": {
                "logical_operator": "and", "sub_conditions": [{
                    "path_ref": {"input": "default", "path": "round"},
                    "operator": "greater_than_or_equal", "value": rounds}]}})
        self.b.edge(armed, container, target_handle="loop-left-in")
        last = self.chain((("fn", "bump"), *body), (container, "loop-left-out"), container)
        self.b.edge(last[0], container, source_handle=last[1], target_handle="loop-right-in")
        return container, "loop-right-out"


#: A plan whose for_each opens a third item before the first one fails (value 28).
NESTED_EACH = (("fn", "advance"), ("loop", 3, 3, (("fn", "advance"),)),
               ("each", 2, (("each", 3, (("cond", 0, False, "advance", "advance"),)),)))


def build(plan: Sequence[tuple[Any, ...]]) -> Workflow:
    """The workflow of ``plan``: ``start`` -> the chain -> ``done``."""
    builder = Workflow.builder("resume property").block("start", "start_json")
    last = _Emitter(builder).chain(plan, ("start", ""), None)
    builder.block("done", "end").edge(last[0], "done", source_handle=last[1])
    return builder.build()


# ---------------------------------------------------------------------- the crash


class SimulatedCrash(Exception):
    """The process died: nothing after the last committed batch reaches the database."""


class CrashAfter:
    """A store that commits the first ``limit`` batches of ``apply``, then raises.

    Every other call goes to the wrapped store. With ``limit=None`` it only counts.
    """

    def __init__(self, inner: Any, limit: int | None) -> None:
        self.inner = inner
        self.limit = limit
        self.batches = 0
        self.crashed = False

    def apply(self, run_id: str, events: Sequence[StepEvent],
              run_update: RunUpdate | None = None, *, now: float,
              logs: Sequence[AttemptLog] = ()) -> None:
        """Commit the batch, or raise once ``limit`` batches are committed.

        Raises:
            SimulatedCrash: ``limit`` batches were committed already.
        """
        if self.crashed or (self.limit is not None and self.batches >= self.limit):
            self.crashed = True
            raise SimulatedCrash(f"crashed after {self.batches} committed batches")
        self.inner.apply(run_id, events, run_update, now=now, logs=logs)
        self.batches += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def open_store(backend: str, path: Path) -> Store:
    """A fresh store of ``backend``: a SQLite file at ``path``, or a MemoryStore."""
    return SQLiteStore(str(path)) if backend == "sqlite" else MemoryStore()


@contextmanager
def engine_on(inner: Store, limit: int | None) -> Iterator[tuple[Engine, CrashAfter]]:
    """An engine whose store commits at most ``limit`` batches to ``inner``."""
    store = CrashAfter(inner, limit)
    with Engine(store=store, retry=INSTANT_RETRY) as engine:
        yield engine, store


def fresh_engine(backend: str, path: Path, inner: Store) -> Engine:
    """A new Engine on the crashed run's data: the SQLite file, or the same MemoryStore."""
    if backend == "sqlite":
        return Engine(path, retry=INSTANT_RETRY)
    return Engine(store=inner, retry=INSTANT_RETRY)


def steps(engine: Engine) -> dict[str, tuple[Any, ...]]:
    """Every persisted step: block, status, outputs, retries, skip reason, error message."""
    return {s.step_id: (s.block_id, s.status.value, {h: p.data for h, p in s.outputs.items()},
                        s.retry_count, s.reason, (s.error or {}).get("message"))
            for s in engine.store.load_steps(RUN_ID)}


def outcome(result: RunResult) -> tuple[Any, ...]:
    """How a run ended, without the engine that ran it."""
    return (result.status, result.outputs, result.failing_step_id, result.error, result.reason)


def racing_containers(workflow: Workflow) -> frozenset[str]:
    """Block ids of the for_each containers that run more than one iteration at a time."""
    return frozenset(b.id for b in workflow.blocks if b.type == "for_each"
                     and b.config.get("max_concurrency", 1) > 1)


def opened_in_a_race(step_id: str, final: dict[str, tuple[Any, ...]],
                     expected: dict[str, tuple[Any, ...]], racing: frozenset[str]) -> bool:
    """True when ``step_id`` belongs to an iteration of a racing for_each that failed in
    both executions.

    Such a container stops opening iterations once it sees one fail, and another
    iteration may free a slot in the same round. A resume restarts every step that was
    in flight at the crash in one round, which can put a branch one round ahead of where
    it was in the uninterrupted run; so whether the next iteration opened before the
    failure was seen may differ (as it may between two runs whose blocks have real
    latency). Everything else must match.
    """
    for container, step in final.items():
        if (step[0] in racing and step[1] == "error"
                and expected.get(container, ())[1:2] == ("error",)
                and step_id.startswith(f"{container}_iter_")):
            return True
    return False


def assert_same_steps(final: dict[str, tuple[Any, ...]], expected: dict[str, tuple[Any, ...]],
                      at_crash: dict[str, tuple[Any, ...]],
                      racing: frozenset[str] = frozenset()) -> None:
    """``final`` equals ``expected``, but for the retry counts of steps running at the crash
    and the iterations a failed racing for_each opened (:func:`opened_in_a_race`).

    An attempt cut short by the crash counts as spent (a re-queued ``running`` step is a
    retry), so such a step ends with at least one more retry than it had at the crash;
    a step ``queued`` for a retry continues its count exactly.
    """
    differ = sorted(final.keys() ^ expected.keys())
    assert all(opened_in_a_race(sid, final, expected, racing) for sid in differ), (
        f"steps of only one execution: {differ}")
    for step_id, want in expected.items():
        if step_id not in final:
            continue
        got, before = final[step_id], at_crash.get(step_id)
        if before is not None and before[1] == "running":
            assert got[3] == max(want[3], before[3] + 1), f"{step_id}: attempts miscounted"
            got, want = got[:3] + got[4:], want[:3] + want[4:]
        assert got == want, f"{step_id} differs from the uninterrupted run"


@pytest.mark.parametrize("backend", ["sqlite", "memory"])
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=plans(), value=st.integers(0, 100), crash=st.integers(0, 255))
# A for_each of two at a time whose item 0 fails after item 2 opened: the crash leaves
# item 2 in flight (21), or comes before either failure (16).
@example(plan=NESTED_EACH, value=28, crash=21)
@example(plan=NESTED_EACH, value=28, crash=16)
def test_resume_after_any_persisted_prefix_ends_like_an_uninterrupted_run(
    backend: str, plan: tuple[tuple[Any, ...], ...], value: int, crash: int
) -> None:
    note(f"plan: {plan!r}")
    # On a loaded machine the driver's time-based yields move, and with them which
    # for_each iterations open before one fails: both executions compared here must
    # make the same scheduling decisions.
    with untimed_yields():
        _resume_matches_uninterrupted(backend, plan, value, crash)


def _resume_matches_uninterrupted(backend: str, plan: tuple[tuple[Any, ...], ...],
                                  value: int, crash: int) -> None:
    STARTED.clear()
    workflow = build(plan)
    inputs = {"start": {"v": value, "round": 0}}
    # A process's first run of a python: target imports it in a worker task; later runs
    # call it inline, in another order. Which for_each iterations open before one fails
    # follows that order, so both executions compared here must be warm.
    with Engine(":memory:", retry=INSTANT_RETRY) as warm:
        warm.run(workflow, inputs)
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stores:
        whole = stores.enter_context(closing(open_store(backend, Path(tmp) / "whole.db")))
        with engine_on(whole, None) as (engine, counter):
            expected = outcome(engine.run(workflow, inputs, run_id=RUN_ID))
            expected_steps = steps(engine)
        # The batch count varies a little between executions (batching follows timing).
        limit = crash % counter.batches
        note(f"crash after {limit} of about {counter.batches} batches")

        path = Path(tmp) / "crashed.db"
        crashed = stores.enter_context(closing(open_store(backend, path)))
        result: RunResult | None = None
        with engine_on(crashed, limit) as (engine, store):
            try:
                result = engine.run(workflow, inputs, run_id=RUN_ID)
            except* SimulatedCrash:
                pass
            at_crash = steps(engine)
        if result is None:
            assert store.crashed
            STARTED.clear()
            with fresh_engine(backend, path, crashed) as fresh:
                result = fresh.resume(RUN_ID)
                final_steps = steps(fresh)
            done = {step_id for step_id, step in at_crash.items() if step[1] == "completed"}
            again = sorted(done & set(STARTED))
            assert not again, f"completed before the crash, executed again: {again}"
            for step_id, runs in Counter(STARTED).items():  # attempts continue their count
                before = at_crash.get(step_id)
                spent = 0 if before is None else before[3] + (before[1] == "running")
                assert runs == final_steps[step_id][3] - spent + 1, (
                    f"{step_id}: {runs} attempts after the resume")
        else:  # the run ended within ``limit`` batches this time
            final_steps = at_crash
    assert outcome(result) == expected
    assert_same_steps(final_steps, expected_steps, at_crash, racing_containers(workflow))



class CrashBeforeRunEnds(CrashAfter):
    """A store that commits every step, then dies before the run's final status is written.

    Batching follows timing, so the last step events may or may not share a batch with
    the run's end; this store always splits them, reaching the state where every step is
    terminal in the database but the run is still ``running``.
    """

    def __init__(self, inner: Any) -> None:
        super().__init__(inner, None)

    def apply(self, run_id: str, events: Sequence[StepEvent],
              run_update: RunUpdate | None = None, *, now: float,
              logs: Sequence[AttemptLog] = ()) -> None:
        """Commit ``events``; raise instead of committing a final ``run_update``.

        Raises:
            SimulatedCrash: the batch ends the run.
        """
        if run_update is not None and run_update.status.terminal:
            self.inner.apply(run_id, events, None, now=now, logs=logs)
            self.crashed = True
            raise SimulatedCrash("crashed before the run's end was committed")
        super().apply(run_id, events, run_update, now=now, logs=logs)


@pytest.mark.parametrize("backend", ["sqlite", "memory"])
@pytest.mark.parametrize("plan", [
    (("fn", "advance"), ("each", 1, (("fn", "advance"), ("fn", "broken")))),
    (("each", 2, (("each", 1, (("fn", "broken"),)),)),),
    (("fn", "advance"), ("loop", 1, 3, (("fn", "broken"),))),
], ids=["for_each", "nested_for_each", "while_loop"])
def test_a_container_failed_by_its_iteration_resumes_failing_on_the_same_step(
    backend: str, plan: tuple[tuple[Any, ...], ...]
) -> None:
    """A resume that replays a failed container names the step inside it that failed.

    The crash leaves the container's recorded error in the database but not the run's.
    The resume replays that error without running the iterations again, and must still
    fail the run on the step inside the container that failed first, with its message.
    """
    workflow = build(plan)
    inputs = {"start": {"v": 1, "round": 0}}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stores:
        whole = stores.enter_context(closing(open_store(backend, Path(tmp) / "whole.db")))
        with Engine(store=whole, retry=INSTANT_RETRY) as engine:
            expected = outcome(engine.run(workflow, inputs, run_id=RUN_ID))
        assert expected[0] is RunStatus.ERROR and "_iter_" in expected[2], expected
        path = Path(tmp) / "crashed.db"
        crashed = stores.enter_context(closing(open_store(backend, path)))
        store = CrashBeforeRunEnds(crashed)
        with Engine(store=store, retry=INSTANT_RETRY) as engine:
            try:
                engine.run(workflow, inputs, run_id=RUN_ID)
            except* SimulatedCrash:
                pass
        assert store.crashed
        assert crashed.load_run(RUN_ID).status is RunStatus.RUNNING
        STARTED.clear()
        with fresh_engine(backend, path, crashed) as fresh:
            result = fresh.resume(RUN_ID)
        assert not STARTED, f"the resume executed {STARTED} again"
        assert outcome(result) == expected
