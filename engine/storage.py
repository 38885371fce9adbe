"""Which store an Engine writes to: one the caller gave, or a SQLite file it opens itself.

A given store (any implementation of :class:`~engine.contracts.store.Store`) belongs to
the caller: the Engine never closes it. A SQLite store is opened on first use, closed by
``Engine.close`` and opened again on the next use, except an in-memory one: closing it
drops its runs, so using it afterwards is refused.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from engine.contracts.errors import UsageError
from engine.contracts.store import Store

if TYPE_CHECKING:
    from store.sqlite import SQLiteStore


class StoreSlot:
    """Holds an Engine's store (see the module docstring).

    Args:
        db: the SQLite database path, when no store is given.
        store: the caller's store.
        durability: the SQLite durability (``process`` or ``full``).
    """

    def __init__(self, db: str | None, store: Store | None, durability: str) -> None:
        self._db = db
        self._given = store
        self._durability = durability
        self._sqlite: SQLiteStore | None = None
        self._lock = threading.Lock()
        self._memory_closed = False

    def get(self) -> Store:
        """The store, opening the SQLite one if needed.

        Raises:
            UsageError: an in-memory database was closed: its runs are gone.
            StorageError: the database cannot be opened.
        """
        if self._given is not None:
            return self._given
        if self._sqlite is None:
            with self._lock:
                if self._sqlite is None:
                    self._sqlite = self._open()
        return self._sqlite

    def _open(self) -> SQLiteStore:
        if self._memory_closed:
            raise UsageError(
                "This engine's in-memory database was closed, and its runs with "
                "it. Read results before closing (inside `with Engine(':memory:')"
                "`), or use a database file.")
        from store.sqlite import SQLiteStore

        assert self._db is not None
        return SQLiteStore(self._db, durability=self._durability)

    def close(self) -> None:
        """Close the SQLite store if it is open (a given store stays open)."""
        if self._sqlite is not None:
            self._memory_closed = self._sqlite.in_memory
            self._sqlite.close()
            self._sqlite = None
