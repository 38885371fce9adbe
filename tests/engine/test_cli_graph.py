"""stepwell graph: every edge inside containers with full handle ids; --run colours blocks."""

from __future__ import annotations

from pathlib import Path

from engine import Engine
from engine.cli_graph import block_statuses, graph_text
from tests.engine import observe_targets


def test_generated_edges_inside_a_for_each_are_drawn_with_full_handles(tmp_path: Path) -> None:
    workflow = tmp_path / "each.yaml"
    workflow.write_text(observe_targets.each_workflow())
    text = graph_text(workflow, run_id=None, db=None)
    assert 'b_each_sentinel_start -.->|"fe-left-out → input-json-0"| b_work' in text
    assert 'b_work -.->|"output-json-0 → fe-right-in"| b_each_sentinel_end' in text
    assert 'b_order -->|"output-json-0 → fe-left-in"| b_each' in text
    assert "classDef" not in text


def test_a_run_colours_the_blocks_by_their_steps(tmp_path: Path) -> None:
    workflow = tmp_path / "each.yaml"
    workflow.write_text(observe_targets.each_workflow())
    observe_targets.FAILING.add("sku-1")
    try:
        with Engine(tmp_path / "db") as engine:
            run_id = engine.run(workflow, observe_targets.order(3)).run_id
    finally:
        observe_targets.FAILING.clear()
    text = graph_text(None, run_id=run_id, db=tmp_path / "db")
    assert "classDef error" in text and "class b_each,b_work error" in text
    assert "class b_each_sentinel_end,b_each_sentinel_start,b_order completed" in text
    assert "class b_total skipped" in text
    assert "work<br/>function<br/>1/2 completed, 1 error" in text


def test_the_most_telling_status_wins() -> None:
    steps = [{"block_id": "w", "lifecycle": {"status": s}} for s in ("completed", "running")]
    steps.append({"block_id": "x", "lifecycle": {"status": "skipped"}})
    assert block_statuses(steps) == ({"w": "running", "x": "skipped"},
                                     {"w": "1/2 completed"})
