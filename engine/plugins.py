"""Block types from outside stepwell: entry points, ``--blocks MODULE:ATTR``, the cwd.

An application that defines its own block types makes them known to the command line
and to ``stepwell serve`` in one of two ways:

* an installed package declares them in the ``stepwell.blocks`` entry-point group
  (``[project.entry-points."stepwell.blocks"] billing = "billing.blocks:BLOCKS"``);
  every command that loads workflows picks them up. Reading every installed package's
  entry points costs more than a short run, so it happens when first needed: when a
  workflow names a type that is not built in, a ``--blocks`` type is added, or the
  types are listed (:meth:`~blocks.registry.BlockRegistry.defer`);
* a command names them: ``--blocks MODULE:ATTR`` (repeatable), e.g.
  ``stepwell validate examples/fastapi_sse/workflow.yaml --blocks
  examples.fastapi_sse.app:ExpensePolicy``.

Either way the target may be a :class:`~blocks.registry.BlockRegistry` (its types are
added), a :class:`~blocks.base.BlockType` subclass or instance, a list or tuple of those,
or a function that takes the registry and registers what it wants. Modules are imported
with the current directory on ``sys.path`` (:func:`importable_cwd`), as ``python -m``
does, so a ``python: mymodule:fn`` reference resolves in ``stepwell run`` exactly as in
``stepwell validate``.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

from blocks.base import BlockType
from blocks.registry import BlockRegistry, default_registry
from engine.contracts.errors import RegistryError, UsageError

#: The entry-point group packages declare their block types in.
ENTRY_POINT_GROUP = "stepwell.blocks"


def importable_cwd() -> None:
    """Put the current directory first on ``sys.path`` (as ``python -m`` does), once."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def block_registry(blocks: Sequence[str] = (), *, entry_points: bool = True) -> BlockRegistry:
    """The built-in block types, plus installed plugins and the ``--blocks`` targets.

    Args:
        blocks: ``MODULE:ATTR`` references, in command-line order.
        entry_points: also load the ``stepwell.blocks`` entry points (when first
            needed, see the module docstring).

    Returns:
        A fresh registry.

    Raises:
        UsageError: a module does not import, an attribute is missing or holds no block
            types, or two sources register the same type name. An entry point's fault
            is raised where the registry first needs the entry points.
    """
    registry = default_registry()
    if entry_points:
        registry.defer(add_installed)
    for spec in blocks:
        importable_cwd()
        add_blocks(registry, resolve(spec), f"--blocks {spec}")
    return registry


def add_installed(registry: BlockRegistry) -> None:
    """Register the block types of every ``stepwell.blocks`` entry point on ``registry``.

    Raises:
        UsageError: an entry point does not load, holds no block types, or takes a type
            name already registered.
    """
    for name, value, origin in installed_plugins():
        add_blocks(registry, value, f"entry point {name!r} ({origin})")


def resolve(spec: str) -> Any:
    """The object ``MODULE:ATTR`` names (``ATTR`` may be dotted).

    Raises:
        UsageError: ``spec`` is malformed, the module does not import, or it has no
            such attribute.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"--blocks {spec!r}: write MODULE:ATTR, e.g. "
                         "--blocks myapp.blocks:REGISTRY (a BlockRegistry, a BlockType, a list "
                         "of them, or a function taking the registry).")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's to fix
        raise UsageError(f"--blocks {spec}: cannot import {module_name!r} "
                         f"({type(exc).__name__}: {exc}). Run from the directory that holds "
                         "it, or install its package.") from None
    for part in attr.split("."):
        if not hasattr(target, part):
            raise UsageError(f"--blocks {spec}: module {module_name!r} has no {attr!r}. "
                             "Name the attribute that holds the block types.")
        target = getattr(target, part)
    return target


def add_blocks(registry: BlockRegistry, value: Any, origin: str) -> list[str]:
    """Register the block types ``value`` holds (see the module docstring).

    Args:
        registry: where to add them.
        value: a registry, a BlockType class or instance, a list/tuple of them, or a
            function taking the registry.
        origin: how the user named ``value``, for error messages.

    Returns:
        The type names added.

    Raises:
        UsageError: ``value`` holds no block types, or a type name is taken.
    """
    before = set(registry.names(authorable_only=False))
    try:
        for block_type in _block_types(value, registry, origin):
            if block_type.type_name in registry and \
                    type(registry.get(block_type.type_name)) is type(block_type):
                continue  # the same type again (a registry copied from the defaults)
            registry.register(block_type)
    except RegistryError as exc:
        raise UsageError(f"{origin}: {exc}") from None
    return sorted(set(registry.names(authorable_only=False)) - before)


def _block_types(value: Any, registry: BlockRegistry, origin: str) -> Iterable[BlockType]:
    if isinstance(value, BlockRegistry):
        return [value.get(name) for name in value.names(authorable_only=False)
                if value.canonical(name) == name]
    if inspect.isclass(value) and issubclass(value, BlockType):
        return [value()]
    if isinstance(value, BlockType):
        return [value]
    if isinstance(value, list | tuple):
        found: list[BlockType] = []
        for item in value:
            found += _block_types(item, registry, origin)
        return found
    if inspect.isroutine(value):
        try:
            value(registry)
        except (RegistryError, UsageError):
            raise
        except Exception as exc:  # the user's function: say whose fault and what to do
            raise UsageError(
                f"{origin}: calling it with the block registry failed "
                f"({type(exc).__name__}: {exc}). A function given to --blocks takes the "
                "registry and registers block types on it; or point --blocks at a "
                "BlockRegistry, a BlockType or a list of them.") from None
        return []
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:39] + "…"
    raise UsageError(f"{origin} holds no block types (it is {type(value).__name__} {shown}). "
                     "Point it at a BlockRegistry, a BlockType, a list of them, or a "
                     "function taking the registry.")


@cache
def installed_plugins() -> tuple[tuple[str, Any, str], ...]:
    """``(name, loaded value, distribution)`` of every ``stepwell.blocks`` entry point.

    Raises:
        UsageError: an entry point does not load (the message names its package).
    """
    from importlib.metadata import entry_points

    found: list[tuple[str, Any, str]] = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        dist = point.dist.name if point.dist is not None else "unknown package"
        try:
            value = point.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin is named, not hidden
            raise UsageError(f"The stepwell.blocks entry point {point.name!r} of {dist} does "
                             f"not load ({type(exc).__name__}: {exc}). Fix or uninstall "
                             f"{dist}.") from None
        found.append((point.name, value, dist))
    return tuple(found)
