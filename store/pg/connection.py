"""Connecting to PostgreSQL, running the store's transactions, and naming what went wrong.

:class:`PgDatabase` is the PostgreSQL counterpart of :class:`store.connection.Database`:
one psycopg connection (autocommit, each write an explicit transaction) with its lock
and error boundary, offering the same ``read`` / ``write`` / ``guard`` / ``execute``
calls, so the store's shared query code (reviews, the workflow registry, the read
queries) runs on it unchanged.

That code is written for SQLite; :class:`PgConnection` runs it on PostgreSQL. Once per
statement text (:func:`pg_sql`), ``?`` placeholders become psycopg's ``%s``,
``INSERT OR IGNORE`` becomes ``ON CONFLICT DO NOTHING``, ``INSERT OR REPLACE`` an
upsert on the table's primary key and ``LIKE`` (case-blind in SQLite) ``ILIKE``;
``json_extract`` is a function of the PostgreSQL layout
(:data:`~store.pg.layout.PG_FUNCTIONS`); a ``LIMIT ?`` of -1 (SQLite's "no limit") is
sent as NULL (PostgreSQL's). Errors are psycopg's own: the PostgreSQL store catches
the ones it expects (a unique violation when a run exists, a failed self-check when a
step moved) by their psycopg class.

Writes retry on serialization failures and deadlocks (``40001``, ``40P01``); a broken
connection (the server restarted) is replaced on the next call. Every psycopg error is
translated here into :class:`~engine.contracts.errors.StorageError` whose message names
the server (password hidden), what went wrong and the fix (:func:`pg_storage_error`).

Durability: ``process`` sets ``synchronous_commit = off`` for the session: a commit is
visible to every reader and survives any crash of a stepwell process, and commits stay
in order, but a crash of the PostgreSQL server itself may drop the last moments of
commits. ``full`` keeps the server's ``synchronous_commit`` (on by default): a commit
returns once flushed to disk. ``scratch`` (SQLite's no-fsync level, for databases thrown
away) is ``process`` here: fsyncs are the server's, and a session cannot turn them off.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
from psycopg import errors as pg_errors

from engine.contracts.errors import StepwellError, StorageError
from store.pg.layout import PG_DDL
from store.pg.prepared import PreparedStatements
from store.urls import redact

#: Seconds a connection attempt may take unless the URL says ``connect_timeout``.
CONNECT_TIMEOUT_S = 10
_RETRYABLE = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)
_SQL_CACHE: dict[str, str] = {}
_INSERT_OR = re.compile(r"^\s*INSERT OR (IGNORE|REPLACE) INTO (\w+) \(([^)]*)\)", re.IGNORECASE)
#: Table -> its primary key columns (the conflict target of ``INSERT OR REPLACE``).
PRIMARY_KEYS: dict[str, str] = {
    statement.split()[5]: match.group(1)
    for statement in PG_DDL
    if (match := re.search(r"PRIMARY KEY \(([^)]*)\)", statement))
}


def pg_sql(sql: str) -> str:
    """``sql`` (SQLite's dialect, ``?`` placeholders) as PostgreSQL runs it through
    psycopg; cached per text (see the module docstring)."""
    found = _SQL_CACHE.get(sql)
    if found is None:
        found = _SQL_CACHE[sql] = _translate(sql)
    return found


def _translate(sql: str) -> str:
    text = sql.replace("%", "%%")
    match = _INSERT_OR.match(text)
    if match is not None:
        kind, table, columns = match.groups()
        head = f"INSERT INTO {table} ({columns})"
        text, tail = head + text[match.end():], ""
        if kind.upper() == "IGNORE":
            tail = " ON CONFLICT DO NOTHING"
        else:
            key = PRIMARY_KEYS[table]
            keys = {k.strip() for k in key.split(",")}
            sets = ", ".join(f"{c} = excluded.{c}" for c in (c.strip() for c in columns.split(","))
                             if c not in keys)
            tail = f" ON CONFLICT ({key}) DO UPDATE SET {sets}"
        at = text.upper().find(" RETURNING ")
        text = text.rstrip() + tail if at < 0 else text[:at] + tail + text[at:]
    return text.replace(" LIKE ", " ILIKE ").replace("?", "%s")


class PgConnection:
    """A psycopg connection that takes the store's ``?``-placeholder SQL.

    Offers what the shared query code calls on a ``sqlite3.Connection``: ``execute``
    and ``executemany`` returning a cursor (``fetchone``, ``fetchall``, iteration,
    ``rowcount``).
    """

    __slots__ = ("raw",)

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        """Run one statement (SQLite's dialect; ``?`` marks a parameter).

        Raises:
            psycopg.Error: the server refused it (``psycopg.errors.UniqueViolation``
                for a duplicate key, and so on).
        """
        if not params:
            return self.raw.execute(pg_sql(sql).replace("%%", "%"))
        if params[-1] == -1 and sql.rstrip().endswith("LIMIT ?"):
            params = (*params[:-1], None)
        return self.raw.execute(pg_sql(sql), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> psycopg.Cursor[Any]:
        """Run one statement per row of parameters; ``rowcount`` is their total.

        Raises:
            psycopg.Error: the server refused a row.
        """
        cursor = self.raw.cursor()
        cursor.executemany(pg_sql(sql), rows)
        return cursor

    @property
    def pipelined(self) -> bool:
        """True inside a pipeline (:meth:`PgDatabase.write_pipelined`), where nothing
        sent can be read back before the pipeline syncs."""
        return self.raw.pgconn.pipeline_status != psycopg.pq.PipelineStatus.OFF

    @property
    def in_transaction(self) -> bool:
        """True inside an open transaction."""
        return self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE


def connect(url: str, *, synchronous_commit: bool) -> psycopg.Connection[Any]:
    """Open an autocommit connection to ``url`` with the store's session settings.

    Raises:
        StorageError: the server is unreachable, refuses the credentials, or has no
            such database; the message says how to fix the URL or the server.
    """
    kwargs: dict[str, Any] = {"autocommit": True, "application_name": "stepwell"}
    if "connect_timeout" not in parse_qs(urlsplit(url).query):
        kwargs["connect_timeout"] = CONNECT_TIMEOUT_S
    try:
        raw = psycopg.connect(url, **kwargs)
        if not synchronous_commit:
            raw.execute("SET synchronous_commit TO off")
    except psycopg.Error as exc:
        raise pg_storage_error(url, "connecting", exc) from None
    return raw


def pg_storage_error(url: str, action: str, exc: BaseException) -> StorageError:
    """A StorageError for ``exc`` naming the server (password hidden) and the fix."""
    where = _server(url)
    text = " ".join(str(exc).split())
    lowered = text.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return StorageError(
            f"PostgreSQL at {where} refused the credentials ({_detail(text)}): check the user "
            "and password in --db / STEPWELL_DB.")
    if "does not exist" in lowered and "database" in lowered and action == "connecting":
        return StorageError(
            f"PostgreSQL at {where}: {_detail(text)}. Create it (createdb DATABASE) or fix "
            "the database name in --db / STEPWELL_DB.")
    if isinstance(exc, psycopg.OperationalError) and action == "connecting":
        return StorageError(
            f"cannot reach PostgreSQL at {where} ({_detail(text)}): start the server, or fix "
            "the host and port in --db / STEPWELL_DB.")
    if isinstance(exc, pg_errors.InsufficientPrivilege):
        return StorageError(
            f"PostgreSQL at {where} denied {action} ({_detail(text)}): grant the user the "
            "privileges on the database (or its schema) that stepwell needs.")
    if isinstance(exc, pg_errors.DiskFull | pg_errors.OutOfMemory):
        return StorageError(f"PostgreSQL at {where} is out of resources while {action} "
                            f"({_detail(text)}): free space on the server, then retry.")
    if isinstance(exc, psycopg.OperationalError):
        return StorageError(
            f"lost the connection to PostgreSQL at {where} while {action} ({_detail(text)}): "
            "check that the server is up; stepwell reconnects on the next call.")
    return StorageError(f"database error on PostgreSQL at {where} while {action}: "
                        f"{_detail(text)}. Check the server log.")


def _server(url: str) -> str:
    """``host:port/database`` of ``url`` (never its credentials)."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"


def _detail(text: str) -> str:
    return text.removeprefix("connection failed: ").rstrip(".")


class PgDatabase:
    """One connection to a PostgreSQL database, with its lock and error boundary.

    Args:
        url: the libpq URL.
        synchronous_commit: False for ``process`` durability (see the module docstring).

    Raises:
        StorageError: the connection cannot be made.
    """

    __slots__ = ("_closed", "_conn", "_prepared", "_raw", "lock", "on_commit", "path",
                 "synchronous_commit", "url")

    def __init__(self, url: str, *, synchronous_commit: bool = False) -> None:
        self.url = url
        #: What messages call the database (password hidden).
        self.path = redact(url)
        self.synchronous_commit = synchronous_commit
        self.lock = threading.RLock()
        self.on_commit: Callable[[], None] | None = None
        self._closed = False
        self._raw = connect(url, synchronous_commit=synchronous_commit)
        self._conn = PgConnection(self._raw)
        self._prepared = PreparedStatements(self._raw)

    @property
    def conn(self) -> PgConnection:
        """The connection, replaced first if the server dropped it (callers hold the lock).

        Raises:
            StorageError: a lost connection cannot be made again.
        """
        if self._closed:
            raise StorageError(f"the store on {self.path} was closed; open a new one.")
        if self._raw.broken or self._raw.closed:
            self._raw = connect(self.url, synchronous_commit=self.synchronous_commit)
            self._conn = PgConnection(self._raw)
            self._prepared = PreparedStatements(self._raw)
        return self._conn

    @contextmanager
    def guard(self, action: str) -> Iterator[None]:
        """Translate psycopg errors raised inside into StorageError naming the server.

        Raises:
            StorageError: what went wrong while ``action``, and what to do.
        """
        try:
            yield
        except StepwellError:
            raise
        except psycopg.Error as exc:
            raise pg_storage_error(self.url, action, exc) from exc

    @contextmanager
    def read(self, action: str) -> Iterator[PgConnection]:
        """The connection, under the lock and :meth:`guard`."""
        with self.lock, self.guard(action):
            yield self.conn

    def write(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(conn, *args)`` in one transaction and commit; callers hold :attr:`lock`.

        A serialization failure or deadlock rolls back and retries the whole
        transaction (up to 20 times, backing off); any other error rolls back and
        propagates.

        Returns:
            What ``fn`` returned.
        """
        def transaction() -> Any:
            conn = self.conn
            raw = conn.raw
            raw.execute("BEGIN")
            try:
                result = fn(conn, *args)
                raw.execute("COMMIT")
            except BaseException:
                if not raw.broken and conn.in_transaction:
                    raw.execute("ROLLBACK")
                raise
            return result

        return self._retrying(transaction)

    def write_pipelined(self, fn: Callable[..., Any], *args: Any) -> None:
        """Like :meth:`write`, but send the whole transaction in one round trip.

        ``BEGIN``, what ``fn(conn, *args)`` executes and ``COMMIT`` go to the server in
        one pipeline, so ``fn`` must not read results; a statement that must change
        rows checks it in SQL (a failing check raises, and the transaction rolls back:
        see :class:`~store.pg.writes.PgStepWriter`). Errors reach the caller after the
        rollback; serialization failures and deadlocks are retried as in :meth:`write`.
        """
        def transaction() -> None:
            conn = self.conn
            raw = conn.raw
            try:
                with raw.pipeline():
                    raw.execute("BEGIN")
                    fn(conn, *args)
                    raw.execute("COMMIT")
            finally:
                if not raw.broken and conn.in_transaction:
                    raw.execute("ROLLBACK")

        self._retrying(transaction)

    def write_statement(self, sql: str, params: Sequence[Any]) -> None:
        """Run one statement (numbered ``$1`` placeholders) as its own transaction,
        prepared once per connection (:mod:`store.pg.prepared`): committed, or rolled
        back whole, when the server answers (callers hold :attr:`lock`). Serialization
        failures and deadlocks are retried as in :meth:`write`."""
        def statement() -> None:
            self.conn  # noqa: B018 - replaces a broken connection (and its statements)
            self._prepared.run(sql, params)

        self._retrying(statement)

    def _retrying(self, transaction: Callable[[], Any]) -> Any:
        """Run ``transaction`` until it passes without a serialization failure or
        deadlock (20 tries, backing off), then call :attr:`on_commit`."""
        delay = 0.002
        for attempt in range(20):
            try:
                result = transaction()
            except _RETRYABLE:
                if attempt == 19:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
                continue
            if self.on_commit is not None:
                self.on_commit()
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        """Run one statement in its own transaction (callers hold the lock)."""
        return self.conn.execute(sql, params)

    def close(self) -> None:
        """Close the connection."""
        with self.lock:
            self._closed = True
            self._raw.close()
