"""WAL checkpoints on a background thread, so that no commit pays for one.

The store (:class:`store.sqlite.SQLiteStore`) counts its commits here; see
:class:`Checkpointer` for why and how.
"""

from __future__ import annotations

import sqlite3
import threading


class Checkpointer:
    """Does most of the WAL checkpointing off the commit path.

    SQLite's automatic checkpoint runs inside whichever commit pushes the WAL past 1000
    pages, turning one commit in a hundred or so into a multi-millisecond stall. Here a
    daemon thread with its own connection runs a ``PASSIVE`` checkpoint (it copies pages
    while writers go on, and never waits for a lock) every ``every`` commits and at
    least once a second. When the writer's automatic checkpoint comes due, nearly every
    page has been copied already: it only finishes the tail and rewinds the WAL, so the
    file is reused instead of growing.
    """

    def __init__(self, path: str, every: int = 50, *, fsync: bool = True) -> None:
        self.path = path
        self.every = every
        #: False for a ``scratch`` store: its checkpoints skip fsync as its commits do.
        self.fsync = fsync
        self._commits = 0
        self._wake = threading.Event()
        self._stopping = False
        # Started by the first ``every`` commits: a short-lived store (a test, a one-step
        # run) never pays for the thread, its connection or the join at close, and its
        # WAL is checkpointed by the last connection's close as usual.
        self._thread: threading.Thread | None = None

    def committed(self) -> None:
        """Count a commit; wake the thread (starting it the first time) every ``every``."""
        self._commits += 1
        if self._commits >= self.every:
            self._commits = 0
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="stepwell-wal-checkpoint", daemon=True)
                self._thread.start()
            self._wake.set()

    def connection(self) -> sqlite3.Connection:
        """The thread's own connection: it never waits for a lock, and it fsyncs its
        checkpoints unless the store's durability skips fsync (``scratch``)."""
        conn = sqlite3.connect(self.path, timeout=0, isolation_level=None,
                               check_same_thread=False)
        if not self.fsync:
            conn.execute("PRAGMA synchronous = OFF")
        return conn

    def _loop(self) -> None:
        conn = self.connection()
        try:
            while True:
                self._wake.wait(timeout=1.0)
                self._wake.clear()
                if self._stopping:  # closing: the store's own close checkpoints
                    return
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    # A checkpoint only bounds the WAL's size; one that found the
                    # database busy is simply tried again next round.
                    continue
        finally:
            conn.close()

    def stop(self) -> None:
        """Stop the thread, if it started, and wait for it."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
