"""The condition language: paths, operators, groups, diagnostics, evaluation records."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from blocks.conditions import (
    MISSING,
    OPERATOR_SPELLINGS,
    WILDCARD,
    Condition,
    PathSyntaxError,
    apply_operator,
    empty_groups,
    evaluate,
    json_equal,
    lookup,
    parse_condition_group,
    parse_path,
    resolve,
    validate_condition_group,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)
ALL_SPELLINGS = [s for spellings in OPERATOR_SPELLINGS.values() for s in spellings]


def group(*subs: dict[str, Any], op: str = "and") -> dict[str, Any]:
    return {"logical_operator": op, "sub_conditions": list(subs)}


def cond(path: str, operator: str, value: Any = None, input: str = "default") -> dict[str, Any]:
    return {"path_ref": {"input": input, "path": path}, "operator": operator, "value": value}


def check(root: Any, *subs: dict[str, Any], op: str = "and") -> bool:
    return evaluate(parse_condition_group(group(*subs, op=op)), root).matched


# ----------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("path", "segments"),
    [
        ("", ()),
        ("a", ("a",)),
        ("a.b", ("a", "b")),
        ("a.0.b", ("a", "0", "b")),
        ("a[0].b", ("a", "0", "b")),
        ("a.*.b", ("a", WILDCARD, "b")),
        ("a[*].b", ("a", WILDCARD, "b")),
        ("a[0][1]", ("a", "0", "1")),
        ("total amount", ("total amount",)),
    ],
)
def test_parse_path(path: str, segments: tuple[Any, ...]) -> None:
    assert parse_path(path) == segments


@pytest.mark.parametrize("path", ["a..b", ".a", "a.", "a[x]", "[0]", "a[0]b", "a[", "a]"])
def test_parse_path_rejects(path: str) -> None:
    with pytest.raises(PathSyntaxError, match="invalid path"):
        parse_path(path)


keys = st.text(
    st.characters(whitelist_categories=("Ll", "Lu", "Nd"), whitelist_characters="_ -"),
    min_size=1,
    max_size=6,
)
segments_st = st.lists(keys | st.integers(0, 9).map(str) | st.just(WILDCARD), max_size=5)


@given(segments_st)
def test_dotted_and_bracket_forms_parse_the_same(segments: list[Any]) -> None:
    dotted = ".".join("*" if s is WILDCARD else s for s in segments)
    assert parse_path(dotted) == tuple(segments)
    if segments:
        head, *rest = segments
        bracketed = ("*" if head is WILDCARD else head) + "".join(
            "[*]" if s is WILDCARD else (f"[{s}]" if s.isdigit() else f".{s}") for s in rest
        )
        assert parse_path(bracketed) == tuple(segments)


def test_resolve_and_lookup() -> None:
    doc = {"a": {"b": [{"c": 1}, {"c": 2}, {}]}, "0": "zero"}
    assert lookup(doc, "a.b.1.c") == 2
    assert lookup(doc, "a.b[0].c") == 1
    assert lookup(doc, "0") == "zero"
    assert lookup(doc, "a.x") is MISSING
    assert lookup(doc, "a.b.9") is MISSING
    assert lookup(doc, "") is doc
    assert lookup(doc, "a.b.*.c") == [1, 2, None]
    assert resolve(doc, "a.b.*.c") == [((0,), 1), ((1,), 2), ((2,), MISSING)]


def test_lookup_wildcard_over_an_empty_array_is_an_empty_list() -> None:
    assert lookup({"a": []}, "a.*.c") == []  # no elements: nothing to list, not missing
    assert lookup({"a": [{"b": []}]}, "a.*.b.*") == []
    assert lookup({"a": []}, "a[*]") == []
    assert lookup({}, "a.*.c") is MISSING  # no array at all
    assert lookup({"a": {"b": 1}}, "a.*.c") is MISSING  # not an array
    assert lookup({"a": [{}, {}]}, "a.*.c") is MISSING  # elements, none with the key


def test_nested_wildcards_record_hierarchical_indices() -> None:
    doc = {"items": [{"sub": [1, 2]}, {"sub": [3]}]}
    assert [i for i, _ in resolve(doc, "items.*.sub.*")] == [(0, 0), (0, 1), (1, 0)]


# ----------------------------------------------------------------------------- operators


@pytest.mark.parametrize(
    ("op", "actual", "expected", "matched"),
    [
        ("equals", 1, 1.0, True),
        ("equals", True, 1, False),
        ("equals", "1", 1, False),
        ("equals", {"a": [1]}, {"a": [1]}, True),
        ("not_equals", "x", "y", True),
        ("greater_than", 5001, 5000, True),
        ("greater_than_or_equal", 5000, 5000, True),
        ("less_than", 1, 2, True),
        ("less_than_or_equal", 3, 2, False),
        ("contains", "hello world", "lo w", True),
        ("contains", [1, 2], 2, True),
        ("contains", {"k": 1}, "k", True),
        ("not_contains", [1, 2], 3, True),
        ("starts_with", "invoice-1", "invoice", True),
        ("ends_with", "a.pdf", ".pdf", True),
        ("matches_regex", "INV-0042", r"^INV-\d+$", True),
        ("exists", None, None, False),
        ("exists", 0, None, True),
        ("not_exists", None, None, True),
        ("is_empty", "", None, True),
        ("is_empty", [], None, True),
        ("is_empty", 0, None, False),
        ("is_not_empty", {"a": 1}, None, True),
        ("is_true", True, None, True),
        ("is_true", 1, None, False),
        ("is_false", False, None, True),
        ("in", "EUR", ["EUR", "USD"], True),
        ("in", "ab", "cabd", True),
        ("not_in", 3, [1, 2], True),
    ],
)
def test_operators(op: str, actual: Any, expected: Any, matched: bool) -> None:
    assert apply_operator(op, actual, expected)[0] is matched


@pytest.mark.parametrize("spellings", [s for s in OPERATOR_SPELLINGS.values() if len(s) > 1])
@settings(max_examples=50)
@given(actual=json_values, expected=json_values)
def test_both_spellings_agree(spellings: tuple[str, ...], actual: Any, expected: Any) -> None:
    outcomes = {apply_operator(s, actual, expected) for s in spellings}
    assert len(outcomes) == 1


def test_numeric_compare_on_a_string_does_not_match_and_says_why() -> None:
    matched, reason = apply_operator("greater_than", "5000", 10)
    assert not matched
    assert reason == "greater_than needs a number, found string"


@pytest.mark.parametrize("op", ALL_SPELLINGS)
def test_missing_value_matches_only_existence_operators(op: str) -> None:
    matched, _ = apply_operator(op, MISSING, 1 if op not in ("in", "not_in") else [1])
    assert matched is (op in ("not_exists", "does_not_exist"))


@given(actual=json_values, expected=json_values)
def test_equals_and_not_equals_are_complementary(actual: Any, expected: Any) -> None:
    assert (
        apply_operator("equals", actual, expected)[0]
        != apply_operator("not_equals", actual, expected)[0]
    )


@given(json_values)
def test_exists_and_not_exists_are_complementary(value: Any) -> None:
    assert apply_operator("exists", value)[0] != apply_operator("not_exists", value)[0]


@given(a=json_values)
def test_json_equal_is_reflexive(a: Any) -> None:
    assert json_equal(a, a)


@given(
    root=json_values,
    path=st.sampled_from(["", "a", "a.0", "a.*", "a.*.b", "0.x"]),
    op=st.sampled_from(ALL_SPELLINGS),
    value=json_values,
)
def test_evaluate_never_raises_and_records_json(root: Any, path: str, op: str, value: Any) -> None:
    try:
        parsed = parse_condition_group(group(cond(path, op, value)))
    except ValidationError:
        return  # a value the operator cannot take is rejected up front
    record = evaluate(parsed, root).to_dict()
    json.dumps(record)
    assert isinstance(record["matched"], bool)


# ----------------------------------------------------------------------------- groups


def test_and_or_and_nesting() -> None:
    root = {"amount": 6000, "currency": "EUR"}
    big = cond("amount", "greater_than", 5000)
    usd = cond("currency", "equals", "USD")
    assert not check(root, big, usd)
    assert check(root, big, usd, op="or")
    assert check(root, big, group(usd, cond("currency", "is_equal_to", "EUR"), op="or"))


def test_wildcard_requires_every_element_and_records_items() -> None:
    parsed = parse_condition_group(group(cond("lines.*.qty", "is_greater_than", 0)))
    ok = evaluate(parsed, {"lines": [{"qty": 1}, {"qty": 2}]})
    bad = evaluate(parsed, {"lines": [{"qty": 1}, {"qty": "x"}, {}]})
    assert ok.matched and not bad.matched
    items = bad.sub_evaluations[0]["items"]
    assert [i["indices"] for i in items] == [[0], [1], [2]]
    assert [i["matched"] for i in items] == [True, False, False]
    assert items[1]["reason"] == "greater_than needs a number, found string"
    assert items[2]["reason"] == "path not found"


def test_wildcard_over_empty_array_counts_as_missing() -> None:
    assert not check({"lines": []}, cond("lines.*.qty", "greater_than", 0))
    assert check({"lines": []}, cond("lines.*.qty", "not_exists"))


def test_record_shape() -> None:
    parsed = parse_condition_group(group(cond("amount_due", "is_greater_than", 5000)))
    assert evaluate(parsed, {"amount_due": 9000}).to_dict() == {
        "matched": True,
        "logical_operator": "and",
        "sub_evaluations": [
            {
                "input": "default",
                "path": "amount_due",
                "operator": "greater_than",
                "expected": 5000,
                "actual": 9000,
                "matched": True,
            }
        ],
    }


def test_missing_path_is_recorded() -> None:
    parsed = parse_condition_group(group(cond("nope", "equals", 1)))
    sub = evaluate(parsed, {}).sub_evaluations[0]
    assert sub["matched"] is False and sub["actual"] is None and sub["reason"] == "path not found"


def test_path_ref_input_selects_a_named_payload() -> None:
    parsed = parse_condition_group(
        group(
            cond("done", "is_true", input="loop-termination"),
            cond("n", "equals", 2, input="right-in"),
        )
    )
    inputs = {"loop-termination": {"done": True}, "loop-right-in": {"n": 2}}
    assert evaluate(parsed, {"other": 1}, inputs=inputs).matched
    missing = parse_condition_group(group(cond("x", "not_exists", input="absent")))
    assert evaluate(missing, {"x": 1}, inputs=inputs).matched


def test_shorthands_and_case() -> None:
    parsed = parse_condition_group(
        {
            "logical_operator": "OR",
            "sub_conditions": [
                {"path": "a", "operator": "exists"},
                {"path_ref": "b", "operator": "exists"},
            ],
        }
    )
    assert parsed.logical_operator == "or"
    conditions = [s for s in parsed.sub_conditions if isinstance(s, Condition)]
    assert [c.path_ref.path for c in conditions] == ["a", "b"]


# ----------------------------------------------------------------------------- validation


def test_validate_reports_every_problem_with_codes_and_paths() -> None:
    raw = group(
        cond("a..b", "equals", 1),
        cond("a", "bogus", 1),
        group(cond("a", "greater_than", "big"), cond("a", "exists", input="nowhere")),
    )
    diagnostics = validate_condition_group(raw, "spec.blocks.c.config.conditions[0].condition")
    found = {
        (d.code, d.path.removeprefix("spec.blocks.c.config.conditions[0].condition"))
        for d in diagnostics
    }
    assert found == {
        ("INVALID_CONDITION_PATH", ".sub_conditions[0].path_ref.path"),
        ("INVALID_CONDITION_OPERATOR", ".sub_conditions[1].operator"),
        ("INVALID_CONDITION_VALUE", ".sub_conditions[2].sub_conditions[0].value"),
    }
    assert all(d.fix for d in diagnostics)


def test_unknown_operator_message_lists_valid_ones() -> None:
    [diag] = validate_condition_group(group(cond("a", "gt", 1)), "p")
    assert diag.code == "INVALID_CONDITION_OPERATOR"
    assert "unknown operator 'gt'" in diag.message and "greater_than" in diag.message


def test_unknown_input_is_reported_when_inputs_are_known() -> None:
    raw = group(cond("a", "exists", input="other"), cond("a", "exists", input="0"))
    [diag] = validate_condition_group(raw, "p", inputs=["input-json-0"])
    assert diag.code == "UNKNOWN_CONDITION_INPUT"
    assert diag.path == "p.sub_conditions[0].path_ref.input"


def test_valid_group_has_no_diagnostics_and_parse_raises_on_invalid() -> None:
    assert validate_condition_group(group(cond("a", "is_less_than", 0.85)), "p") == []
    with pytest.raises(ValidationError):
        parse_condition_group(group(cond("a", "nope")))
    with pytest.raises(ValidationError):
        parse_condition_group({"sub_conditions": [], "extra": 1})


def test_empty_groups_are_found_at_every_depth() -> None:
    cond = {"path_ref": {"path": "a"}, "operator": "exists"}
    assert empty_groups({}, "c") == [("c", "and")]
    assert empty_groups({"logical_operator": "OR", "sub_conditions": []}, "c") == [("c", "or")]
    nested = {"sub_conditions": [cond, {"logical_operator": "or", "sub_conditions": [
        {"sub_conditions": []}]}]}
    assert empty_groups(nested, "c") == [("c.sub_conditions[1].sub_conditions[0]", "and")]
    assert empty_groups({"sub_conditions": [cond]}, "c") == []
    assert empty_groups({"sub_conditions": "nope"}, "c") == []  # invalid: not its business
    assert evaluate(parse_condition_group({}), {}).matched is True
    assert evaluate(parse_condition_group({"logical_operator": "or"}), {}).matched is False
