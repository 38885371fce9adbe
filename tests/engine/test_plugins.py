"""Custom block types from entry points and MODULE:ATTR references."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from blocks.registry import BlockRegistry
from engine.contracts.errors import UsageError
from engine.plugins import ENTRY_POINT_GROUP, block_registry, installed_plugins
from tests.engine.plugin_dist import installed_distribution

PLUGIN = textwrap.dedent('''
    from blocks.base import BlockResult, BlockType


    class Stamp(BlockType):
        type_name = "stamp"

        def input_handles(self, config):
            return {"input-json-0": "json"}

        def output_handles(self, config):
            return {"output-json-0": "json"}

        async def run(self, ctx, config, inputs):
            return BlockResult(outputs={"output-json-0": inputs["input-json-0"]})


    class Seal(Stamp):
        type_name = "seal"


    BLOCKS = [Stamp, Seal()]
    NOTHING = 42


    def register(registry):
        registry.register(Seal())


    def broken(registry):
        raise KeyError("no such setting")
''')


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Iterator[Path]:
    """A module ``stamp_blocks`` and an installed distribution declaring it."""
    with installed_distribution(tmp_path, "stamp_blocks", PLUGIN,
                                {"stamps": "stamp_blocks:BLOCKS"}) as folder:
        yield folder


def test_installed_entry_points_add_their_types(plugin_dir: Path) -> None:
    registry = block_registry()
    assert {"stamp", "seal"} <= set(registry.names())
    assert "function" in registry


def test_blocks_references_take_types_lists_registries_and_functions(plugin_dir: Path) -> None:
    assert "seal" in block_registry(["stamp_blocks:register"], entry_points=False)
    assert "stamp" in block_registry(["stamp_blocks:Stamp"], entry_points=False)
    assert {"stamp", "seal"} <= set(block_registry(["stamp_blocks:BLOCKS"],
                                                   entry_points=False).names())
    own = BlockRegistry()
    sys.modules["stamp_blocks"].OWN = own
    own.register(sys.modules["stamp_blocks"].Stamp())
    assert "stamp" in block_registry(["stamp_blocks:OWN"], entry_points=False)


@pytest.mark.parametrize(("spec", "message"), [
    ("stamp_blocks", "write MODULE:ATTR"),
    ("no_such_module_here:X", "cannot import 'no_such_module_here'"),
    ("stamp_blocks:MISSING", "has no 'MISSING'"),
    ("stamp_blocks:NOTHING", r"holds no block types \(it is int 42\)"),
    ("stamp_blocks:broken", r"calling it with the block registry failed \(KeyError"),
])
def test_bad_references_say_what_to_fix(plugin_dir: Path, spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        block_registry([spec], entry_points=False)


def test_a_type_name_taken_twice_is_refused(plugin_dir: Path) -> None:
    with pytest.raises(UsageError, match="'seal' is already registered"):
        block_registry(["stamp_blocks:register", "stamp_blocks:register"], entry_points=False)


def test_entry_points_are_read_only_when_a_type_is_not_built_in(plugin_dir: Path) -> None:
    (plugin_dir / "stamp_blocks-1.0.dist-info" / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nstamps = stamp_blocks:BLOCKS\nbroken = no_such_plugin_mod:X\n")
    registry = block_registry()
    assert registry.get("start_json").type_name == "start_json"
    assert "function" in registry
    assert installed_plugins.cache_info().misses == 0  # nothing scanned yet
    with pytest.raises(UsageError, match="entry point 'broken' of stamp-blocks does not load"):
        registry.get("stamp")
    with pytest.raises(UsageError, match="entry point 'broken'"):
        registry.names()
