"""merge_dicts and reshape configs that validate but have nothing to work with."""

from __future__ import annotations

from typing import Any

import pytest

from blocks.base import BlockType
from blocks.dicts import MergeDicts, Reshape
from engine.contracts.errors import Diagnostic
from engine.definition import BlockDef
from tests.blocks.conftest import MakeCtx
from tests.blocks.harness import parse, run_block

pytestmark = pytest.mark.anyio


def _check(impl: BlockType, config: dict[str, Any]) -> list[Diagnostic]:
    return impl.check(BlockDef(id="b", type=impl.type_name, config=config),
                      parse(impl, config), "spec.blocks.b")


async def test_reshape_without_mappings_warns_its_output_is_empty(make_ctx: MakeCtx) -> None:
    result = await run_block(Reshape(), make_ctx("reshape"), {}, {"input-json-0": {"a": 1}})
    assert result.outputs["output-json-0"].data == {}  # what the warning says
    for config in ({}, {"mappings": {}}, {"mappings": {}, "missing": "null"}):
        [warning] = _check(Reshape(), config)
        assert (warning.code, warning.severity) == ("NO_MAPPINGS", "warning")
        assert warning.path == "spec.blocks.b.config.mappings"
        assert warning.message == ("reshape block 'b' has no mappings: its output is always "
                                   "{}, whatever arrives")
        assert warning.fix.startswith("map output keys to input paths, e.g. `mappings:")
    assert _check(Reshape(), {"mappings": {"total": "invoice.total"}}) == []


def test_merge_dicts_without_inputs_warns_it_has_no_handle() -> None:
    impl = MergeDicts()
    assert impl.input_handles(parse(impl, {"inputs": []})) == {}
    [warning] = _check(impl, {"inputs": []})
    assert (warning.code, warning.severity) == ("MISSING_INPUTS", "warning")
    assert warning.path == "spec.blocks.b.config.inputs"
    assert warning.message.startswith("merge_dicts block 'b' declares no inputs")
    assert "remove inputs to use the default input-json-0" in warning.fix
    assert _check(impl, {}) == []
    assert _check(impl, {"inputs": [{"name": "a"}, {"name": "b"}]}) == []
