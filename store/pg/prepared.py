"""Running the store's step writes as server-side prepared statements, straight on libpq.

A step's completion is one statement (:mod:`store.pg.writes`), and the chain of a
workflow pays one per step: the client's share of that round trip is most of what
stepwell adds to a committed row. psycopg's ``execute`` adapts every parameter, walks
its generator-based wait loop and keeps its own prepared-statement bookkeeping; here a
statement is prepared once per connection (``PQprepare``) and then executed with its
parameters as text (``PQexecPrepared``, which waits for the result inside libpq with
the GIL released). The server infers each parameter's type when it prepares the
statement, from the columns and casts the statement spells out.

Only ``str``, ``int``, ``float`` and ``None`` go this way; any other value (or a string
holding a NUL, which libpq's text format cannot carry) goes through psycopg, which
adapts it or names what is wrong. Errors are raised as psycopg's exception classes for
their SQLSTATE, so callers handle them as psycopg's own. psycopg deallocates every
prepared statement of a session when it sees a ``ROLLBACK`` go by; a statement found
missing is prepared again.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import DiagnosticField, ExecStatus

#: Prepared statements kept per connection; the oldest is deallocated beyond this.
MAX_PREPARED = 256
_MISSING = "26000"  # invalid_sql_statement_name: no prepared statement by that name
_FAILED = (ExecStatus.FATAL_ERROR, ExecStatus.BAD_RESPONSE, ExecStatus.NONFATAL_ERROR)


class PreparedStatements:
    """Statements prepared on one psycopg connection (autocommit), run by text.

    Args:
        raw: the connection; its session must outlive this object's use.
    """

    __slots__ = ("_counter", "_encoding", "_names", "raw")

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw
        self._encoding = raw.info.encoding
        self._names: dict[str, bytes] = {}
        self._counter = itertools.count()

    def run(self, sql: str, params: Sequence[Any]) -> None:
        """Execute ``sql`` (numbered ``$1`` placeholders) with ``params``, discarding
        any rows; on an autocommit connection, committed when this returns.

        Raises:
            psycopg.Error: the class psycopg has for the error's SQLSTATE.
        """
        values = self._text(params)
        if values is None:
            psycopg.RawCursor(self.raw).execute(sql, params)
            return
        pgconn = self.raw.pgconn
        for attempt in range(2):
            name = self._names.get(sql)
            if name is None:
                name = self._prepare(sql)
            # a None is SQL NULL, which libpq takes (the stub says bytes only)
            result = pgconn.exec_prepared(name, values)  # type: ignore[arg-type]
            if result.status not in _FAILED:
                return
            state = result.error_field(DiagnosticField.SQLSTATE)
            if state is not None and state.decode() == _MISSING and attempt == 0:
                self._names.clear()  # deallocated behind our back: prepare again
                continue
            raise self._error(result.error_message, state)

    def _prepare(self, sql: str) -> bytes:
        pgconn = self.raw.pgconn
        if len(self._names) >= MAX_PREPARED:
            oldest = self._names.pop(next(iter(self._names)))
            pgconn.exec_(b"DEALLOCATE " + oldest)
        name = f"stepwell_{next(self._counter)}".encode()
        result = pgconn.prepare(name, sql.encode(self._encoding))
        if result.status in _FAILED:
            raise self._error(result.error_message,
                              result.error_field(DiagnosticField.SQLSTATE))
        self._names[sql] = name
        return name

    def _text(self, params: Sequence[Any]) -> list[bytes | None] | None:
        """The parameters in PostgreSQL's text format, or None when one is not a plain
        str, int or float."""
        encoding = self._encoding
        out: list[bytes | None] = []
        for value in params:
            kind = type(value)
            if value is None:
                out.append(None)
            elif kind is str:
                if "\x00" in value:
                    return None
                out.append(value.encode(encoding))
            elif kind is int:
                out.append(str(value).encode())
            elif kind is float:
                out.append(repr(value).encode())
            else:
                return None
        return out

    def _error(self, message: bytes, state: bytes | None) -> psycopg.Error:
        text = message.decode(self._encoding, "replace").strip() or "no message"
        if state is None:  # no SQLSTATE: the connection itself failed
            return psycopg.OperationalError(text)
        try:
            cls = pg_errors.lookup(state.decode())
        except KeyError:
            cls = psycopg.DatabaseError
        return cls(text)  # type: ignore[no-any-return]
