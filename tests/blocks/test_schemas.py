"""The fast schema check never accepts what jsonschema rejects; errors come from jsonschema."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from blocks.extract import allow_null
from blocks.schemas import (
    ensure_matches_schema,
    is_valid,
    schema_checks,
    schema_diagnostics,
    schema_errors,
)
from engine.contracts.blocks import BlockContext
from engine.contracts.errors import PermanentError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(-5, 5, allow_nan=False)
    | st.sampled_from(["", "a", "ab", "b1"]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["a", "b", "n"]), inner, max_size=3),
    max_leaves=8,
)
leaf_schemas = st.sampled_from([
    {"type": "integer"}, {"type": "number"}, {"type": "boolean"}, {"type": "null"},
    {"type": "string"}, {"type": ["integer", "null"]}, {"type": "array"}, {"type": "object"},
    {"enum": [1, "a", True, None]}, {"const": 1}, {"const": True}, {"const": [1]},
    {"minimum": 0, "exclusiveMaximum": 3}, {"minLength": 1, "pattern": "^a"},
    {"uniqueItems": True}, {"minItems": 1, "maxItems": 2}, {"format": "date"},
    {"multipleOf": 0.1}, {"prefixItems": [{"type": "integer"}]}, {},
])
schemas = st.recursive(
    leaf_schemas,
    lambda inner: st.builds(lambda p, r: {"type": "object", "properties": p, "required": r},
                            st.dictionaries(st.sampled_from(["a", "b", "n"]), inner, max_size=2),
                            st.lists(st.sampled_from(["a", "n"]), max_size=2, unique=True))
    | st.builds(lambda i: {"type": "array", "items": i}, inner)
    | st.builds(lambda xs: {"anyOf": xs}, st.lists(inner, min_size=1, max_size=2))
    | st.builds(lambda x: {"not": x}, inner)
    | st.builds(lambda x: {"additionalProperties": x}, inner),
    max_leaves=5,
)


@settings(max_examples=400, deadline=None)
@given(schema=schemas, value=json_values)
@example(schema={"multipleOf": 0.1}, value=0.3)  # the libraries round floats differently
@example(schema={"type": "integer"}, value=True)
@example(schema={"type": "integer"}, value=1.0)
def test_fast_check_agrees_with_jsonschema(schema: dict[str, Any], value: Any) -> None:
    expected = jsonschema.validators.validator_for(schema)(schema).is_valid(value)
    assert is_valid(value, schema) is expected


def test_portable_schemas_get_the_fast_check_and_others_do_not() -> None:
    portable = {"type": "object", "properties": {"n": {"type": "integer"}}}
    assert schema_checks(portable).fast is not None
    assert schema_checks({"type": "string", "format": "date"}).fast is None
    assert schema_checks({"prefixItems": [{"type": "integer"}]}).fast is None
    assert schema_checks({"$schema": "http://json-schema.org/draft-07/schema#"}).fast is None


def test_errors_name_the_path() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert schema_errors({"n": "x"}, schema)[0]["path"] == "n"
    ctx = BlockContext(run_id="r", step_id="f", block_id="f", block_type="function", label="f")
    with pytest.raises(PermanentError, match=r"function block 'f'.*at n"):
        ensure_matches_schema(ctx, {"n": "x"}, schema, "the function's return value")
    ensure_matches_schema(ctx, {"n": 1}, schema, "the function's return value")


def test_composition_failures_name_the_inner_key_and_problem() -> None:
    schema = {"type": "object", "required": ["total", "ref"], "properties": {
        "total": {"type": "number"},
        "lines": {"type": "array", "items": {"type": "object", "properties": {
            "qty": {"type": "integer"}}}}}}
    errors = schema_errors({"total": "abc", "lines": [{"qty": "x"}]}, allow_null(schema))
    assert {(e["path"], e["message"]) for e in errors} == {
        ("total", "'abc' is not of type 'number'"),
        ("lines[0].qty", "'x' is not of type 'integer'"),
        ("ref", "'ref' is a required property")}
    assert not any("any of the given schemas" in e["message"] for e in errors)


@pytest.mark.parametrize(("schema", "where"), [
    ({"type": "object", "properties": {"a": {"$ref": "#/$defs/line"}}}, "s.properties.a.$ref"),
    ({"$ref": "https://example.com/invoice.json"}, "s.$ref"),
])
def test_a_ref_that_points_nowhere_is_a_schema_diagnostic(schema: dict[str, Any],
                                                           where: str) -> None:
    found = schema_diagnostics(schema, "s")
    assert [(d.code, d.path) for d in found] == [("INVALID_JSON_SCHEMA", where)]
    assert "$ref" in found[0].message and "#/$defs/" in found[0].fix


@pytest.mark.parametrize("schema", [
    {"$defs": {"m": {"type": "string"}}, "properties": {"a": {"$ref": "#/$defs/m"}}},
    {"$schema": "http://json-schema.org/draft-07/schema#",
     "definitions": {"m": {}}, "properties": {"a": {"$ref": "#/definitions/m"}}},
    {"$defs": {"n": {"properties": {"kid": {"$ref": "#/$defs/n"}}}}, "$ref": "#/$defs/n"},
    {"properties": {"$ref": {"type": "string"}, "c": {"const": {"$ref": "not a ref"}}}},
])
def test_resolvable_refs_are_fine(schema: dict[str, Any]) -> None:
    assert schema_diagnostics(schema, "s") == []
