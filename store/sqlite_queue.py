"""The run queue on SQLite: :class:`~engine.contracts.queue.QueueStore` for several
processes on one machine sharing a database file.

Every claim is one ``BEGIN IMMEDIATE`` transaction (:meth:`store.connection.Database.write`):
SQLite lets one writer in at a time, so the oldest claimable run goes to exactly one
claimant; the others wait their turn (milliseconds), then claim the next one. This is
what ``FOR UPDATE SKIP LOCKED`` gives on PostgreSQL (:mod:`store.pg.store`).
"""

from __future__ import annotations

from store.connection import Database

#: Claimable: active, and queued (no owner) or its owner's lease ran out. The status
#: condition repeats ``ix_runs_active``'s (:data:`store.layout.ACTIVE_STATUSES_SQL`).
_CLAIM_NEXT = """
UPDATE runs SET owner_pid = ?, owner_host = ?, heartbeat_at = ?
WHERE id = (
  SELECT id FROM runs WHERE status IN ('pending', 'queued', 'running')
    AND (heartbeat_at IS NULL OR heartbeat_at < ?)
  ORDER BY created_at, id LIMIT 1)
RETURNING id
"""
_RELEASE = (
    "UPDATE runs SET owner_pid = NULL, owner_host = NULL, heartbeat_at = NULL, "
    "status = CASE WHEN status = 'pending' THEN 'queued' ELSE status END "
    "WHERE id = ? AND owner_pid = ? AND owner_host = ?"
)
_REQUEUE = (
    "UPDATE runs SET status = 'queued', owner_pid = NULL, owner_host = NULL, "
    "heartbeat_at = NULL WHERE id = ? AND status = 'awaiting_review'"
)


class SQLiteQueue:
    """Claiming, handing back and re-queueing runs in a SQLite database; mixed into
    :class:`store.sqlite.SQLiteStore`. Owners are pids of :attr:`host`."""

    db: Database
    host: str

    def claim_next(self, pid: int, *, now: float, stale_before: float) -> str | None:
        """Make ``pid`` the owner of the oldest claimable run (see
        :meth:`~engine.contracts.queue.QueueStore.claim_next`); its id, or None."""
        db = self.db
        with db.lock, db.guard("claiming a queued run"):
            row = db.write(lambda conn: conn.execute(
                _CLAIM_NEXT, (pid, self.host, now, stale_before)).fetchone())
        return None if row is None else str(row[0])

    def release(self, run_id: str, pid: int) -> bool:
        """Hand a run back to the queue if ``pid`` still owns it; True when it did."""
        db = self.db
        with db.lock, db.guard(f"releasing run {run_id}"):
            return bool(db.execute(_RELEASE, (run_id, pid, self.host)).rowcount)

    def requeue(self, run_id: str) -> bool:
        """Queue a run that waits for a review again; True when it was waiting."""
        db = self.db
        with db.lock, db.guard(f"queueing run {run_id}"):
            return bool(db.execute(_REQUEUE, (run_id,)).rowcount)
