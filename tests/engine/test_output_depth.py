"""A block output or artifact nested deeper than the JSON depth cap fails the step
(``OUTPUT_TOO_DEEP``) instead of reaching storage and breaking every listing of the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.contracts.bounded import MAX_JSON_DEPTH
from engine.core import Engine
from tests.engine.security_server import python_workflow


def deep(data: Any) -> dict[str, Any]:
    """An object nested 300 levels deep."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(300):
        value = {"x": value}
    return value


def shallow(data: Any) -> dict[str, Any]:
    """An object nested just under the cap."""
    value: Any = 1
    for _ in range(MAX_JSON_DEPTH - 1):
        value = {"x": value}
    return value


def workflow(tmp_path: Path, function: str) -> Path:
    path = tmp_path / f"{function}.yaml"
    path.write_text(python_workflow(f"tests.engine.test_output_depth:{function}"))
    return path


def test_a_too_deep_output_fails_the_step(tmp_path: Path) -> None:
    with Engine(tmp_path / "db") as engine:
        result = engine.run(workflow(tmp_path, "deep"), {"data": {}})
        assert result.status == "error"
        steps = {s.block_id: s for s in result.steps()}
        error = steps["work"].lifecycle
        assert error.status == "error" and error.details is not None
        assert error.details.error_code == "OUTPUT_TOO_DEEP"
        assert f"at most {MAX_JSON_DEPTH} levels" in error.message


def test_an_output_under_the_cap_completes(tmp_path: Path) -> None:
    with Engine(tmp_path / "db") as engine:
        assert engine.run(workflow(tmp_path, "shallow"), {"data": {}}).status == "completed"
