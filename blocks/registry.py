"""BlockRegistry: the table from ``type`` names to block implementations.

The registry is an object handed to the engine, never a module-level global, so an
app can add its own block types (or replace the whole set in tests) without touching
other engines in the same process. Lookup is a dict access; legacy aliases
(``start`` -> ``start_document``, ``functions`` -> ``function``) resolve to the same
implementation while the step keeps the type that was written.
"""

from __future__ import annotations

from blocks.base import BlockType
from engine.contracts.errors import RegistryError


class BlockRegistry:
    """Maps block type names to :class:`BlockType` instances."""

    def __init__(self) -> None:
        self._types: dict[str, BlockType] = {}
        self._aliases: dict[str, str] = {}

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
        for key in (name, *aliases):
            if key in self._types or key in self._aliases:
                raise RegistryError(
                    f"Block type {key!r} is already registered "
                    f"(by {type(self.get(key)).__name__}). Pick another type_name, or build "
                    "a fresh registry with `BlockRegistry()` to replace built-ins."
                )
        self._types[name] = block_type
        for alias in aliases:
            self._aliases[alias] = name
        return block_type

    def get(self, name: str) -> BlockType:
        """Return the implementation of ``name`` (aliases resolved).

        Raises:
            RegistryError: the type is unknown; the message lists the known types.
        """
        impl = self._types.get(name)
        if impl is None:
            canonical = self._aliases.get(name)
            if canonical is not None:
                return self._types[canonical]
            raise RegistryError(
                f"Unknown block type {name!r}. Known types: {', '.join(self.names())}. "
                "Register custom types with `registry.register(MyBlock())`."
            )
        return impl

    def __contains__(self, name: object) -> bool:
        return name in self._types or name in self._aliases

    def canonical(self, name: str) -> str:
        """The registered name behind an alias (or ``name`` itself)."""
        return self._aliases.get(name, name)

    def names(self, *, authorable_only: bool = True) -> list[str]:
        """Sorted type names (and aliases), optionally only those users may write."""
        names = [n for n, t in self._types.items() if t.authorable or not authorable_only]
        names += [a for a, n in self._aliases.items() if self._types[n].authorable]
        return sorted(names)

    def copy(self) -> BlockRegistry:
        """A new registry with the same entries, to extend without touching this one."""
        clone = BlockRegistry()
        clone._types = dict(self._types)
        clone._aliases = dict(self._aliases)
        return clone


def default_registry() -> BlockRegistry:
    """A fresh registry holding every built-in block type."""
    from blocks import builtin

    registry = BlockRegistry()
    builtin.register_all(registry)
    return registry
