"""stepwell: run Retab-style document workflows locally, every step persisted.

The public names are imported lazily so that ``stepwell --help`` stays fast::

    from engine import Engine, Workflow, RetryPolicy
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Engine": "engine.core",
    "RunResult": "engine.core",
    "RunHandle": "engine.handle",
    "Workflow": "engine.definition",
    "load_workflow": "engine.definition",
    "RetryPolicy": "engine.options",
    "compile_workflow": "engine.graph",
    "validate_workflow": "engine.graph",
    "Payload": "engine.contracts.values",
    "FileRef": "engine.contracts.values",
}

__all__ = [
    "Engine", "FileRef", "Payload", "RetryPolicy", "RunHandle", "RunResult",
    "Workflow", "compile_workflow", "load_workflow", "validate_workflow",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    return getattr(import_module(module), name)
