"""The write path's shortcuts agree with what they stand for."""

from __future__ import annotations

import pytest

from engine.contracts.artifacts import artifact_id
from engine.contracts.errors import StorageError
from engine.contracts.events import StepEvent
from engine.contracts.values import StepStatus
from store.stepdata import TAG_DIGITS, artifact_stub


@pytest.mark.parametrize("operation", ["function_invocation", "extraction", "plugin_op"])
@pytest.mark.parametrize("attempt", [0, 3])
def test_artifact_stub_is_the_ids_prefix_and_tag(operation: str, attempt: int) -> None:
    ev = StepEvent(step_id="s1", block_id="b", block_type="function", label="b",
                   status=StepStatus.COMPLETED, retry_count=attempt,
                   artifact={"operation": operation})
    stub, op = artifact_stub("run-1", ev)
    full = artifact_id(operation, "run-1", "s1", attempt)
    prefix, _, digits = full.partition("_")
    assert (stub, op) == (f"{prefix}_{digits[:TAG_DIGITS]}", operation)


@pytest.mark.parametrize("artifact", [{}, {"operation": ""}, {"operation": 3}])
def test_artifact_stub_without_an_operation_names_the_step(artifact: dict) -> None:
    ev = StepEvent(step_id="s1", block_id="b", block_type="function", label="b",
                   status=StepStatus.COMPLETED, artifact=artifact)
    with pytest.raises(StorageError, match="'s1'"):
        artifact_stub("run-1", ev)


def test_an_int_now_reads_back_as_float_times_on_every_transition() -> None:
    """Times the trail keeps and times the view reads from a step's columns look alike."""
    from store.sqlite import SQLiteStore
    from tests.store.helpers import ev, lifecycle, new_run

    with SQLiteStore(":memory:") as store:
        store.create_run(new_run(), now=1_780_000_000)
        store.apply("run_1", lifecycle("a")[:3], now=1_780_000_000)
        # a retry keeps its times in the trail; the first queue and start do not
        store.apply("run_1", [ev("a", StepStatus.QUEUED, retry_count=1),
                              ev("a", StepStatus.RUNNING, retry_count=1)], now=1_780_000_001)
        store.apply("run_1", [ev("a", StepStatus.COMPLETED, retry_count=1, outputs={})],
                    now=1_780_000_002)
        moves = store.transitions("run_1")
    assert [(m["status"], m["at"]) for m in moves] == [
        ("pending", 1_780_000_000.0), ("queued", 1_780_000_000.0),
        ("running", 1_780_000_000.0), ("queued", 1_780_000_001.0),
        ("running", 1_780_000_001.0), ("completed", 1_780_000_002.0)]
    assert all(type(m["at"]) is float for m in moves)
