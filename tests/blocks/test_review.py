"""Review predicates: validation diagnostics and evaluation records."""

from __future__ import annotations

from typing import Any

import pytest

from blocks.review import KINDS, evaluate_review, review_diagnostics, review_record

SCHEMA = {"type": "object", "required": ["total", "supplier"], "properties": {
    "total": {"type": "number"},
    "supplier": {"type": "object", "required": ["name"],
                 "properties": {"name": {"type": "string"}}}}}


def _codes(raw: Any, block: str = "extract") -> list[str]:
    return [d.code for d in review_diagnostics(raw, block, "spec.blocks.b.config.review")]


def test_diagnostics() -> None:
    assert _codes(None) == []
    assert _codes({"predicate": {"kind": "always"}}) == []
    assert _codes({"predicat": {}}) == ["INVALID_REVIEW_CONFIG"]
    assert _codes({}) == ["MISSING_REVIEW_PREDICATE"]
    assert _codes({"predicate": {"kind": "sometimes"}}) == ["UNKNOWN_REVIEW_PREDICATE"]
    assert _codes({"predicate": {"kind": "category_in", "categories": ["a"]}}) == [
        "REVIEW_PREDICATE_NOT_APPLICABLE"]
    assert _codes({"predicate": {"kind": "any_pages_unassigned"}}, "split_by_key") == []
    assert _codes({"predicate": {"kind": "confidence_lt"}}) == ["INVALID_REVIEW_PREDICATE"]
    assert _codes({"predicate": {"kind": "confidence_lt", "threshold": True}}) == [
        "INVALID_REVIEW_PREDICATE"]
    assert _codes({"predicate": {"kind": "always", "extra": 1}}) == ["INVALID_REVIEW_PREDICATE"]
    assert _codes({"predicate": {"kind": "any_of", "predicates": [
        {"kind": "always"}, {"kind": "top_margin_lt", "margin": 0.1}]}}) == [
        "REVIEW_PREDICATE_NOT_APPLICABLE"]
    nested = review_diagnostics({"predicate": {"kind": "all_of", "predicates": [
        {"kind": "nope"}]}}, "split", "r")
    assert nested[0].path == "r.predicate.predicates[0].kind"
    assert _codes({"predicate": {"kind": "json_condition", "condition": {
        "logical_operator": "and", "sub_conditions": [
            {"path_ref": {"input": "default", "path": "total"}, "operator": "bigger",
             "value": 1}]}}}) == ["INVALID_CONDITION_OPERATOR"]
    assert set(KINDS) >= {"always", "validation_failed", "any_of", "all_of", "json_condition"}


@pytest.mark.parametrize(("block", "pred", "field", "says"), [
    ("extract", {"kind": "confidence_lt", "threshold": 85}, "threshold", "always fires"),
    ("extract", {"kind": "confidence_lt", "threshold": 0}, "threshold", "never fires"),
    ("split", {"kind": "boundary_confidence_lt", "threshold": -0.5}, "threshold",
     "never fires"),
    ("classifier", {"kind": "top_margin_lt", "margin": 20}, "margin", "always fires"),
    ("split", {"kind": "split_count_neq", "expected": -1}, "expected", "always fires"),
    ("split_by_key", {"kind": "any_split_pages_lt", "min_pages": 1}, "min_pages",
     "never fires"),
])
def test_numbers_out_of_range_decide_the_predicate(block: str, pred: dict[str, Any],
                                                    field: str, says: str) -> None:
    [warning] = review_diagnostics({"predicate": pred}, block, "spec.blocks.b.config.review",
                                   owner=f"{block} block 'b'")
    assert (warning.code, warning.severity) == ("REVIEW_PREDICATE_OUT_OF_RANGE", "warning")
    assert warning.path == f"spec.blocks.b.config.review.predicate.{field}"
    assert warning.message.startswith(f"{block} block 'b': {pred['kind']} {field} ")
    assert warning.message.endswith(f"so the predicate {says}")
    assert f"`{field}: " in warning.fix


