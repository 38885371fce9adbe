"""The stepwell pytest plugin (registered through the ``pytest11`` entry point).

Fixtures:

* ``stepwell_engine``: an :class:`~engine.core.Engine` on a fresh SQLite file in the
  test's temporary folder, retrying transient errors without waiting
  (:data:`engine.testing.INSTANT_RETRY`). Set ``stepwell_engine.stubs`` or
  ``stepwell_engine.services`` in the test to stub blocks or swap the model provider.
* ``stepwell_client``: the read client over that engine's database.
* ``stepwell_db``: the database path.

stepwell itself is imported only when a fixture is used, so the plugin costs nothing in
test sessions that do not use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from engine.core import Engine


@pytest.fixture
def stepwell_db(tmp_path: Path) -> Path:
    """Path of the test's stepwell database: a fresh file in ``tmp_path``."""
    return tmp_path / "stepwell.db"


@pytest.fixture
def stepwell_engine(stepwell_db: Path) -> Iterator[Engine]:
    """An Engine on ``stepwell_db`` with instant retries; closed after the test."""
    from engine.core import Engine
    from engine.testing import INSTANT_RETRY

    with Engine(stepwell_db, retry=INSTANT_RETRY) as engine:
        yield engine


@pytest.fixture
def stepwell_client(stepwell_engine: Engine) -> Any:
    """The read client (``client.workflows.steps.list(run_id)``) of ``stepwell_engine``."""
    return stepwell_engine.client
