"""Pieces both workflow readers share: the diagnostic collector and field checks.

engine.declarative (YAML / JSON ``spec``) and engine.graph_json (Retab graph JSON) read
different shapes into the same :class:`~engine.definition.Workflow`; a block's config,
its layout fields and an edge endpoint are checked the same way in both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.contracts.errors import Diagnostic

Duplicate = tuple[str, int | None]  # (key, line of the second occurrence)


class Reporter:
    """Collects diagnostics while reading; call it with the Diagnostic fields."""

    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []

    def __call__(self, code: str, path: str, message: str, fix: str,
                 severity: str = "error", **details: Any) -> None:
        """Record one diagnostic (see :class:`~engine.contracts.errors.Diagnostic`)."""
        self.diagnostics.append(Diagnostic(code=code, message=message, path=path, fix=fix,
                                           severity=severity, details=details))


def block_config(raw: Any, path: str, report: Reporter) -> dict[str, Any]:
    """A block's ``config`` as a dict.

    Args:
        raw: the ``config`` value as written.
        path: where it is, for the diagnostic.
        report: the collector.

    Returns:
        The config with string keys; ``{}`` when absent, or (with a diagnostic) when it
        is not a mapping.
    """
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        report("INVALID_CONFIG", path, f"config must be a mapping, not {type(raw).__name__}.",
               "Write `config:` followed by indented `key: value` lines.")
        return {}
    return {str(k): v for k, v in raw.items()}


def layout(entry: Mapping[str, Any], path: str, report: Reporter) -> dict[str, Any]:
    """``position``, ``width`` and ``height`` of a block entry.

    Args:
        entry: the block entry as written.
        path: where it is, for diagnostics.
        report: the collector; a malformed field is a warning and is dropped.

    Returns:
        The well-formed layout fields, ready for :class:`BlockDef`.
    """
    out: dict[str, Any] = {}
    position = entry.get("position")
    if position is not None:
        if (isinstance(position, Mapping)
                and all(_is_number(v) for v in position.values())):
            out["position"] = {str(k): float(v) for k, v in position.items()}
        else:
            report("INVALID_LAYOUT", f"{path}.position", "position must be {x: <number>, "
                   "y: <number>}; it is ignored.", "Fix or remove it.", severity="warning")
    for key in ("width", "height"):
        value = entry.get(key)
        if value is None:
            continue
        if _is_number(value):
            out[key] = float(value)
        else:
            report("INVALID_LAYOUT", f"{path}.{key}", f"{key} must be a number; it is ignored.",
                   "Fix or remove it.", severity="warning")
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def checked_endpoint(block: Any, handle: Any, role: str, path: str,
                     report: Reporter) -> tuple[str, str] | None:
    """``(block, handle)`` of an edge endpoint, or None with a diagnostic.

    Args:
        block: the block id as written.
        handle: the handle as written (None or empty: resolved during validation).
        role: ``source`` or ``target``.
        path: where the endpoint is, for the diagnostic.
        report: the collector.

    Returns:
        ``(block id, handle or "")``, or None when the block is missing or the handle is
        not a string.
    """
    if block is None or (isinstance(block, str) and not block):
        report("INVALID_EDGE_ENDPOINT", path, f"The {role} endpoint is missing block.",
               f"Name the {role} block id.")
        return None
    if handle is not None and not isinstance(handle, str):
        report("INVALID_EDGE_ENDPOINT", path.rsplit(".", 1)[0],
               f"The {role} handle must be a string.", "Write a handle id such as "
               "`output-json-0`.")
        return None
    return str(block), handle or ""
