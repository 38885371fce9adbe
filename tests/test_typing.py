"""The three packages type-check: ``mypy`` (configured in pyproject.toml) finds no error.

mypy runs in a fresh interpreter from the project root, so it reads the ``[tool.mypy]``
table there (files ``engine``, ``blocks``, ``store``; tests, bench and examples are not
checked). Its incremental cache (``.mypy_cache/``, ignored by git) makes a second run
take a few seconds; the first takes about half a minute.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_packages_type_check() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, env=env, text=True,
                            capture_output=True, timeout=600, check=False)
    assert result.returncode == 0, (
        "mypy found type errors; run `mypy` in the project root and fix them:\n"
        + result.stdout + result.stderr)


def test_mypy_checks_exactly_the_three_packages() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert config["files"] == ["engine", "blocks", "store"]
