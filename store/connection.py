"""Opening a stepwell SQLite database, writing to it, and naming what went wrong with it.

:func:`connect` opens one connection in autocommit mode with the store's pragmas (WAL
unless in memory, ``synchronous``, busy timeout, cache); :func:`check_layout` refuses a
database written with another storage layout (an older or newer stepwell's, or another
application's) instead of misreading it, and :func:`create_schema` creates the layout
(:data:`store.layout.DDL`) in an empty database, stamped with its revision
(:mod:`store.schema`).
:class:`Database` is one open connection with its lock: every write of the SQLite store
goes through :meth:`Database.write` (one ``BEGIN IMMEDIATE`` transaction, retried on
``SQLITE_BUSY``), every read through :meth:`Database.read`. :func:`storage_error` turns a
``sqlite3`` error into :class:`~engine.contracts.errors.StorageError` naming the database
file and the fix; both translate every error through it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from engine.contracts.errors import StepwellError, StorageError
from store.layout import DDL, SCHEMA_VERSION, TABLE_NAMES, TRANSITIONS_VIEW
from store.schema import (
    HEAD_REVISION,
    VERSION_TABLE,
    foreign_database,
    layout_revision,
    newer_schema,
    older_schema,
)

#: ``SQLITE_BUSY`` and ``SQLITE_LOCKED``: another connection holds the lock.
BUSY_CODES = frozenset({5, 6})
#: WAL pages after which a commit runs SQLite's own checkpoint (``wal_autocheckpoint``).
#: The background thread (:mod:`store.checkpoint`) copies pages long before that, but
#: only a checkpoint on the writer's side lets the WAL start over, and under ``process``
#: durability it syncs the WAL and the database file: a commit that runs it takes 1 to 3
#: ms instead of 10 us. At 4,000 pages (16 MiB, SQLite's default is 1,000) a chain meets
#: it once every 3,000 or so steps instead of every 800; the WAL file grows to that size
#: before it is reused, and is removed when the last connection closes.
WAL_AUTOCHECKPOINT_PAGES = 4000


def connect(path: str, busy_timeout: float, synchronous: str, *, in_memory: bool
            ) -> sqlite3.Connection:
    """Open ``path`` (creating its folder) with the store's pragmas.

    Args:
        path: the database file, or ``':memory:'`` with ``in_memory``.
        busy_timeout: seconds to wait for another process's write lock.
        synchronous: ``'NORMAL'``, ``'FULL'`` or ``'OFF'``.
        in_memory: no folder to create and no WAL.

    Raises:
        StorageError: the folder cannot be created.
        sqlite3.Error: the database cannot be opened (the caller translates it).
    """
    return _connect(path, busy_timeout, synchronous, in_memory=in_memory)[0]


def _connect(path: str, busy_timeout: float, synchronous: str, *, in_memory: bool
             ) -> tuple[sqlite3.Connection, bool]:
    """:func:`connect`, and whether ``path`` is a new file this call laid out (from
    :func:`_wal_image`, with no WAL beside it): such a file is known to hold the layout
    in WAL mode, so neither the journal mode nor the layout needs asking for."""
    laid_out = False
    if not in_memory:
        _make_parent(path)
        # FULL lets SQLite create the file, with its fsyncs; the image is written without
        laid_out = _create_private(path, None if synchronous == "FULL" else _wal_image())
    # the timeout is sqlite3's busy timeout (sqlite3_busy_timeout): no PRAGMA for it
    conn = sqlite3.connect(
        path, timeout=busy_timeout, isolation_level=None,
        check_same_thread=False, cached_statements=256,
    )
    try:
        if not in_memory and not laid_out:
            retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone(),
                       busy_timeout)
        conn.executescript(_pragmas(synchronous))
    except BaseException:
        conn.close()
        raise
    return conn, laid_out


def _pragmas(synchronous: str) -> str:
    """The per-connection settings, as one script (one call instead of five)."""
    if synchronous not in ("NORMAL", "FULL", "OFF"):
        raise ValueError(f"synchronous must be NORMAL, FULL or OFF, not {synchronous!r}")
    return (f"PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = OFF; "
            # 16 MiB: every page a run touches stays cached up to this size, and the
            # cache is most of the memory a long run holds (a 300,000-step run stays
            # under 250 MB)
            "PRAGMA cache_size = -16384; PRAGMA temp_store = MEMORY; "
            f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES};")


def _create_private(path: str, image: bytes | None) -> bool:
    """Create a new database file readable by its owner only (SQLite gives its WAL and
    shared-memory files the same mode).

    With ``image`` (a laid-out database in WAL mode: :func:`_wal_image`) the new file
    holds it from the start: switching a new file to WAL and creating the layout costs
    tens of milliseconds, as much as a hundred step commits. The image is written
    beside the path, then linked into place, so no other process sees it half written;
    where the path exists already (or links are not supported) nothing changes.

    Returns:
        True when the file at ``path`` is the image, put there by this call, and no WAL
        file lies beside it (a stale one would be replayed into the new file).
    """
    if image is not None and not os.path.lexists(path):
        aside = f"{path}.{os.getpid()}-{threading.get_ident()}.new"
        try:
            fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, image)
            finally:
                os.close(fd)
            os.link(aside, path)
            return not os.path.lexists(f"{path}-wal")
        except OSError:
            pass  # exists now, or no links here: an empty file, laid out by the store
        finally:
            with suppress(OSError):
                os.unlink(aside)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return False
    except OSError:
        return False  # sqlite3.connect reports what is wrong with the path
    return False


def _make_parent(path: str) -> None:
    parent = Path(path).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"cannot write {path}: cannot create its folder {parent} "
            f"({exc.strerror}); choose a writable --db path."
        ) from exc


def check_layout(conn: sqlite3.Connection, path: str) -> bool:
    """Refuse a database written with another layout instead of misreading it.

    Returns:
        True when the database is empty (the layout is to be created).

    Raises:
        StorageError: ``path`` holds an older layout (upgrade it), a newer one (upgrade
            stepwell), one stepwell cannot upgrade, or another application's tables.
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise newer_schema(path, f"{version:04d}")
    recorded = recorded_revision(conn)  # the source of truth; user_version must agree
    if recorded is not None and recorded != f"{version:04d}":
        raise mismatched_revisions(path, recorded, version)
    if version == SCHEMA_VERSION:
        return False
    kinds = dict(conn.execute("SELECT name, type FROM sqlite_master WHERE name NOT LIKE "
                              "'sqlite_%'"))
    revision = layout_revision(version)
    if revision is not None and "steps" in kinds:
        raise older_schema(path, revision)
    if version or "transitions" in kinds or "steps" in kinds:
        raise StorageError(
            f"{path} was written by a stepwell with another storage layout "
            f"(version {version or 1}, this one reads {SCHEMA_VERSION}). Open it with "
            "the stepwell that wrote it, or point --db / STEPWELL_DB at a new file."
        )
    if kinds:
        raise foreign_database(path, kinds)
    return True


