"""Live updates: one change feed per server, one Server-Sent Events stream per open page.

Runs write to the store from this process (runs started over HTTP) and from others
(``stepwell run``, ``runs resume``, workers), so changes are noticed where they all meet:
the store's commit counter
(:meth:`~engine.contracts.outline.OutlineStore.data_version`: SQLite's ``PRAGMA
data_version``, PostgreSQL's WAL position). One read store of the feed asks it, at most
every :data:`POLL_S`, whatever the number of open pages; no page polls the server.

A page's stream (:func:`event_stream`) sends ``change`` at most every
:data:`MIN_GAP_S` while the database changes, and the page fetches its live region
again. A run page's stream sends ``end`` once its run has ended and closes. Streams
close after :data:`STREAM_LIFETIME_S`; the browser reconnects by itself (``retry``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Callable

import anyio

from engine.contracts.errors import StepwellError
from engine.contracts.outline import OutlineStore

POLL_S = 0.25
MIN_GAP_S = 1.0
KEEPALIVE_S = 15.0
STREAM_LIFETIME_S = 60.0
RETRY_MS = 2000


class ChangeFeed:
    """The store's commit counter, as one read store of its own sees it.

    Args:
        open_reads: makes that read store, on first use
            (:meth:`engine.server.state.Readers.open_reads`).
    """

    def __init__(self, open_reads: Callable[[], OutlineStore]) -> None:
        self._open_reads = open_reads
        self._reads: OutlineStore | None = None
        self._lock = threading.Lock()
        self._value = 0
        self._read_at = 0.0

    def version(self) -> int:
        """A number that changes when anything is committed to the store."""
        with self._lock:
            now = time.monotonic()
            if now - self._read_at < POLL_S and self._reads is not None:
                return self._value
            try:
                if self._reads is None:
                    self._reads = self._open_reads()
                self._value = self._reads.data_version()
            except StepwellError:
                self._value += 1  # say "changed" rather than go silent
            self._read_at = now
            return self._value


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
