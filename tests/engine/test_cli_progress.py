"""Loop progress of the CLI: items done/total per container, sentinels hidden, plain lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine import Engine
from engine.cli_progress import (
    ProgressLines,
    finished_items,
    is_sentinel,
    loop_progress,
    shown_steps,
)
from engine.cli_support import to_jsonable
from tests.engine import observe_targets


def step(step_id: str, block_id: str, status: str, *frames: tuple[str, int]) -> dict[str, Any]:
    return {"step_id": step_id, "block_id": block_id, "lifecycle": {"status": status},
            "loop_containers": [{"container_id": c, "iteration": i} for c, i in frames]}


def each_run(statuses: list[str]) -> list[dict[str, Any]]:
    """A for_each ``each`` whose iteration i's work step has statuses[i]."""
    steps = [step("each", "each", "running")]
    for i, status in enumerate(statuses):
        done = status in ("completed", "error")
        end = "completed" if status == "completed" else "skipped" if done else "pending"
        steps += [step(f"each_iter_{i}_each_sentinel_start", "each_sentinel_start",
                       "completed", ("each", i)),
                  step(f"each_iter_{i}_work", "work", status, ("each", i)),
                  step(f"each_iter_{i}_each_sentinel_end", "each_sentinel_end", end, ("each", i))]
    return steps


def test_items_done_out_of_total_with_failures() -> None:
    steps = each_run(["completed", "error", "running", "completed"])
    (progress,) = loop_progress(steps, {"each": 30}.get)
    assert (progress.step_id, progress.total, progress.started) == ("each", 30, 4)
    assert (progress.finished, progress.failed) == (3, 1)
    assert progress.text() == "each: 3/30 items, 1 failed"


def test_an_unknown_total_counts_iterations() -> None:
    (progress,) = loop_progress(each_run(["completed"]))
    assert progress.text() == "each: 1 iteration"


def test_sentinels_are_hidden_unless_all_are_asked_for() -> None:
    steps = each_run(["completed", "running"])
    assert [s["block_id"] for s in shown_steps(steps, show_all=False)] == ["each", "work", "work"]
    assert len(shown_steps(steps, show_all=True)) == len(steps)
    assert is_sentinel(steps[1]) and not is_sentinel(steps[0])


def test_plain_lines_are_spaced_and_only_on_change() -> None:
    now = [0.0]
    lines = ProgressLines(interval_s=3, clock=lambda: now[0])
    steps = each_run(["completed", "running"])
    assert lines.line(steps, {"each": 2}.get) is None  # nothing in the first seconds
    now[0] = 3.0
    first = lines.line(steps, {"each": 2}.get)
    assert first == "each: 1/2 items; steps: 2 running, 1 completed"
    now[0] = 4.0
    assert lines.line(each_run(["completed", "completed"]), {"each": 2}.get) is None
    now[0] = 7.0
    assert lines.line(each_run(["completed", "completed"]),
                      {"each": 2}.get).startswith("each: 2/2 items")
    now[0] = 11.0
    assert lines.line(each_run(["completed", "completed"]), {"each": 2}.get) is None


def test_a_real_run_with_a_failed_item(tmp_path: Path) -> None:
    workflow = tmp_path / "each.yaml"
    workflow.write_text(observe_targets.each_workflow())
    observe_targets.FAILING.add("sku-2")
    try:
        with Engine(tmp_path / "db") as engine:
            result = engine.run(workflow, observe_targets.order(5))
            steps = [to_jsonable(s) for s in
                     engine.client.workflows.steps.list(result.run_id, limit=1000).data]
    finally:
        observe_targets.FAILING.clear()
    (progress,) = loop_progress(steps, {"each": 5}.get)
    assert progress.text() == "each: 4/5 items, 1 failed"
    assert not any(is_sentinel(s) for s in shown_steps(steps, show_all=False))


def test_a_finished_loop_knows_its_items() -> None:
    done = {"handle_outputs": {"fe-right-out": {"type": "json", "data": [1, 2, 3]}}}
    assert finished_items(done) == 3
    assert finished_items({"handle_outputs": {}}) is None


def test_a_resumed_runs_progress_starts_from_the_stored_steps(tmp_path: Path) -> None:
    from engine.cli_live import LiveSteps, stored_steps
    from store.client import Client

    workflow = tmp_path / "each.yaml"
    workflow.write_text(observe_targets.each_workflow())
    observe_targets.FAILING.add("sku-2")
    try:
        with Engine(tmp_path / "db") as engine:
            result = engine.run(workflow, observe_targets.order(5))
    finally:
        observe_targets.FAILING.clear()
    board = LiveSteps()
    board.seed(stored_steps(lambda: Client(tmp_path / "db"), result.run_id))
    (progress,) = loop_progress(board.steps(), {"each": 5}.get)
    assert progress.text() == "each: 4/5 items, 1 failed"
    assert stored_steps(lambda: Client(tmp_path / "db"), "run_missing") == []
