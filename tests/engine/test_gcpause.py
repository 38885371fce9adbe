"""The collector paused around a run's start: restored after, never over user code."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import anyio
import pytest

from engine.core import Engine
from engine.definition import Workflow
from engine.gcpause import collector_paused
from store.memory import MemoryStore
from tests.engine import runner_targets

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


@pytest.fixture(autouse=True)
def _collector_enabled() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_the_collector_is_off_inside_and_on_again_after() -> None:
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_collector_disabled_before_stays_disabled() -> None:
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_an_error_inside_still_restores_the_collector() -> None:
    with pytest.raises(ValueError), collector_paused():
        raise ValueError("boom")
    assert gc.isenabled()


def test_nested_pauses_resume_at_the_outermost_end() -> None:
    with collector_paused():
        with collector_paused():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


def test_overlapping_pauses_in_two_threads_resume_when_the_last_ends() -> None:
    entered, release = threading.Event(), threading.Event()

    def other() -> None:
        with collector_paused():
            entered.set()
            release.wait(5)

    thread = threading.Thread(target=other)
    with collector_paused():
        thread.start()
        assert entered.wait(5)
    assert not gc.isenabled()  # the other thread's pause goes on
    release.set()
    thread.join(5)
    assert gc.isenabled()


class _SeeingStore(MemoryStore):
    """Notes whether the collector is enabled at each commit."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, bool]] = []

    def apply(self, run_id: str, events: Sequence[Any], run_update: Any = None, *,
              now: float, logs: Sequence[Any] = ()) -> None:
        self.seen.append((len(events), gc.isenabled()))
        super().apply(run_id, events, run_update, now=now, logs=logs)


def test_a_run_pauses_it_for_its_first_commit_only_not_over_steps_or_listeners() -> None:
    b = Workflow.builder("chain").block("start", "start_json")
    prev = "start"
    for i in range(5):
        b.block(f"f{i}", "function", config={
            "python": "tests.engine.runner_targets:collector_seen", "output_schema": SCHEMA})
        b.edge(prev, f"f{i}")
        prev = f"f{i}"
    store = _SeeingStore()
    heard: list[bool] = []
    runner_targets.COLLECTOR.clear()
    with Engine(store=store) as engine:
        prepared = engine.prepare(b.build(), {"start": {"n": 0}})
        result = anyio.run(lambda: engine.execute(
            prepared, listeners=[lambda *_: heard.append(gc.isenabled())]))
    assert result.ok
    first, *rest = store.seen
    assert first == (first[0], False) and first[0] >= 6  # every step created in it
    assert rest and all(enabled for _, enabled in rest)
    assert runner_targets.COLLECTOR == [True] * 5
    assert heard and all(heard)
    assert gc.isenabled()
