"""Fixtures for the store tests: every store implementation, each on its own database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from store.sqlite import SQLiteStore


@pytest.fixture(params=["file", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLiteStore]:
    """The store contract suite runs against a file-backed and an in-memory SQLite."""
    path = str(tmp_path / "stepwell.db") if request.param == "file" else ":memory:"
    st = SQLiteStore(path)
    yield st
    st.close()


@pytest.fixture
def file_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A file-backed store (for tests about the file itself)."""
    st = SQLiteStore(tmp_path / "stepwell.db")
    yield st
    st.close()
