"""Retab's documented condition shapes (blocks/condition_forms.py), the new operators
and the conditional block reading both forms."""

from __future__ import annotations

from typing import Any

import pytest

from blocks.condition_forms import (
    branch_form,
    default_branch_name,
    flat_path,
    normalise_branch,
    retab_handle_key,
    termination_group,
)
from blocks.condition_operators import (
    apply_operator,
    canonical_operator,
    suggest_operator,
)
from blocks.conditional import Conditional
from blocks.conditions import validate_condition_group
from engine.definition import BlockDef
from tests.blocks.harness import parse

DOCS_BRANCH = {"branch_name": "if", "logical_operator": "and", "sub_conditions": [
    {"path": "data.total_amount", "operator": "is_greater_than", "value": 1000},
    {"path": "data.vendor.country", "operator": "is_equal_to", "value": "US"}]}


def test_forms() -> None:
    assert branch_form(DOCS_BRANCH) == "retab"
    assert branch_form({"id": "a", "condition": {}}) == "stepwell"
    assert branch_form({**DOCS_BRANCH, "condition": {}}) == "mixed"
    assert branch_form({"id": "a"}) == "unknown"
    assert branch_form("if") == "unknown"


@pytest.mark.parametrize(("path", "flat"), [
    ("data", ""), ("data.a.b", "a.b"), ("data[0].x", "0.x"), ("data[*].y", "*.y"),
    ("total", "total"), ("database.x", "database.x")])
def test_flat_paths_read_from_the_payload(path: str, flat: str) -> None:
    assert flat_path(path) == flat


def test_handle_keys_and_names_follow_retab() -> None:
    assert retab_handle_key("Needs Review") == "needs-review"
    assert retab_handle_key("needs_review") == "needs_review"
    assert [default_branch_name(i) for i in range(3)] == ["if", "else-if-1", "else-if-2"]


def test_normalised_branch() -> None:
    out = normalise_branch(DOCS_BRANCH, 0)
    assert out["name"] == "if" and out["handle_key"] == "if"
    assert out["condition"]["logical_operator"] == "and"
    assert out["condition"]["sub_conditions"][0] == {
        "operator": "is_greater_than", "value": 1000,
        "path_ref": {"input": "default", "path": "total_amount"}}
    assert normalise_branch({"sub_conditions": [], "handle_key": "x"}, 2)["name"] == "else-if-2"


def test_termination_items() -> None:
    group = termination_group({"path": "data.status", "operator": "is_equal_to", "value": "ok"})
    assert group["sub_conditions"][0]["path_ref"]["path"] == "status"
    assert validate_condition_group(group, "p") == []
    nested = termination_group({"logical_operator": "or", "sub_conditions": [
        {"path": "data.a", "operator": "exists"}]})
    assert nested["logical_operator"] == "or"


@pytest.mark.parametrize(("op", "actual", "value", "matched"), [
    ("does_not_exist", None, None, True),
    ("length_equal_to", [1, 2], 2, True),
    ("length_greater_than", "abc", 2, True),
    ("length_less_than", {"a": 1}, 1, False),
    ("length_equal_to", 5, 1, False),
])
def test_new_operators(op: str, actual: Any, value: Any, matched: bool) -> None:
    assert apply_operator(op, actual, value)[0] is matched


def test_unknown_operators_get_a_suggestion() -> None:
    assert suggest_operator("is_greater_then") == "is_greater_than"
    assert suggest_operator("zzz") is None
    with pytest.raises(ValueError, match="Did you mean 'does_not_exist'"):
        canonical_operator("does_not_exists")
    [problem] = validate_condition_group(
        {"sub_conditions": [{"path": "a", "operator": "lenght_equal_to", "value": 1}]}, "p",
        owner="conditional block 'x'")
    assert problem.code == "INVALID_CONDITION_OPERATOR"
    assert problem.fix.startswith("Did you mean 'length_equal_to'?")
    assert problem.message.startswith("conditional block 'x': ")


def _check(config: dict[str, Any]) -> list[Any]:
    impl = Conditional()
    return impl.check(BlockDef(id="route", type="conditional", config=config),
                      parse(impl, config), "spec.blocks.route")


def test_conditional_reads_the_docs_form() -> None:
    impl = Conditional()
    config = parse(impl, {"conditions": [DOCS_BRANCH, {"branch_name": "Big EU", "sub_conditions": [
        {"path": "data.total_amount", "operator": "is_greater_than", "value": 5000}]}]})
    assert list(impl.output_handles(config)) == [
        "output-json-if", "output-json-big-eu", "output-json-else"]
    assert _check({"conditions": [DOCS_BRANCH]}) == []
    assert list(impl.output_handles(parse(impl, {"conditions": []}))) == ["output-json-else"]


def test_conditional_refuses_mixed_forms() -> None:
    own = {"id": "s", "name": "S", "condition": {"sub_conditions": []}}
    [problem] = [d for d in _check({"conditions": [DOCS_BRANCH, own]}) if d.severity == "error"]
    assert (problem.code, problem.path) == ("CONDITION_FORMS_MIXED",
                                            "spec.blocks.route.config.conditions[1].condition")
    [problem] = _check({"conditions": [{**DOCS_BRANCH, "name": "x"}]})
    assert problem.path == "spec.blocks.route.config.conditions[0].name"


def test_docs_form_diagnostics_point_at_what_was_written() -> None:
    bad = {"branch_name": "late", "sub_conditions": [
        {"path": "data.due", "operator": "is_before", "value": "soon"}]}
    [problem] = _check({"conditions": [bad]})
    assert problem.code == "INVALID_CONDITION_VALUE"
    assert problem.path == "spec.blocks.route.config.conditions[0].sub_conditions[0].value"
    assert "'route'" in problem.message and "2026-03-12" in problem.fix
