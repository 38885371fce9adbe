"""WAL checkpoints on a background thread, so that no commit pays for one.

The store (:class:`store.sqlite.SQLiteStore`) counts its commits here; see
:class:`Checkpointer` for why and how.
"""

from __future__ import annotations

import sqlite3
import threading

#: Fewest and most commits between two checkpoints, whatever the pages per commit.
MIN_EVERY = 50
MAX_EVERY = 2000
#: WAL pages a checkpoint is aimed to come after: an eighth of the writer's automatic
#: checkpoint (:data:`store.connection.WAL_AUTOCHECKPOINT_PAGES`), so that a burst of
#: larger commits still reaches this thread's checkpoint first, and the writer's finds
#: little left to copy.
TARGET_PAGES = 500


class Checkpointer:
    """Does most of the WAL checkpointing off the commit path.

    SQLite's automatic checkpoint runs inside whichever commit pushes the WAL past its
    threshold (:data:`store.connection.WAL_AUTOCHECKPOINT_PAGES`), turning that commit
    into a stall of milliseconds: it copies what is left and, under ``process`` and
    ``full`` durability, syncs the WAL and the database file. Here a daemon thread with
    its own connection runs a ``PASSIVE`` checkpoint (it copies pages while writers go
    on, and never waits for a lock) every ``every`` commits and at least once a second.
    When the writer's automatic checkpoint comes due, nearly every page has been copied
    already: it only finishes the tail (its two syncs are most of its cost) and rewinds
    the WAL, so the file is reused instead of growing.

    The cadence follows the pages commits write. Each checkpoint reports how many frames
    the WAL holds; over the commits counted since the previous one that gives the pages
    a commit writes, and the next checkpoint comes after as many commits as fill
    ``target_pages`` (between :data:`MIN_EVERY` and :data:`MAX_EVERY`). A run whose
    commits rewrite one page each (a chain of steps) is checkpointed a few times per
    thousand commits instead of twenty: each checkpoint copies a page once however many
    commits rewrote it, and syncs the database once. A run whose commits write many
    pages (a fan-out's batches) is checkpointed as often as before, still well before
    the writer's 4,000-page automatic checkpoint. While a reader holds an old snapshot
    the WAL cannot rewind and its frames overstate the rate, which only shortens the
    cadence.

    Under full durability the store's own connection finishes each of these checkpoints
    (``writer``). Commits go on while the thread copies, so the thread never copies the
    whole WAL, and SQLite rewinds the WAL only at a write that finds it all copied: left
    alone, the WAL grows to the 4,000 pages of the writer's own checkpoint. That costs
    little while commits do not fsync, but a commit that fsyncs a WAL grown by a page
    also waits for the file system to journal the new size and blocks, where one that
    overwrites pages the WAL already holds does not: a chain step took about 340 us
    against 250 (ext4). So after each round of the thread, the next commit runs one more
    ``PASSIVE`` checkpoint on the writer's connection, under its lock, copying the few
    pages committed meanwhile (about 0.3 ms, once per round), and the next transaction
    starts the WAL over. Each later round sees the WAL rewound, so the cadence can only
    shorten from what the first round set (a chain: 100 commits), and the WAL holds the
    pages of about that many commits, written over and over.
    """

    def __init__(self, path: str, every: int = MIN_EVERY, *, fsync: bool = True,
                 target_pages: int = TARGET_PAGES,
                 writer: sqlite3.Connection | None = None) -> None:
        """Count commits to checkpoint ``path`` every ``every`` of them (adapted to the
        pages they write unless ``target_pages`` is 0), fsyncing unless ``fsync`` is
        False. With ``writer`` (the store's own connection, used only under its lock:
        :meth:`committed` runs there), that connection finishes each round's checkpoint
        right after the next commit, so that the WAL starts over."""
        self.path = path
        #: Commits until the next checkpoint; the thread adapts it (0 target: fixed).
        self.every = every
        self.target_pages = target_pages
        #: Commits counted since the store opened (the thread reads it for the rate).
        self.commits = 0
        #: False for a ``scratch`` store: its checkpoints skip fsync as its commits do.
        self.fsync = fsync
        self.writer = writer
        #: Set by the thread after each round when there is a ``writer`` to finish it.
        self.tail_due = False
        self._wake_at = every  # the commit count that wakes the thread next
        self._wake = threading.Event()
        self._stopping = False
        # Started by the first ``every`` commits: a short-lived store (a test, a one-step
        # run) never pays for the thread, its connection or the join at close, and its
        # WAL is checkpointed by the last connection's close as usual.
        self._thread: threading.Thread | None = None

    def committed(self) -> None:
        """Count a commit; finish the thread's last round if it asked for it; wake the
        thread (starting it the first time) every ``every``."""
        self.commits += 1
        if self.tail_due:
            self.finish_round()
        if self.commits >= self._wake_at:
            self._wake_at = self.commits + self.every
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="stepwell-wal-checkpoint", daemon=True)
                self._thread.start()
            self._wake.set()

    def finish_round(self) -> None:
        """Copy what was committed while the thread's last checkpoint ran, on the
        writer's connection, so that the next transaction starts the WAL over (see the
        class). A database busy with another process's checkpoint is left to the next
        round."""
        self.tail_due = False
        if self.writer is None:
            return
        try:
            self.writer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            pass  # like the thread's own checkpoints: only the WAL's size depends on it

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
        counted = logged = 0
        seen = self.wal_generation()
        try:
            while True:
                self._wake.wait(timeout=1.0)
                self._wake.clear()
                if self._stopping:  # closing: the store's own close checkpoints
                    return
                commits = self.commits
                try:
                    row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error:
                    # A checkpoint only bounds the WAL's size; one that found the
                    # database busy is simply tried again next round.
                    continue
                frames = row[1] if row else -1
                if self.writer is not None:
                    self.tail_due = True
                # The WAL rewinds at the first commit after a checkpoint that copied it
                # all (and at SQLite's own checkpoint): its header's generation changes.
                # Seen before this checkpoint or after it, the frames since the last one
                # are not known; the next round counts all it finds (too many is safe).
                generation = self.wal_generation()
                rewound = generation != seen or frames < logged
                self.adapt(commits - counted, frames if rewound else frames - logged,
                           rewound=rewound)
                counted, logged = commits, (0 if generation != seen else frames)
                seen = generation
        finally:
            conn.close()

    def wal_generation(self) -> bytes | None:
        """The WAL header's checkpoint sequence number and salts (bytes 12-23), which
        SQLite changes whenever it starts the WAL over; None without a WAL file."""
        try:
            with open(f"{self.path}-wal", "rb") as wal:
                return wal.read(24)[12:]
        except OSError:
            return None

    def adapt(self, commits: int, frames: int, *, rewound: bool = False) -> None:
        """Set :attr:`every` from a checkpoint that found the WAL ``frames`` frames longer
        after ``commits`` commits: as many commits as write :attr:`target_pages` pages,
        at most twice the cadence it replaces. When the WAL ``rewound`` in between, only
        its frames since then are known, too few: the cadence may only shorten. Nothing
        changes without a target, commits or frames."""
        if self.target_pages <= 0 or commits <= 0 or frames <= 0:
            return
        every = self.target_pages * commits // frames
        ceiling = self.every if rewound else 2 * self.every
        self.every = max(MIN_EVERY, min(MAX_EVERY, ceiling, every))

    def stop(self) -> None:
        """Stop the thread, if it started, and wait for it."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
