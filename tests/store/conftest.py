"""Fixtures for the store tests: every store implementation, each on its own database.

A new implementation joins the contract suite by adding one entry to :data:`OPENERS`:
a function that opens a fresh, empty store in the test's temporary folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.contracts.store import Store
from store.memory import MemoryStore
from store.sqlite import SQLiteStore

#: Store kind -> how to open a fresh one in a temporary folder (the ``n``-th of the test).
OPENERS: dict[str, Callable[[Path, int], Store]] = {
    "sqlite-file": lambda tmp, n: SQLiteStore(tmp / f"stepwell-{n}.db"),
    "sqlite-memory": lambda tmp, n: SQLiteStore(":memory:"),
    "memory": lambda tmp, n: MemoryStore(),
}

StoreFactory = Callable[[], Store]


@pytest.fixture(params=sorted(OPENERS))
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens fresh stores of one kind (closed after the test)."""
    opened: list[Store] = []

    def open_store() -> Store:
        opened.append(OPENERS[request.param](tmp_path, len(opened)))
        return opened[-1]

    yield open_store
    for st in opened:
        st.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> Store:
    """The store under test: every implementation in turn."""
    return store_factory()


@pytest.fixture
def file_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A file-backed SQLite store (for tests about the file itself)."""
    st = SQLiteStore(tmp_path / "stepwell.db")
    yield st
    st.close()
