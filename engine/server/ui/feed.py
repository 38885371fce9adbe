"""Live updates: one change feed per server, one Server-Sent Events stream per open page.

Runs write to the database from this process (runs started over HTTP) and from others
(``stepwell run``, ``runs resume``), so changes are noticed where they all meet: SQLite's
``PRAGMA data_version``, which changes whenever another connection commits. One
connection of the feed asks it, at most every :data:`POLL_S`, whatever the number of
open pages; no page polls the server.

A page's stream (:func:`event_stream`) sends ``change`` at most every
:data:`MIN_GAP_S` while the database changes, and the page fetches its live region
again. A run page's stream sends ``end`` once its run has ended and closes. Streams
close after :data:`STREAM_LIFETIME_S`; the browser reconnects by itself (``retry``).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable

import anyio

POLL_S = 0.25
MIN_GAP_S = 1.0
KEEPALIVE_S = 15.0
STREAM_LIFETIME_S = 60.0
RETRY_MS = 2000


class ChangeFeed:
    """The database's commit counter, as seen by one read-only connection.

    Args:
        db_path: the database file.
    """

    def __init__(self, db_path: str) -> None:
        self.db_path = db_path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._value = 0
        self._read_at = 0.0

    def version(self) -> int:
        """A number that changes when anything is committed to the database."""
        with self._lock:
            now = time.monotonic()
            if now - self._read_at < POLL_S and self._conn is not None:
                return self._value
            if self._conn is None:
                self._conn = sqlite3.connect(self.db_path, check_same_thread=False,
                                             isolation_level=None)
                self._conn.execute("PRAGMA query_only = 1")
            try:
                self._value = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
            except sqlite3.Error:
                self._value += 1  # say "changed" rather than go silent
            self._read_at = now
            return self._value

    def close(self) -> None:
        """Close the feed's connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _event(name: str, data: object) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


async def event_stream(feed: ChangeFeed, is_disconnected: Callable[[], object],
                       ended: Callable[[], bool] | None = None) -> AsyncIterator[bytes]:
    """The ``text/event-stream`` body of one page.

    Args:
        feed: the server's change feed.
        is_disconnected: ``request.is_disconnected`` (awaitable), to stop early.
        ended: for a run page, tells (in a worker thread) whether the run has ended.
    """
    yield f"retry: {RETRY_MS}\n: stepwell live updates\n\n".encode()
    if ended is not None and await anyio.to_thread.run_sync(ended):
        yield _event("end", {})
        return
    seen = feed.version()
    started = sent = beat = time.monotonic()
    pending = False
    while time.monotonic() - started < STREAM_LIFETIME_S:
        await anyio.sleep(POLL_S)
        if await is_disconnected():  # type: ignore[misc]
            return
        now = time.monotonic()
        current = await anyio.to_thread.run_sync(feed.version)
        if current != seen:
            seen, pending = current, True
        if pending and now - sent >= MIN_GAP_S:
            pending, sent, beat = False, now, now
            yield _event("change", {"version": current})
            if ended is not None and await anyio.to_thread.run_sync(ended):
                yield _event("end", {})
                return
        elif now - beat >= KEEPALIVE_S:
            beat = now
            yield b": keepalive\n\n"
