"""Conditional configs that validate but cannot route: no branches, empty conditions."""

from __future__ import annotations

from typing import Any

import pytest

from blocks.conditional import Conditional
from blocks.registry import default_registry
from engine import Workflow
from engine.contracts.errors import Diagnostic
from engine.definition import BlockDef
from engine.graph import validate_workflow
from tests.blocks.conftest import MakeCtx
from tests.blocks.harness import parse, run_block

pytestmark = pytest.mark.anyio

BIG = {"branch_name": "big", "sub_conditions": [
    {"path": "data.total", "operator": "is_greater_than", "value": 1000}]}


def _check(config: dict[str, Any]) -> list[Diagnostic]:
    impl = Conditional()
    return impl.check(BlockDef(id="route", type="conditional", config=config),
                      parse(impl, config), "spec.blocks.route")


@pytest.mark.parametrize("config", [{}, {"conditions": []}, {"branches": []}])
def test_no_conditions_warns_that_everything_goes_to_else(config: dict[str, Any]) -> None:
    [warning] = _check(config)
    field = "branches" if "branches" in config else "conditions"
    assert (warning.code, warning.severity) == ("NO_CONDITIONS", "warning")
    assert warning.path == f"spec.blocks.route.config.{field}"
    assert warning.message.startswith("conditional block 'route' has no conditions")
    assert "output-json-else" in warning.message
    assert "add a branch" in warning.fix


async def test_no_conditions_and_no_else_fires_nothing(make_ctx: MakeCtx) -> None:
    config = {"conditions": [], "has_else": False}
    routed = await run_block(Conditional(), make_ctx("conditional"), config,
                             {"input-json-0": {"total": 1}})
    assert routed.outputs == {}
    [warning] = _check(config)
    assert warning.code == "NO_CONDITIONS" and "fires nothing" in warning.message


def test_a_branch_is_enough() -> None:
    assert _check({"conditions": [BIG]}) == []
    assert _check({"conditions": [BIG], "has_else": False}) == []


async def test_a_branch_without_sub_conditions_always_matches(make_ctx: MakeCtx) -> None:
    empty = {"branch_name": "any", "sub_conditions": []}
    routed = await run_block(Conditional(), make_ctx("conditional"),
                             {"conditions": [empty, BIG]}, {"input-json-0": {"total": 5000}})
    assert list(routed.outputs) == ["output-json-any"]  # what the warning says
    [warning] = _check({"conditions": [empty, BIG]})
    assert (warning.code, warning.severity) == ("EMPTY_CONDITION", "warning")
    assert warning.path == "spec.blocks.route.config.conditions[0].sub_conditions"
    assert warning.message == (
        "conditional block 'route': branch 'any' has no sub_conditions, so it always "
        "matches: branch 'big' and the else branch after it are never selected")
    assert warning.fix.startswith("add `sub_conditions: [{path: data.total")


def test_a_stepwell_branch_without_condition_always_matches() -> None:
    [warning] = _check({"conditions": [{"id": "all", "name": "All"}], "has_else": False})
    assert warning.code == "EMPTY_CONDITION"
    assert warning.path == "spec.blocks.route.config.conditions[0].condition.sub_conditions"
    assert warning.message.endswith("'All' has no sub_conditions, so it always matches")
    assert warning.fix.startswith("add `condition: {sub_conditions: [{path_ref:")


def test_empty_or_groups_never_match() -> None:
    [top] = _check({"conditions": [{"branch_name": "none", "logical_operator": "or",
                                    "sub_conditions": []}]})
    assert top.message.endswith("so it never matches (logical_operator or)")
    nested = {"branch_name": "big", "sub_conditions": [
        *BIG["sub_conditions"], {"logical_operator": "or", "sub_conditions": []}]}
    [inner] = _check({"conditions": [nested]})
    assert inner.path == "spec.blocks.route.config.conditions[0].sub_conditions[1].sub_conditions"
    assert "holds a group with no sub_conditions, which never matches" in inner.message


def test_an_invalid_branch_is_reported_once() -> None:
    bad = {"branch_name": "big", "sub_conditions": None}
    assert [d.code for d in _check({"conditions": [bad]})] == ["INVALID_CONDITION"]


def test_the_warnings_leave_the_workflow_valid() -> None:
    wf = (Workflow.builder("route nothing")
          .block("start", "start_json")
          .block("route", "conditional", config={"conditions": []})
          .block("done", "end")
          .edge("start", "route")
          .edge("route", "done", source_handle="output-json-else")
          .build())
    found = validate_workflow(wf, default_registry())
    assert [(d.code, d.severity, d.path) for d in found] == [
        ("NO_CONDITIONS", "warning", "blocks[1](route).config.conditions")]
