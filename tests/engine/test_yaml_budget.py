"""The nesting scan of :mod:`engine.yaml_budget`: flow collections nested deeper than
the budget are refused before PyYAML's recursive composer sees them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from engine.yaml_budget import (
    MAX_YAML_DEPTH,
    YamlBudgetExceeded,
    check_nesting,
    compose_within_budget,
)


@pytest.mark.parametrize("text", [
    "spec: {blocks: " + "[" * 5000 + "]" * 5000 + "}",
    "[" * 20000,
    "a: {b: " + "{c: " * (MAX_YAML_DEPTH + 1),
])
def test_deep_flow_collections_are_refused(text: str) -> None:
    with pytest.raises(YamlBudgetExceeded, match=f"deeper than {MAX_YAML_DEPTH} levels"):
        check_nesting(text)


@pytest.mark.parametrize("text", [
    "[" * MAX_YAML_DEPTH + "]" * MAX_YAML_DEPTH,
    "a: '" + "[" * 200 + "'",
    "a: 'it''s " + "[" * 200 + "'",
    'a: "\\"' + "{" * 200 + '"',
    "# " + "[" * 200 + "\nb: 1",
    "a: " + "[]" * 5000,
])
def test_quoted_commented_and_shallow_brackets_pass(text: str) -> None:
    check_nesting(text)


def test_compose_turns_deep_block_nesting_into_a_budget_error() -> None:
    deep = "".join(f"{'  ' * i}k:\n" for i in range(2000)) + f"{'  ' * 2000}v\n"
    with pytest.raises(YamlBudgetExceeded, match="deeper than"):
        compose_within_budget(yaml.SafeLoader(deep), deep)
    text = "a: [1, {b: 2}]"
    assert compose_within_budget(yaml.SafeLoader(text), text) is not None


def test_the_cli_refuses_thousands_of_flow_levels_in_one_line(tmp_path: Path) -> None:
    """`stepwell validate` of 20,000 nested brackets: one line, exit 2, no traceback."""
    deep = tmp_path / "deep.yaml"
    deep.write_text("spec: {blocks: " + "[" * 20000 + "]" * 20000 + "}\n")
    done = subprocess.run([sys.executable, "-m", "engine.cli", "validate", str(deep)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "nests deeper than 80 levels" in done.stderr
