"""The PostgreSQL server the tests use, and a fresh schema per test.

Tests that need PostgreSQL take the ``pg_url`` fixture: a URL reaching an empty schema
of its own in the server ``$STEPWELL_TEST_POSTGRES_URL`` names, dropped after the test.
Without that variable they skip, saying how to provide a server; with
``STEPWELL_REQUIRE_POSTGRES=1`` (CI sets it) they fail instead of skipping.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from engine.contracts.store import Store

URL_ENV = "STEPWELL_TEST_POSTGRES_URL"
REQUIRE_ENV = "STEPWELL_REQUIRE_POSTGRES"
HOW = (f"set {URL_ENV}=postgresql://USER:PASSWORD@HOST:PORT/DATABASE (a user that may "
       "create schemas in it) to run the PostgreSQL tests; `eval \"$(.ci/postgres)\"` "
       "starts a local server and sets it")


def server_url() -> str:
    """The test server's URL; skips (or fails when required) without one."""
    url = os.environ.get(URL_ENV)
    if not url:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"PostgreSQL tests are required here: {HOW}")
        pytest.skip(HOW)
    return url


def fresh_schema() -> tuple[str, str]:
    """``(schema, url)`` of a new empty schema in the test server."""
    from store.pg.scratch import create_schema

    return create_schema(server_url())


def drop(schema: str) -> None:
    """Drop a schema :func:`fresh_schema` made."""
    from store.pg.scratch import drop_schema

    drop_schema(server_url(), schema)


_CREATED: list[str] = []


def open_postgres() -> Store:
    """A PostgreSQL store on a fresh schema, dropped by :func:`drop_created`."""
    from store.pg import PostgresStore

    schema, url = fresh_schema()
    _CREATED.append(schema)
    return PostgresStore(url)


def drop_created() -> None:
    """Drop every schema :func:`open_postgres` made."""
    while _CREATED:
        drop(_CREATED.pop())


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL reaching an empty schema of this test's own (dropped afterwards)."""
    schema, url = fresh_schema()
    try:
        yield url
    finally:
        drop(schema)
