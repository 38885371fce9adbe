"""Bad input: each is a validation error naming the block, the key and the fix, and
`stepwell validate` reports every problem of a workflow at once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from engine.cli import app
from engine.contracts.errors import Diagnostic
from engine.definition import Workflow
from tests.conformance.runner import edited, errors, load, path_of


def _only(found: list[Diagnostic], code: str) -> Diagnostic:
    matching = [d for d in found if d.code == code]
    assert len(matching) == 1, [d.render() for d in found]
    return matching[0]


RETAB_BRANCH = {"branch_name": "big", "sub_conditions": [
    {"path": "data.total_amount", "operator": "is_greater_than", "value": 1000}]}
OWN_BRANCH = {"id": "small", "name": "Small", "condition": {"sub_conditions": [
    {"path_ref": {"input": "default", "path": "total_amount"}, "operator": "less_than",
     "value": 10}]}}


@pytest.mark.parametrize(("conditions", "where", "key"), [
    ([{**RETAB_BRANCH, "condition": OWN_BRANCH["condition"]}], "conditions[0]", "condition"),
    ([{**OWN_BRANCH, "logical_operator": "or"}], "conditions[0]", "logical_operator"),
    ([RETAB_BRANCH, OWN_BRANCH], "conditions[1]", "condition"),
])
def test_mixed_conditional_forms(conditions: list[Any], where: str, key: str) -> None:
    problem = _only(errors(edited("if_else", "route", conditions=conditions)),
                    "CONDITION_FORMS_MIXED")
    assert problem.path == f"spec.blocks.route.config.{where}.{key}"
    assert "'route'" in problem.message and key in problem.message
    assert "sub_conditions" in problem.fix and "condition" in problem.fix


@pytest.mark.parametrize("value", [42, "yesterday", "12/03/2026", None])
def test_date_operator_on_a_non_date(value: Any) -> None:
    branch = {"branch_name": "late", "sub_conditions": [
        {"path": "data.due_date", "operator": "is_before", "value": value}]}
    problem = _only(errors(edited("if_else", "route", conditions=[branch])),
                    "INVALID_CONDITION_VALUE")
    assert problem.path == ("spec.blocks.route.config.conditions[0].sub_conditions[0].value")
    assert "'route'" in problem.message and "ISO 8601" in problem.message
    assert "2026-03-12" in problem.fix


def test_unknown_operator_gets_a_did_you_mean() -> None:
    branch = {"branch_name": "big", "sub_conditions": [
        {"path": "data.total_amount", "operator": "is_greater_then", "value": 1}]}
    problem = _only(errors(edited("if_else", "route", conditions=[branch])),
                    "INVALID_CONDITION_OPERATOR")
    assert problem.path.endswith("conditions[0].sub_conditions[0].operator")
    assert "Did you mean 'is_greater_than'?" in problem.fix
    assert "'route'" in problem.message


@pytest.mark.parametrize("value", [0, -1])
def test_split_page_range_must_be_positive(value: int) -> None:
    problem = _only(errors(edited("for_each_pages", "each_page", split_page_range=value)),
                    "INVALID_CONFIG")
    assert problem.path == "spec.blocks.each_page.config.split_page_range"
    assert "'each_page'" in problem.message
    assert "1" in problem.fix


def test_unknown_reduce_strategy() -> None:
    problem = _only(errors(edited("for_each_array", "each_line", reduce_strategy="sum")),
                    "INVALID_CONFIG")
    assert problem.path == "spec.blocks.each_line.config.reduce_strategy"
    assert "'each_line'" in problem.message
    for strategy in ("concat_array", "first", "last", "none"):
        assert strategy in problem.message + problem.fix


def test_length_operator_needs_a_count() -> None:
    branch = {"branch_name": "many", "sub_conditions": [
        {"path": "data.items", "operator": "length_greater_than", "value": "3"}]}
    problem = _only(errors(edited("if_else", "route", conditions=[branch])),
                    "INVALID_CONDITION_VALUE")
    assert problem.path.endswith("sub_conditions[0].value")


def test_conflicting_termination_keys() -> None:
    wf = edited("while_loop", "refine", termination_condition={"sub_conditions": [
        {"path_ref": {"path": "status"}, "operator": "equals", "value": "x"}]})
    problem = _only(errors(wf), "CONFLICTING_TERMINATION")
    assert problem.path.startswith("spec.blocks.refine.config.")


def test_every_problem_at_once_including_a_cycle_through_a_duplicate_edge() -> None:
    wf = Workflow.from_yaml("""
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata: {name: broken}
spec:
  blocks:
    a: {type: start_json}
    b: {type: function, config: {python: "json:dumps", output_schema: {type: object}}}
    c: {type: function, config: {python: "json:dumps", output_schema: {type: object}}}
    route:
      type: conditional
      config:
        conditions:
          - {branch_name: x, sub_conditions: [{path: data.n, operator: is_before, value: 3}]}
  edges:
    - {source: {block: a, handle: output-json-0}, target: {block: b, handle: input-json-0}}
    - {source: {block: b, handle: output-json-0}, target: {block: c, handle: input-json-0}}
    - {source: {block: c, handle: output-json-0}, target: {block: b, handle: input-json-0}}
    - {source: {block: c, handle: output-json-0}, target: {block: route, handle: input-json-0}}
""")
    codes = sorted(d.code for d in errors(wf))
    assert codes == ["CYCLE", "DUPLICATE_INPUT_EDGE", "INVALID_CONDITION_VALUE"]
    cycle = _only(errors(wf), "CYCLE")
    assert set(cycle.details["cycle"]) == {"b", "c"}


def test_the_documented_shapes_have_no_errors() -> None:
    for name in ("if_else", "if_else_chain", "json_input", "merge_json", "while_loop",
                 "for_each_array", "for_each_pages", "for_each_by_key", "for_each_review",
                 "extract", "extract_consensus_inputs", "cli_minimum", "review_gate",
                 "parse", "split", "classifier", "edit", "function", "api_call",
                 "graph_rest"):
        assert [d.render() for d in errors(load(name))] == [], name


def test_stepwell_validate_lists_every_problem(tmp_path: Path) -> None:
    data = yaml.safe_load(path_of("if_else").read_text())
    route = data["spec"]["blocks"]["route"]["config"]
    route["conditions"][0]["sub_conditions"][0]["operator"] = "is_greater_then"
    data["spec"]["blocks"]["needs_approval"]["config"]["language"] = "ruby"
    data["spec"]["edges"].append({"source": {"block": "auto_book", "handle": "output-json-0"},
                                  "target": {"block": "route", "handle": "input-json-0"}})
    source = tmp_path / "broken.yaml"
    source.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["validate", str(source), "--json"])
    assert result.exit_code == 2
    found = json.loads(result.output)
    assert found["is_valid"] is False
    assert sorted(d["code"] for d in found["diagnostics"] if d["severity"] == "error") == [
        "CYCLE", "DUPLICATE_INPUT_EDGE", "INVALID_CONDITION_OPERATOR",
        "UNSUPPORTED_FUNCTION_LANGUAGE"]
