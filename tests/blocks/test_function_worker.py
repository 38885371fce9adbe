"""Input and Output models built from JSON schemas (:mod:`blocks.function_worker`)."""

from __future__ import annotations

import pytest

from blocks import function_worker as fw

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def test_a_schema_gets_one_model_by_identity_then_by_content() -> None:
    model = fw.build_model("Input", SCHEMA)
    assert fw.build_model("Input", SCHEMA) is model
    assert fw.build_model("Input", {**SCHEMA}) is model  # another dict, the same JSON
    assert fw.make_input({"n": "3"}, SCHEMA).n == 3


def test_the_model_caches_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server compiling workflow after workflow does not keep every schema it saw."""
    monkeypatch.setattr(fw, "MODEL_CACHE_LIMIT", 4)
    monkeypatch.setattr(fw, "_MODEL_BY_ID", {})
    monkeypatch.setattr(fw, "_MODEL_CACHE", {})
    base = fw._base_model()
    loose = fw.permissive_model("Input")
    schemas = [{"type": "object", "properties": {f"f{i}": {"type": "string"}}}
               for i in range(12)]
    for i, schema in enumerate(schemas):
        model = fw.build_model("Input", schema)
        assert len(fw._MODEL_BY_ID) <= 4
        assert len(fw._MODEL_CACHE) <= 4 + 2  # the base and the permissive model stay
        assert set(model.model_fields) == {f"f{i}"}
    assert fw._base_model() is base and fw.permissive_model("Input") is loose
    # a schema seen before the caches started over gets a working model again
    again = fw.build_model("Input", schemas[0])
    assert set(again.model_fields) == {"f0"} and again.model_validate({"f0": "y"}).f0 == "y"
    assert fw.make_input({"n": 7}, SCHEMA).n == 7
