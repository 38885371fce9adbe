"""Throwaway schemas: a fresh, empty stepwell database inside a shared PostgreSQL one.

Tests (and the pytest plugin) must never share a database: each gets a schema of its
own in the server the environment names, reached through libpq's ``search_path``
option, and dropped afterwards::

    with scratch_schema(os.environ["STEPWELL_TEST_POSTGRES_URL"]) as url:
        store = PostgresStore(url)   # tables go to the new schema
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from store.pg.connection import connect

#: Every scratch schema's name starts with this.
PREFIX = "stepwell_scratch_"


def with_search_path(url: str, schema: str) -> str:
    """``url`` with ``schema`` first on its ``search_path`` (libpq ``options``)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    options = dict(parse_qsl(parts.query)).get("options", "")
    query.append(("options", f"-csearch_path={schema} {options}".strip()))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def create_schema(url: str) -> tuple[str, str]:
    """Create a fresh empty schema.

    Returns:
        ``(schema, url)``: its name, and ``url`` reaching it.

    Raises:
        StorageError: the server cannot be reached or refuses.
    """
    schema = PREFIX + os.urandom(6).hex()
    conn = connect(url, synchronous_commit=False)
    try:
        conn.execute(f"CREATE SCHEMA {schema}")
    finally:
        conn.close()
    return schema, with_search_path(url, schema)


def drop_schema(url: str, schema: str) -> None:
    """Drop ``schema`` and everything in it."""
    conn = connect(url, synchronous_commit=False)
    try:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        conn.close()


@contextmanager
def scratch_schema(url: str) -> Iterator[str]:
    """A URL reaching a fresh empty schema of ``url``'s database, dropped on exit."""
    schema, scratch = create_schema(url)
    try:
        yield scratch
    finally:
        drop_schema(url, schema)