def recorded_revision(conn: sqlite3.Connection) -> str | None:
    """The revision in the version table (the source of truth), or None when it has none."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                          (VERSION_TABLE,)).fetchone()
    if exists is None:
        return None
    row = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
    return None if row is None else str(row[0])


def mismatched_revisions(path: str, recorded: str, user_version: int) -> StorageError:
    """The error for a SQLite file whose two revision markers disagree.

    The version table (what ``stepwell db status`` / ``db upgrade`` read) is the source
    of truth; ``PRAGMA user_version`` is only the cheap copy checked on open.
    """
    return StorageError(
        f"{path} records schema {recorded} in its {VERSION_TABLE} table but "
        f"{user_version:04d} in PRAGMA user_version; the {VERSION_TABLE} table is the one "
        f"that counts. Back the file up, then run `stepwell db upgrade --db {path}`: it "
        f"migrates from {recorded} and sets PRAGMA user_version to match.")


def retry_busy(fn: Any, busy_timeout: float) -> Any:
    """Call ``fn``; on SQLITE_BUSY/LOCKED retry with backoff until the busy timeout."""
    deadline = time.monotonic() + busy_timeout
    delay = 0.001
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if errcode(exc) not in BUSY_CODES or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def errcode(exc: sqlite3.Error) -> int:
    """The primary SQLite result code of ``exc`` (0 when it has none)."""
    return int(getattr(exc, "sqlite_errorcode", 0)) & 0xFF


def storage_error(path: str, action: str, exc: BaseException) -> StorageError:
    """A StorageError for ``exc`` that names the database file and what to do next."""
    code = errcode(exc) if isinstance(exc, sqlite3.Error) else 0
    text = str(exc)
    lowered = text.lower()
    if code in (3, 8, 14, 23) or "readonly" in lowered or "unable to open" in lowered:
        return StorageError(
            f"cannot write {path} ({text}) while {action}: choose a writable --db path "
            "(the folder must allow creating the -wal and -shm files beside the database)."
        )
    if code == 13:
        return StorageError(f"disk full writing {path} while {action}: free space or "
                            "choose another --db path.")
    if code in (11, 26):
        return StorageError(f"{path} is not a stepwell database or is damaged ({text}): "
                            "restore it from a backup or choose another --db path.")
    if code in BUSY_CODES:
        return StorageError(f"{path} stayed locked by another process while {action}: "
                            "retry, or raise the busy timeout.")
    return StorageError(f"database error on {path} while {action}: {text}. "
                        "Check the file, or choose another --db path.")


class Database:
    """One open connection to a stepwell database, with its lock and error boundary.

    Args:
        conn: a connection from :func:`connect` (or a read-only one).
        path: the database file, named in error messages.
        busy_timeout: seconds a write retries on ``SQLITE_BUSY``.
        lock: serializes every use of ``conn``; a fresh ``RLock`` when None.
    """

    __slots__ = ("_tx", "busy_timeout", "conn", "lock", "on_commit", "path")

    def __init__(self, conn: sqlite3.Connection, path: str, *, busy_timeout: float = 30.0,
                 lock: Any = None) -> None:
        self.conn = conn
        self.path = path
        self.busy_timeout = busy_timeout
        self.lock = lock if lock is not None else threading.RLock()
        #: Called after every commit (the WAL checkpointer counts them).
        self.on_commit: Callable[[], None] | None = None
        # begins, commits and rolls back: one cursor kept, rather than one made per
        # statement by ``conn.execute`` (two of each commit's statements)
        self._tx = conn.cursor()

    @contextmanager
    def guard(self, action: str) -> Iterator[None]:
        """Translate ``sqlite3`` errors raised inside into StorageError naming the file.

        Raises:
            StorageError: what went wrong while ``action``, and what to do.
        """
        try:
            yield
        except StepwellError:
            raise
        except sqlite3.Error as exc:
            raise storage_error(self.path, action, exc) from exc

    @contextmanager
    def read(self, action: str) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock and :meth:`guard`."""
        with self.lock, self.guard(action):
            yield self.conn

    def write(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(conn, *args)`` in one IMMEDIATE transaction and commit.

        The busy timeout makes ``BEGIN IMMEDIATE`` wait for another process's write
        lock; a ``SQLITE_BUSY`` that still gets through (lock upgrades, WAL recovery)
        rolls back and retries the whole transaction until the busy timeout. Any other
        error rolls back and propagates. Written without context managers or closures:
        this is the hot path of every step transition. Callers hold :attr:`lock`.

        Returns:
            What ``fn`` returned.
        """
        conn = self.conn
        tx = self._tx
        deadline = 0.0
        delay = 0.001
        while True:
            try:
                tx.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn, *args)
                    tx.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        tx.execute("ROLLBACK")
                    raise
                break
            except sqlite3.OperationalError as exc:
                if errcode(exc) not in BUSY_CODES:
                    raise
                now = time.monotonic()
                deadline = deadline or now + self.busy_timeout
                if now >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        if self.on_commit is not None:
            self.on_commit()
        return result

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        """Run one statement in its own committed transaction (callers hold the lock)."""
        cursor: sqlite3.Cursor = self.write(_execute, sql, params)
        return cursor


def _execute(conn: sqlite3.Connection, sql: str, params: Any) -> sqlite3.Cursor:
    return conn.execute(sql, params)


#: Alembic's version table, under stepwell's name (:data:`store.schema.VERSION_TABLE`).
VERSION_DDL = (f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version_num VARCHAR(32) NOT NULL, "
               f"CONSTRAINT {VERSION_TABLE}_pkc PRIMARY KEY (version_num))")


def create_schema(db: Database, *, laid_out: bool = False) -> None:
    """Create the layout in an empty database, in one transaction.

    A private in-memory database (``':memory:'``, tests) gets a copy of the first one
    this process laid out instead: 36 ``CREATE`` statements cost milliseconds, loading
    the image costs tens of microseconds.

    Args:
        db: the open database.
        laid_out: the file is a new copy of :func:`_wal_image` (see :func:`_connect`):
            it holds the layout, stamped with its revision, so nothing is checked.

    Raises:
        StorageError: the database holds another storage layout.
        sqlite3.Error: it cannot be written (the caller translates it).
    """
    if laid_out:
        return
    conn = db.conn
    private = db.path == ":memory:"
    if private and _MEMORY_IMAGE:
        conn.deserialize(_MEMORY_IMAGE[0])
        return
    if not check_layout(conn, db.path):
        marks = ", ".join("?" * len(TABLE_NAMES))
        present = conn.execute(
            f"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ({marks})",
            TABLE_NAMES).fetchone()[0]
        if present == len(TABLE_NAMES):
            return

    def create(c: sqlite3.Connection) -> None:
        _lay_out(c, check_layout(c, db.path))  # again: another process may have made it

    db.write(create)
    if private:
        _MEMORY_IMAGE.append(conn.serialize())


def _lay_out(conn: sqlite3.Connection, empty: bool) -> None:
    """Create what is missing of the layout; stamp the revision in an empty database."""
    for statement in (*DDL, TRANSITIONS_VIEW, VERSION_DDL):  # all IF NOT EXISTS
        conn.execute(statement)
    if empty:
        conn.execute(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES (?)",
                     (HEAD_REVISION,))
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _wal_image() -> bytes:
    """The file of an empty database with the layout, in WAL mode (built once)."""
    if not _WAL_IMAGE:
        conn = sqlite3.connect(":memory:", isolation_level=None)
        try:
            conn.execute("BEGIN")
            _lay_out(conn, True)
            conn.execute("COMMIT")
            image = bytearray(conn.serialize())
        finally:
            conn.close()
        image[18:20] = b"\x02\x02"  # file format read/write versions 2: WAL mode
        _WAL_IMAGE.append(bytes(image))
    return _WAL_IMAGE[0]


def empty_database_bytes() -> int:
    """The size of a new database file with the layout and nothing in it (every table
    and index has its page): what a database holds before its first run."""
    return len(_wal_image())


#: The image of an empty ``':memory:'`` database with the layout (see create_schema).
_MEMORY_IMAGE: list[bytes] = []
#: The same layout as a file in WAL mode (see _create_private).
_WAL_IMAGE: list[bytes] = []


def is_memory_path(path: str) -> bool:
    """True for an in-memory database path (``':memory:'``, ``file::memory:...``)."""
    return path == ":memory:" or path.startswith("file::memory:")


def open_database(path: str, *, busy_timeout: float = 30.0, synchronous: str = "NORMAL"
                  ) -> Database:
    """Open ``path`` with the store's pragmas and create what is missing of the schema.

    Raises:
        StorageError: the file cannot be opened or written, or holds another layout.
    """
    try:
        conn, laid_out = _connect(path, busy_timeout, synchronous,
                                  in_memory=is_memory_path(path))
    except sqlite3.Error as exc:
        raise storage_error(path, "opening the database", exc) from exc
    db = Database(conn, path, busy_timeout=busy_timeout)
    try:
        with db.guard("opening the database"):
            create_schema(db, laid_out=laid_out)
    except BaseException:
        conn.close()
        raise
    return db
