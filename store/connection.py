"""Opening a stepwell SQLite database, and naming what went wrong with it.

:func:`connect` opens one connection in autocommit mode with the store's pragmas (WAL
unless in memory, ``synchronous``, busy timeout, cache); :func:`check_layout` refuses a
database written with another storage layout instead of misreading it.
:func:`storage_error` turns a ``sqlite3`` error into :class:`~engine.contracts.errors.StorageError`
naming the database file and the fix; :class:`store.sqlite.SQLiteStore` and the read API
(:mod:`store.api`) translate every error through it.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from engine.contracts.errors import StorageError
from store.layout import SCHEMA_VERSION

_BUSY_CODES = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED


def connect(path: str, busy_timeout: float, synchronous: str, *, in_memory: bool
            ) -> sqlite3.Connection:
    """Open ``path`` (creating its folder) with the store's pragmas.

    Args:
        path: the database file, or ``':memory:'`` with ``in_memory``.
        busy_timeout: seconds to wait for another process's write lock.
        synchronous: ``'NORMAL'`` or ``'FULL'``.
        in_memory: no folder to create and no WAL.

    Raises:
        StorageError: the folder cannot be created.
        sqlite3.Error: the database cannot be opened (the caller translates it).
    """
    if not in_memory:
        _make_parent(path)
    conn = sqlite3.connect(
        path, timeout=busy_timeout, isolation_level=None,
        check_same_thread=False, cached_statements=256,
    )
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    if not in_memory:
        retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone(), busy_timeout)
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("PRAGMA cache_size = -65536")  # 64 MiB
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA wal_autocheckpoint = 1000")  # mostly done by store.checkpoint
    return conn


def _make_parent(path: str) -> None:
    parent = Path(path).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"cannot write {path}: cannot create its folder {parent} "
            f"({exc.strerror}); choose a writable --db path."
        ) from exc


def check_layout(conn: sqlite3.Connection, path: str) -> None:
    """Refuse a database written with another layout instead of misreading it.

    Raises:
        StorageError: ``path`` holds another storage layout.
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    kinds = dict(conn.execute(
        "SELECT name, type FROM sqlite_master WHERE name IN ('steps', 'transitions')"))
    old = version not in (0, SCHEMA_VERSION) or kinds.get("transitions") == "table"
    if not old and "steps" in kinds:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(steps)")}
        old = "trail" not in columns
    if old:
        raise StorageError(
            f"{path} was written by a stepwell with another storage layout "
            f"(version {version or 1}, this one reads {SCHEMA_VERSION}). Open it with "
            "the stepwell that wrote it, or point --db / STEPWELL_DB at a new file."
        )


def retry_busy(fn: Any, busy_timeout: float) -> Any:
    """Call ``fn``; on SQLITE_BUSY/LOCKED retry with backoff until the busy timeout."""
    deadline = time.monotonic() + busy_timeout
    delay = 0.001
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if _errcode(exc) not in _BUSY_CODES or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _errcode(exc: sqlite3.Error) -> int:
    return int(getattr(exc, "sqlite_errorcode", 0)) & 0xFF


def storage_error(path: str, action: str, exc: BaseException) -> StorageError:
    """A StorageError for ``exc`` that names the database file and what to do next."""
    code = _errcode(exc) if isinstance(exc, sqlite3.Error) else 0
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
    if code in _BUSY_CODES:
        return StorageError(f"{path} stayed locked by another process while {action}: "
                            "retry, or raise the busy timeout.")
    return StorageError(f"database error on {path} while {action}: {text}. "
                        "Check the file, or choose another --db path.")
