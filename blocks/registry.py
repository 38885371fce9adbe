"""BlockRegistry: the table from ``type`` names to block implementations.

The registry is an object handed to the engine, never a module-level global, so an
app can add its own block types (or replace the whole set in tests) without touching
other engines in the same process. Lookup is a dict access; legacy aliases
(``start`` -> ``start_document``, ``functions`` -> ``function``) resolve to the same
implementation while the step keeps the type that was written.

A type may also be registered by where it lives (:meth:`BlockRegistry.register_lazy`,
``"blocks.control:StartJson"``): its module is imported, and the type instantiated, on
the first lookup of its name. The built-in set is registered that way, so a process
that runs one kind of block imports that block's module and no other. A lazy entry
states its name and whether users may write it; both are checked against the class
when it loads.

Types whose discovery costs more than a short run (the installed plugins' entry
points, :mod:`engine.plugins`) may be deferred (:meth:`BlockRegistry.defer`): their
loader runs the first time a name is asked for that is not registered, a new type is
registered, or the names are listed. A workflow of built-in types never runs it.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.contracts.errors import RegistryError

if TYPE_CHECKING:
    from blocks.base import BlockType


class BlockRegistry:
    """Maps block type names to :class:`BlockType` instances."""

    def __init__(self) -> None:
        self._types: dict[str, BlockType] = {}
        self._lazy: dict[str, tuple[str, bool]] = {}
        self._aliases: dict[str, str] = {}
        self._pending: Callable[[BlockRegistry], object] | None = None
        self._settling = False
        self._settle_lock = threading.RLock()

    def defer(self, loader: Callable[[BlockRegistry], object]) -> None:
        """Have ``loader(self)`` register more types when they are first needed: on the
        first lookup of a name not registered, registration of a new name, or listing of
        the names (see the module docstring). It runs once; when it raises, the error
        reaches that caller and the next one runs it again.
        """
        self._pending = loader

    def _settle(self) -> bool:
        """Run the deferred loader, if any; whether types may have been added since the
        caller looked. Threads wait for the one running it; the loader's own lookups
        (same thread) see the registry as it is."""
        if self._pending is None:
            return False
        with self._settle_lock:
            loader = self._pending
            if self._settling:
                return False
            if loader is None:  # another thread has just run it
                return True
            self._settling = True
            try:
                loader(self)
                self._pending = None
            finally:
                self._settling = False
        return True

    def register(self, block_type: BlockType, *, aliases: tuple[str, ...] = ()) -> BlockType:
        """Add a block type (and optional legacy aliases).

        Raises:
            RegistryError: the name or an alias is already registered, or is empty.
        """
        name = block_type.type_name
        if not name:
            raise RegistryError(
                f"{type(block_type).__name__} has no type_name; set the class attribute "
                "`type_name = \"my_block\"` before registering it."
            )
        self._check_free(name, aliases)
        self._types[name] = block_type
        for alias in aliases:
            self._aliases[alias] = name
        return block_type

    def register_lazy(self, name: str, target: str, *, aliases: tuple[str, ...] = (),
                      authorable: bool = True) -> None:
        """Add a block type that is imported on the first lookup of ``name``.

        Args:
            name: the type's ``type_name``.
            target: ``"package.module:ClassName"``; the class is instantiated with no
                arguments.
            aliases: legacy names resolving to it.
            authorable: the class's ``authorable`` (users may write the type).

        Raises:
            RegistryError: the name or an alias is already registered, ``name`` is empty,
                or ``target`` is not ``MODULE:CLASS``.
        """
        module, sep, attr = target.partition(":")
        if not name or not sep or not module or not attr:
            raise RegistryError(
                f"register_lazy({name!r}, {target!r}): give a type name and a target "
                "written MODULE:CLASS, e.g. register_lazy('my_block', 'app.blocks:MyBlock')."
            )
        self._check_free(name, aliases)
        self._lazy[name] = (target, authorable)
        for alias in aliases:
            self._aliases[alias] = name

    def _check_free(self, name: str, aliases: tuple[str, ...]) -> None:
        for key in (name, *aliases):
            if key in self:
                canonical = self.canonical(key)
                owner = (type(self._types[canonical]).__name__ if canonical in self._types
                         else self._lazy[canonical][0].rpartition(":")[2])
                raise RegistryError(
                    f"Block type {key!r} is already registered (by {owner}). Pick another "
                    "type_name, or build a fresh registry with `BlockRegistry()` to replace "
                    "built-ins."
                )

    def get(self, name: str) -> BlockType:
        """Return the implementation of ``name`` (aliases resolved).

        Raises:
            RegistryError: the type is unknown (the message lists the known types), or a
                lazily registered type does not load as declared.
        """
        impl = self._types.get(name)
        if impl is not None:
            return impl
        canonical = self._aliases.get(name, name)
        impl = self._types.get(canonical)
        if impl is not None:
            return impl
        if canonical in self._lazy or canonical in self._types:
            return self._load(canonical)
        if self._settle():
            return self.get(name)
        raise RegistryError(
            f"Unknown block type {name!r}. Known types: {', '.join(self.names())}. "
            "Register custom types with `registry.register(MyBlock())`."
        )

    def _load(self, name: str) -> BlockType:
        """Import and instantiate the lazy entry ``name``; it then stays registered.

        Threads may race here (a server's requests share one registry): the entry moves
        to the loaded types before it leaves the lazy ones, and the first instance
        stored is the one every caller gets.
        """
        entry = self._lazy.get(name)
        if entry is None:  # another thread has just loaded it
            return self._types[name]
        target, authorable = entry
        module, _, attr = target.partition(":")
        impl = getattr(importlib.import_module(module), attr)()
        if impl.type_name != name or impl.authorable != authorable:
            raise RegistryError(
                f"{target} was registered as {name!r} (authorable={authorable}) but its "
                f"class says type_name={impl.type_name!r}, authorable={impl.authorable}. "
                "Make the register_lazy call match the class."
            )
        impl = self._types.setdefault(name, impl)
        self._lazy.pop(name, None)
        return impl

    def __contains__(self, name: object) -> bool:
        if name in self._types or name in self._lazy or name in self._aliases:
            return True
        return self._settle() and (
            name in self._types or name in self._lazy or name in self._aliases)

    def canonical(self, name: str) -> str:
        """The registered name behind an alias (or ``name`` itself)."""
        if name not in self._aliases and name not in self._types and name not in self._lazy:
            self._settle()
        return self._aliases.get(name, name)

    def names(self, *, authorable_only: bool = True) -> list[str]:
        """Sorted type names (and aliases), optionally only those users may write.

        Lazily registered types are listed without being imported.
        """
        self._settle()
        names = [n for n in (*self._types, *self._lazy)
                 if self._authorable(n) or not authorable_only]
        names += [a for a, n in self._aliases.items() if self._authorable(n)]
        return sorted(names)

    def _authorable(self, name: str) -> bool:
        entry = self._lazy.get(name)  # lazy first: a loading entry is in _types already
        return entry[1] if entry is not None else self._types[name].authorable

    def copy(self) -> BlockRegistry:
        """A new registry with the same entries, to extend without touching this one."""
        clone = BlockRegistry()
        clone._types = dict(self._types)
        clone._lazy = dict(self._lazy)
        clone._aliases = dict(self._aliases)
        clone._pending = self._pending
        return clone


def default_registry() -> BlockRegistry:
    """A fresh registry holding every built-in block type."""
    from blocks import builtin

    registry = BlockRegistry()
    builtin.register_all(registry)
    return registry