def test_a_percentage_threshold_gets_its_fraction_as_the_fix() -> None:
    [warning] = review_diagnostics({"predicate": {"kind": "any_of", "predicates": [
        {"kind": "always"}, {"kind": "confidence_lt", "threshold": 85}]}}, "extract", "r")
    assert warning.path == "r.predicate.predicates[1].threshold"
    assert warning.message.startswith("confidence_lt threshold 85 is above 1")  # no owner
    assert warning.fix == "write the threshold as a fraction between 0 and 1, e.g. " \
        "`threshold: 0.85`"


@pytest.mark.parametrize("pred", [
    {"kind": "confidence_lt", "threshold": 1}, {"kind": "confidence_lt", "threshold": 0.01},
    {"kind": "top_margin_lt", "margin": 0.2}, {"kind": "split_count_neq", "expected": 0},
    {"kind": "any_split_pages_lt", "min_pages": 2}])
def test_numbers_in_range_say_nothing(pred: dict[str, Any]) -> None:
    block = "classifier" if pred["kind"] == "top_margin_lt" else "split"
    assert review_diagnostics({"predicate": pred}, block, "r") == []


def test_out_of_range_numbers_really_decide_the_predicate() -> None:
    likelihoods = {"a": 1.0, "b": 0.99}
    assert _fire({"kind": "confidence_lt", "threshold": 85}, likelihoods=likelihoods)
    assert _fire({"kind": "confidence_lt", "threshold": 0}, likelihoods={"a": 0.0}) is None
    parts = {"parts": [{"name": "a", "pages": [1]}]}
    assert _fire({"kind": "any_split_pages_lt", "min_pages": 1}, kind="split",
                 extra=parts) is None


def test_category_in_names_configured_categories() -> None:
    categories = {"Invoice": "invoice", "Receipt": "rcpt"}
    found = review_diagnostics({"predicate": {"kind": "category_in", "categories": [
        "Invoice", "Invoce", "rcpt"]}}, "classifier", "spec.blocks.sort.config.review",
        owner="classifier block 'sort'", categories=categories)
    assert [(d.code, d.severity, d.path) for d in found] == [
        ("UNKNOWN_REVIEW_CATEGORY", "warning",
         "spec.blocks.sort.config.review.predicate.categories[1]"),
        ("UNKNOWN_REVIEW_CATEGORY", "warning",
         "spec.blocks.sort.config.review.predicate.categories[2]")]
    assert found[0].message == (
        "classifier block 'sort': category_in lists 'Invoce', which is not one of the "
        "categories (Invoice, Receipt), so it never fires for it")
    assert found[0].fix == "use the names of the categories: Invoice, Receipt"
    assert found[1].fix == "write the category's name, 'Receipt', not its handle_key"
    assert _fire({"kind": "category_in", "categories": ["rcpt"]}, kind="classifier",
                 extra={"category": "Receipt"}) is None  # names, not handle keys
    [odd] = review_diagnostics({"predicate": {"kind": "category_in", "categories": [
        {"name": "Invoice"}]}}, "classifier", "r", categories=categories)
    assert odd.path == "r.predicate.categories[0]"  # not a name at all
    # without the categories (a caller that has none) nothing is checked
    assert _codes({"predicate": {"kind": "category_in", "categories": ["x"]}},
                  "classifier") == []


def _fire(pred: dict[str, Any], **kwargs: Any) -> dict[str, Any] | None:
    kwargs.setdefault("kind", "extract")
    kwargs.setdefault("output", {})
    return evaluate_review({"predicate": pred}, **kwargs)


