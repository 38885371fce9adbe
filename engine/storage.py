"""Which store an Engine writes to: one the caller gave, or one it opens from ``db``.

A given store (any implementation of :class:`~engine.contracts.store.Store`) belongs to
the caller: the Engine never closes it. A store the Engine opens (a SQLite file or a
PostgreSQL URL, through :func:`store.urls.open_store`) is opened on first use, closed by
``Engine.close`` and opened again on the next use, except an in-memory one: closing it
drops its runs, so using it afterwards is refused.
"""

from __future__ import annotations

import threading

from engine.contracts.errors import UsageError
from engine.contracts.store import Store


class StoreSlot:
    """Holds an Engine's store (see the module docstring).

    Args:
        db: the database (SQLite path or PostgreSQL URL), when no store is given.
        store: the caller's store.
        durability: ``process``, ``full`` or ``scratch``.
    """

    def __init__(self, db: str | None, store: Store | None, durability: str) -> None:
        self._db = db
        self._given = store
        self._durability = durability
        self._opened: Store | None = None
        self._lock = threading.Lock()
        self._memory_closed = False

    def get(self) -> Store:
        """The store, opening it from ``db`` if needed.

        Raises:
            UsageError: an in-memory database was closed: its runs are gone.
            StorageError: the database cannot be opened.
        """
        if self._given is not None:
            return self._given
        if self._opened is None:
            with self._lock:
                if self._opened is None:
                    self._opened = self._open()
        return self._opened

    def _open(self) -> Store:
        if self._memory_closed:
            raise UsageError(
                "This engine's in-memory database was closed, and its runs with "
                "it. Read results before closing (inside `with Engine(':memory:')"
                "`), or use a database file.")
        from store.urls import open_store

        assert self._db is not None
        return open_store(self._db, durability=self._durability)

    def close(self) -> None:
        """Close the store the Engine opened, if open (a given store stays open)."""
        if self._opened is not None:
            self._memory_closed = self._opened.in_memory
            self._opened.close()
            self._opened = None
