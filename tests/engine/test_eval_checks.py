"""Eval assertions (engine.eval_checks, engine.eval_conditions): parsing and every kind."""

from __future__ import annotations

from typing import Any

import pytest

from engine.contracts.errors import InputError
from engine.eval_checks import check_assertion, parse_assertion, value_at

OUT = {"output-json-0": {"total": 120.5, "vendor": {"name": "Acme GmbH"}, "lines": [
    {"sku": "A", "qty": 2}, {"sku": "B", "qty": 5}], "tags": ["paid", "eu"], "note": None},
    "output-file-invoice": {"id": "file_1", "filename": "a.pdf", "mime_type": "application/pdf"}}


def verdict(condition: dict[str, Any], path: str | None = None,
            handle: str = "output-json-0") -> str:
    assertion = parse_assertion({"target": {"output_handle_id": handle, "path": path},
                                 "condition": condition})
    return check_assertion(assertion, OUT).outcome


@pytest.mark.parametrize(("condition", "path", "expected"), [
    ({"kind": "exists"}, "vendor.name", "passed"),
    ({"kind": "exists"}, "vendor.city", "failed"),
    ({"kind": "not_exists"}, "vendor.city", "passed"),
    ({"kind": "not_exists"}, "note", "passed"),
    ({"kind": "equals", "expected": 120.5}, "total", "passed"),
    ({"kind": "not_equals", "expected": 1}, "total", "passed"),
    ({"kind": "number_compare", "op": "gte", "expected": 120.5}, "total", "passed"),
    ({"kind": "number_compare", "op": "lt", "expected": 100}, "total", "failed"),
    ({"kind": "number_compare", "op": "gt", "expected": 1}, "vendor.name", "blocked"),
    ({"kind": "length_compare", "op": "eq", "expected": 2}, "lines", "passed"),
    ({"kind": "between", "lower": 100, "upper": 120.5}, "total", "passed"),
    ({"kind": "between", "lower": 100, "upper": 120.5, "inclusive": False}, "total", "failed"),
    ({"kind": "contains", "expected": "Acme"}, "vendor.name", "passed"),
    ({"kind": "contains", "expected": "paid"}, "tags", "passed"),
    ({"kind": "not_contains", "expected": "us"}, "tags", "passed"),
    ({"kind": "object_contains", "expected": {"vendor": {"name": "Acme GmbH"}}}, None, "passed"),
    ({"kind": "array_contains", "expected": {"sku": "B"}}, "lines", "passed"),
    ({"kind": "array_contains", "expected": {"sku": "C"}}, "lines", "failed"),
    ({"kind": "starts_with", "expected": "Acme"}, "vendor.name", "passed"),
    ({"kind": "ends_with", "expected": "AG"}, "vendor.name", "failed"),
    ({"kind": "matches_regex", "pattern": r"^Ac.e\b"}, "vendor.name", "passed"),
    ({"kind": "json_schema_valid", "schema": {"type": "object", "required": ["total"]}}, None,
     "passed"),
    ({"kind": "similarity_gte", "reference": "Acme GmbH.", "threshold": 0.8}, "vendor.name",
     "passed"),
    ({"kind": "similarity_gte", "reference": "x", "threshold": 0.5, "method": "embeddings"},
     "vendor.name", "blocked"),
    ({"kind": "all_items_match", "condition": {"kind": "starts_with", "expected": "p"}},
     "tags", "failed"),
    ({"kind": "all_items_match", "condition": {"kind": "number_compare", "op": "gt",
                                               "expected": 1}}, "lines", "blocked"),
    ({"kind": "all_items_match", "condition": {"kind": "exists"}}, "lines", "passed"),
    ({"kind": "any_item_matches", "condition": {"kind": "object_contains",
                                                "expected": {"qty": 5}}}, "lines", "passed"),
    ({"kind": "llm_judged_as", "rubric": "polite"}, "vendor.name", "blocked"),
    ({"kind": "equals", "expected": 2}, "lines.0.qty", "passed"),
    ({"kind": "equals", "expected": 5}, "lines.-1.qty", "passed"),
])
def test_every_kind(condition: dict[str, Any], path: str | None, expected: str) -> None:
    assert verdict(condition, path) == expected


def test_file_handles_and_missing_handles() -> None:
    assert verdict({"kind": "exists"}, handle="output-file-invoice") == "passed"
    assert verdict({"kind": "equals", "expected": "a.pdf"}, "filename",
                   handle="output-file-invoice") == "passed"
    assert verdict({"kind": "exists"}, handle="output-json-9") == "failed"
    outcome = check_assertion(parse_assertion({
        "target": {"output_handle_id": "output-json-9"},
        "condition": {"kind": "equals", "expected": 1}}), OUT)
    assert outcome.outcome == "failed" and outcome.failure["code"] == "path_not_found"


def test_split_iou() -> None:
    expected = {"splits": [{"name": "Invoice", "pages": [1, 2]}, {"name": "Terms", "pages": [3]}]}
    actual = {"output-json-splits": {"splits": [{"name": "Invoice", "pages": [1]},
                                                {"name": "Terms", "pages": [3]}]}}
    strict = parse_assertion({"target": {"output_handle_id": "output-json-splits"},
                              "condition": {"kind": "split_iou_gte", "expected": expected}})
    loose = parse_assertion({"target": {"output_handle_id": "output-json-splits"},
                             "condition": {"kind": "split_iou_gte", "expected": expected,
                                           "threshold": 0.7}})
    result = check_assertion(strict, actual)
    assert result.outcome == "failed" and result.score == 0.75 and result.threshold == 1.0
    assert check_assertion(loose, actual).outcome == "passed"


def test_parsing_keeps_an_id_and_refuses_what_it_cannot_check() -> None:
    parsed = parse_assertion({"target": {"output_handle_id": "o"},
                              "condition": {"kind": "exists"}, "label": "has it"})
    assert parsed["id"].startswith("assert_") and parsed["label"] == "has it"
    assert parse_assertion(parsed) == parsed  # stable
    for bad, field in (({"condition": {"kind": "exists"}}, "target"),
                       ({"target": {"output_handle_id": "o"}, "condition": {"kind": "nope"}},
                        "condition"),
                       ({"target": {"output_handle_id": "o"},
                         "condition": {"kind": "matches_regex", "pattern": "(["}}, "regular"),
                       ({"target": {"output_handle_id": "o"},
                         "condition": {"kind": "matches_regex", "pattern": "a" * 1001}},
                        "limit is 1000"),
                       ({"target": {"output_handle_id": "o"},
                         "condition": {"kind": "json_schema_valid",
                                       "schema": {"type": "wrong"}}}, "JSON schema"),
                       ({"target": {"output_handle_id": "o"},
                         "condition": {"kind": "exists", "extra": 1}}, "extra"),
                       ({"target": {"output_handle_id": ""}, "condition": {"kind": "exists"}},
                        "output_handle_id"),
                       ("not an object", "assertion")):
        with pytest.raises(InputError, match="does not parse"):
            parse_assertion(bad)
        try:
            parse_assertion(bad)
        except InputError as exc:
            assert field.lower() in str(exc).lower() or field == "assertion"


def test_value_at_paths() -> None:
    data = {"a": [{"b": 1}], "c": {"d": None}}
    assert value_at(data, "a.0.b") == 1
    assert value_at(data, "c.d") is None
    assert value_at(data, None) == data
