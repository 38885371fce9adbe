"""The layers of the code base, checked by the import-linter contracts in pyproject.toml.

The rules (see docs/architecture.md): ``engine.contracts`` imports nothing of the
project; ``blocks`` and ``store`` import from ``engine`` only ``engine.contracts`` and
never each other; the scheduler and its helpers import only ``engine.contracts`` and each
other (no networkx, no pydantic, no I/O libraries); the engine's core never imports the
CLI or the server.

import-linter has no "every module except" form, so some contracts list the engine's
modules one by one; :func:`test_every_engine_module_is_placed_in_the_contracts` fails
when a module is added or removed without updating those lists.

The contracts run in a fresh interpreter, through import-linter's Python entry point
(``importlinter.cli.lint_imports``), with its cache off so that a result is never stale.
A fresh interpreter because that entry point configures logging for the whole process,
and because grimp locates packages through ``sys.modules``: a copy of the packages can
only be linted where the originals were never imported.
"""

from __future__ import annotations

import os
import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
PACKAGES = ("engine", "blocks", "store")
LINT = ("import sys\n"
        "from importlinter.cli import lint_imports\n"
        "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))\n")
#: Contracts that must name every engine module but these (which they allow on purpose).
EVERY_ENGINE_MODULE_BUT = {
    "contracts-leaf": {"engine.contracts"},
    "blocks-store-use-contracts": {"engine.contracts"},
    "scheduler-light": {"engine.contracts"},
    "core-not-ui": set(),
}


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    """Check the contracts of ``root/pyproject.toml`` against the packages under ``root``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["COLUMNS"] = "200"  # rich wraps at the terminal width: keep each import on one line
    return subprocess.run([sys.executable, "-c", LINT], cwd=root, env=env, text=True,
                          capture_output=True, timeout=300, check=False)


def contracts() -> dict[str, dict[str, Any]]:
    """The import-linter contracts of pyproject.toml, by id."""
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    return {contract["id"]: contract for contract in config["contracts"]}


def engine_modules() -> set[str]:
    """The engine's direct submodules and subpackages, as import-linter names them."""
    return {f"engine.{m.name}" for m in pkgutil.iter_modules([str(ROOT / "engine")])}


def is_ui(module: str) -> bool:
    """The CLI (``engine.cli``, ``engine.cli_*``) and the HTTP server."""
    return module.startswith("engine.cli") or module == "engine.server"


def test_import_contracts_hold() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_engine_module_is_placed_in_the_contracts() -> None:
    present = engine_modules()
    by_id = contracts()
    assert set(EVERY_ENGINE_MODULE_BUT) <= set(by_id)
    for contract_id, allowed in EVERY_ENGINE_MODULE_BUT.items():
        contract = by_id[contract_id]
        named = {m for key in ("source_modules", "forbidden_modules")
                 for m in contract.get(key, ()) if m.startswith("engine.")}
        missing = sorted(present - named - allowed)
        gone = sorted(named - present)
        assert not missing, (f"pyproject.toml, contract {contract_id!r}: add {missing} to its "
                             "source_modules or forbidden_modules")
        assert not gone, f"pyproject.toml, contract {contract_id!r}: {gone} no longer exist"
    ui = by_id["core-not-ui"]
    assert set(ui["forbidden_modules"]) == {m for m in present if is_ui(m)}
    assert set(ui["source_modules"]) == {m for m in present if not is_ui(m)}


@pytest.mark.parametrize(("module", "line", "named"), [
    ("blocks/base.py", "import engine.core", "blocks.base -> engine.core"),
    ("store/__init__.py", "import blocks.registry", "store -> blocks.registry"),
    ("engine/contracts/__init__.py", "import engine.runner", "engine.contracts -> engine.runner"),
    ("engine/scheduler.py", "import networkx", "engine.scheduler -> networkx"),
    ("engine/core.py", "import engine.cli_support", "engine.core -> engine.cli_support"),
])
def test_a_back_edge_breaks_the_contracts(tmp_path: Path, module: str, line: str,
                                          named: str) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PYPROJECT, tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(f"{target.read_text()}\n{line}  # a deliberate back-edge\n")

    result = lint(tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout
    assert named in result.stdout, result.stdout
