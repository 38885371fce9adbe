"""engine.server.ui.blocks_view: folding a run's step counts into one summary per block."""

from __future__ import annotations

from bench.ui_seed import ITEMS_YAML
from engine import Workflow
from engine.contracts.outline import BlockTally
from engine.server.ui.blocks_view import summarize


def tally(block_id: str, block_type: str, status: str, count: int = 1, *,
          reason: str | None = None, error: str | None = None) -> BlockTally:
    return BlockTally(block_id=block_id, block_type=block_type, label="", status=status,
                      count=count, reason=reason, error=error)


def test_each_block_keeps_its_own_reason_and_error() -> None:
    workflow = Workflow.from_yaml(ITEMS_YAML)
    tallies = [
        tally("check", "function", "completed", 26),
        tally("check", "function", "error", 4, error="item 10 is not allowed"),
        tally("big_batch", "reshape", "completed"),
        tally("small_batch", "reshape", "skipped",
              reason="branch_not_selected: size.output-json-else"),
        tally("check", "function", "skipped", reason="a later reason"),
    ]
    blocks = summarize(workflow, tallies, [])
    assert blocks["small_batch"].reason == "branch_not_selected: size.output-json-else"
    assert blocks["small_batch"].error is None
    assert blocks["check"].error == "item 10 is not allowed"
    assert blocks["check"].reason == "a later reason"
    assert blocks["check"].counts == {"completed": 26, "error": 4, "skipped": 1}
    assert blocks["big_batch"].reason is None and blocks["big_batch"].error is None


def test_the_first_reason_and_error_of_a_block_stand() -> None:
    workflow = Workflow.from_yaml(ITEMS_YAML)
    blocks = summarize(workflow, [
        tally("check", "function", "error", error="first"),
        tally("check", "function", "error", error="second"),
        tally("check", "function", "cancelled", reason="run cancelled"),
        tally("check", "function", "skipped", reason="later"),
    ], [])
    assert (blocks["check"].error, blocks["check"].reason) == ("first", "run cancelled")


def test_a_block_the_definition_lacks_gets_a_summary_of_its_own() -> None:
    workflow = Workflow.from_yaml(ITEMS_YAML)
    blocks = summarize(workflow, [
        tally("gone", "reshape", "skipped", reason="removed"),
        tally("total", "function", "error", error="boom"),
    ], [])
    assert blocks["gone"].reason == "removed" and blocks["gone"].type == "reshape"
    assert blocks["gone"].parent is None
    assert blocks["total"].error == "boom" and blocks["gone"].error is None


def test_a_for_each_counts_items_and_its_children_none() -> None:
    blocks = summarize(Workflow.from_yaml(ITEMS_YAML), [], [])
    assert blocks["each"].items is not None and blocks["each"].items.unit == "items"
    assert blocks["check"].items is None
