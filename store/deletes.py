"""Deleting a run and everything recorded about it, in SQL both stores share.

``runs.delete`` over HTTP (:meth:`~engine.contracts.store.RunStore.delete_run`): the run
row, its steps (with their audit trail), artifacts, reviews and the reviews' corrected
versions go in one transaction. Stored documents stay: files are shared by content.
Tables that key rows by run id are listed in :data:`RUN_TABLES`; a table added later
that does so belongs there.
"""

from __future__ import annotations

from typing import Any

from engine.contracts.errors import NotFoundError
from engine.contracts.values import StepStatus
from store.connection import Database

#: Tables whose rows belong to one run (``run_id`` column), deleted with it.
RUN_TABLES = ("steps", "artifacts", "reviews", "step_logs")


def _delete(conn: Any, run_id: str) -> bool:
    conn.execute("DELETE FROM review_versions WHERE review_id IN "
                 "(SELECT id FROM reviews WHERE run_id = ?)", (run_id,))
    for table in RUN_TABLES:
        conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
    return bool(conn.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount)


class SQLRunDeletion:
    """``delete_run`` for the SQLite and PostgreSQL stores."""

    db: Database
    _statuses: dict[str, dict[str, StepStatus]]

    def delete_run(self, run_id: str) -> None:
        """Delete a run and what was recorded about it (committed).

        Raises:
            NotFoundError: no such run.
        """
        db = self.db
        with db.lock, db.guard(f"deleting run {run_id}"):
            found = db.write(_delete, run_id)
            self._forget_run(run_id)
        if not found:
            raise NotFoundError("run", run_id)

    def _forget_run(self, run_id: str) -> None:
        """Drop what the store keeps in memory about a run's steps."""
        self._statuses.pop(run_id, None)