@pytest.mark.parametrize(("pred", "facts", "fires"), [
    ({"kind": "always"}, {}, True),
    ({"kind": "validation_failed"}, {"output": {"total": "x"}, "schema": SCHEMA}, True),
    ({"kind": "validation_failed"}, {"output": {"total": 1, "supplier": {"name": "a"}},
                                     "schema": SCHEMA}, False),
    ({"kind": "confidence_lt", "threshold": 0.8}, {"likelihoods": {"a": 0.9, "b": [0.7]}}, True),
    ({"kind": "confidence_lt", "threshold": 0.8}, {"likelihoods": {"a": 0.9}}, False),
    ({"kind": "confidence_lt", "threshold": 0.8}, {"kind": "classifier",
                                                   "extra": {"confidence": 0.5}}, True),
    ({"kind": "category_in", "categories": ["x"]}, {"kind": "classifier",
                                                     "extra": {"category": "x"}}, True),
    ({"kind": "top_margin_lt", "margin": 0.2}, {"kind": "classifier",
                                                 "extra": {"top_margin": 0.3}}, False),
    ({"kind": "split_count_neq", "expected": 2}, {"kind": "split", "extra": {
        "parts": [{"name": "a", "pages": [1]}]}}, True),
    ({"kind": "any_split_pages_lt", "min_pages": 2}, {"kind": "split", "extra": {
        "parts": [{"name": "a", "pages": [1, 2]}, {"name": "b", "pages": [3]}]}}, True),
    ({"kind": "boundary_confidence_lt", "threshold": 0.5}, {"kind": "split", "extra": {
        "parts": [{"name": "a", "pages": [1], "confidence": 0.6}]}}, False),
    ({"kind": "any_pages_unassigned"}, {"kind": "split_by_key",
                                        "extra": {"unassigned_pages": [3]}}, True),
    ({"kind": "any_required_field_null"}, {"output": {"total": 1, "supplier": {"name": None}},
                                           "schema": SCHEMA}, True),
    ({"kind": "any_required_field_null"}, {"output": {"total": 1, "supplier": {"name": "a"}},
                                           "schema": SCHEMA}, False),
])
def test_predicates(pred: dict[str, Any], facts: dict[str, Any], fires: bool) -> None:
    record = _fire(pred, **facts)
    assert (record is not None) is fires
    if record is not None:
        assert record["triggered_by"] == pred["kind"] and record["requires_human_review"]


def test_json_condition_reads_data_and_likelihoods() -> None:
    def cond(path: str, op: str, value: Any) -> dict[str, Any]:
        return {"kind": "json_condition", "condition": {"logical_operator": "and",
                "sub_conditions": [{"path_ref": {"input": "default", "path": path},
                                    "operator": op, "value": value}]}}

    facts = {"output": {"total": 5000, "lines": [{"qty": 1}]},
             "likelihoods": {"total": 0.5, "lines": [{"qty": 1.0}]}}
    assert _fire(cond("total", "greater_than", 1000), **facts) is not None
    assert _fire(cond("data.total", "greater_than", 1000), **facts) is not None
    assert _fire(cond("output-json-0.total", "greater_than", 1000), **facts) is not None
    assert _fire(cond("likelihoods.total", "is_less_than", 0.9), **facts) is not None
    assert _fire(cond("lines.*.qty", "equals", 2), **facts) is None
    record = _fire(cond("total", "less_than", 10), **facts)
    assert record is None
    full = review_record({"predicate": cond("total", "less_than", 10)}, kind="extract", **facts)
    assert full is not None and full["requires_human_review"] is False
    assert full["evaluations"][0]["evaluation"]["sub_evaluations"][0]["actual"] == 5000


def test_any_of_reports_the_first_match_and_all_of_needs_every_one() -> None:
    any_of = {"kind": "any_of", "predicates": [
        {"kind": "confidence_lt", "threshold": 0.1},
        {"kind": "any_of", "predicates": [{"kind": "always"}]},
        {"kind": "validation_failed"}]}
    record = _fire(any_of, likelihoods={"a": 0.5}, output={"total": "x"}, schema=SCHEMA)
    assert record is not None and record["triggered_by"] == "always"
    all_of = {"kind": "all_of", "predicates": [{"kind": "always"},
                                               {"kind": "confidence_lt", "threshold": 0.1}]}
    assert _fire(all_of, likelihoods={"a": 0.5}) is None
    assert _fire({"kind": "all_of", "predicates": []}) is None
    assert evaluate_review(None, output={}, kind="extract") is None
    assert review_record({"predicate": None}, output={}, kind="extract") is None
