"""The stepwell pytest plugin (registered through the ``pytest11`` entry point).

Fixtures:

* ``stepwell_engine``: an :class:`~engine.core.Engine` on a fresh database of its own,
  retrying transient errors without waiting (:data:`engine.testing.INSTANT_RETRY`). Set
  ``stepwell_engine.stubs`` or ``stepwell_engine.services`` in the test to stub blocks
  or swap the model provider.
* ``stepwell_client``: the read client over that engine's database.
* ``stepwell_db``: the database: a fresh SQLite file in the test's temporary folder; or,
  when ``$STEPWELL_DB`` names a PostgreSQL database, a fresh schema of its own in that
  database (a ``postgresql://`` URL), dropped after the test. Tests never share a
  database either way.

stepwell itself is imported only when a fixture is used, so the plugin costs nothing in
test sessions that do not use it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from engine.core import Engine


@pytest.fixture
def stepwell_db(tmp_path: Path) -> Iterator[Path | str]:
    """The test's stepwell database: a fresh SQLite file in ``tmp_path``, or a fresh
    PostgreSQL schema when ``$STEPWELL_DB`` is a ``postgresql://`` URL."""
    from store.urls import Backend, parse_db

    configured = os.environ.get("STEPWELL_DB")
    if not configured or parse_db(configured).backend is not Backend.POSTGRESQL:
        yield tmp_path / "stepwell.db"
        return
    from store.pg.scratch import scratch_schema

    with scratch_schema(parse_db(configured).target) as url:
        yield url


@pytest.fixture
def stepwell_engine(stepwell_db: Path | str) -> Iterator[Engine]:
    """An Engine on ``stepwell_db`` with instant retries, never fsynced (``scratch``
    durability: the database is thrown away); closed after the test."""
    from engine.core import Engine
    from engine.testing import INSTANT_RETRY

    with Engine(stepwell_db, retry=INSTANT_RETRY, durability="scratch") as engine:
        yield engine


@pytest.fixture
def stepwell_client(stepwell_engine: Engine) -> Any:
    """The read client (``client.workflows.steps.list(run_id)``) of ``stepwell_engine``."""
    return stepwell_engine.client
