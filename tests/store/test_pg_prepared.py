"""Prepared statements on libpq: values arrive intact, errors keep psycopg's classes,
statements deallocated behind the store's back are prepared again, and a connection
the server dropped is replaced."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from engine.contracts.errors import StorageError
from tests.postgres import pg_url  # noqa: F401 - a fixture

psycopg = pytest.importorskip("psycopg")
from psycopg import errors as pg_errors

from store.pg import prepared
from store.pg.connection import PgDatabase, connect
from store.pg.prepared import PreparedStatements

_INSERT = "INSERT INTO t (id, name, amount, n, flag) VALUES ($1, $2, $3, $4, $5)"


@pytest.fixture
def raw(pg_url: str) -> Iterator[Any]:  # noqa: F811
    """An autocommit connection with a table ``t``."""
    conn = connect(pg_url, synchronous_commit=False)
    conn.execute("CREATE TABLE t (id integer PRIMARY KEY, name text, amount float8, "
                  "n bigint, flag boolean)")
    yield conn
    conn.close()


def _names(raw: Any) -> list[str]:
    rows = raw.execute("SELECT name FROM pg_prepared_statements WHERE name LIKE 'stepwell%' "
                       "ORDER BY name").fetchall()
    return [r[0] for r in rows]


def test_values_arrive_as_they_were(raw: Any) -> None:
    statements = PreparedStatements(raw)
    rows = [(1, "Zürich ✓ 'quoted' \\ %s $1", 0.1 + 0.2, 2**62, None),
            (2, None, float("inf"), -7, None), (3, "", -1e-300, 0, None)]
    for row in rows:
        statements.run(_INSERT, row)
    assert raw.execute("SELECT * FROM t ORDER BY id").fetchall() == rows
    assert len(_names(raw)) == 1  # prepared once, run three times


def test_values_libpq_text_cannot_carry_go_through_psycopg(raw: Any) -> None:
    statements = PreparedStatements(raw)
    statements.run(_INSERT, (1, "x", 1.0, 1, True))  # a bool: psycopg adapts it
    assert raw.execute("SELECT flag FROM t").fetchone() == (True,)
    with pytest.raises(psycopg.DataError, match="NUL"):  # never cut short at the NUL
        statements.run(_INSERT, (2, "before\x00after", 1.0, 1, None))
    assert raw.execute("SELECT count(*) FROM t").fetchone() == (1,)


def test_errors_keep_psycopgs_classes(raw: Any) -> None:
    statements = PreparedStatements(raw)
    statements.run(_INSERT, (1, "a", 1.0, 1, None))
    with pytest.raises(pg_errors.UniqueViolation, match="t_pkey"):
        statements.run(_INSERT, (1, "again", 1.0, 1, None))
    with pytest.raises(pg_errors.DivisionByZero):
        statements.run("SELECT 1 / $1::integer", (0,))
    with pytest.raises(pg_errors.UndefinedTable):
        statements.run("SELECT * FROM no_such_table WHERE id = $1", (1,))


def test_statements_deallocated_elsewhere_are_prepared_again(raw: Any) -> None:
    statements = PreparedStatements(raw)
    statements.run(_INSERT, (1, "a", 1.0, 1, None))
    raw.execute("DEALLOCATE ALL")  # what psycopg sends after a ROLLBACK it prepared around
    statements.run(_INSERT, (2, "b", 2.0, 2, None))
    assert raw.execute("SELECT count(*) FROM t").fetchone() == (2,)


def test_the_oldest_statements_are_deallocated(raw: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prepared, "MAX_PREPARED", 2)
    statements = PreparedStatements(raw)
    for n in range(4):
        statements.run(f"SELECT $1::integer + {n}", (n,))
    assert _names(raw) == ["stepwell_2", "stepwell_3"]


def test_a_dropped_connection_is_one_error_then_replaced(pg_url: str) -> None:  # noqa: F811
    db = PgDatabase(pg_url)
    try:
        with db.lock:
            db.execute("CREATE TABLE t (id integer PRIMARY KEY)")
            db.write_statement("INSERT INTO t (id) VALUES ($1)", (1,))
        pid = db.conn.raw.info.backend_pid
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(StorageError, match="lost the connection"), \
                db.lock, db.guard("writing"):
            db.write_statement("INSERT INTO t (id) VALUES ($1)", (2,))
        with db.lock:
            db.write_statement("INSERT INTO t (id) VALUES ($1)", (3,))
            ids = db.execute("SELECT id FROM t ORDER BY id").fetchall()
        assert [r[0] for r in ids] == [1, 3]
    finally:
        db.close()
