"""The read queries of a SQLite database: :class:`~engine.contracts.store.ReadStore`.

:class:`SQLiteReads` answers the read API over any connection to a stepwell database:
the store's own (:class:`store.sqlite.SQLiteStore` inherits it, sharing its lock) or a
read-only one (:class:`store.client.Client`, the HTTP server's readers). In WAL mode a
read-only connection never waits for, and never blocks, the processes running workflows.
The SQL lives in :mod:`store.sqlite_query`; the overview queries in
:mod:`store.sql_outline`.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from engine.contracts.errors import NotFoundError
from engine.contracts.logs import LogRecord
from store.codec import inline_blobs, loads
from store.connection import Database
from store.files import LocalFileStore
from store.sql_outline import SQLOutline
from store.sqlite_query import (
    REVIEW_COLUMNS,
    REVIEWS_FROM,
    RUN_COLUMNS,
    RUN_SELECT,
    STEP_COLUMNS,
    STEP_SELECT,
    Resolver,
    keyset,
    review_entry,
    review_where,
    run_record,
    run_where,
    scope_org,
    step_where,
)
from store.step_logs import check_log_page, page_sqlite
from store.stepdata import full_artifact, locate_artifact

if TYPE_CHECKING:  # the read shapes are imported by the queries that build them: a run
    # reads back its run record (engine.contracts.run_record) and nothing else
    from engine.contracts.reads import (
        ArtifactRecord,
        RecordPage,
        ReviewEntry,
        ReviewFilters,
        RunFilters,
        StepFilters,
        StepRecord,
    )
    from engine.contracts.run_record import RunRecord


#: Whether a run exists, and whether it is one organization's.
_RUN_EXISTS = "SELECT 1 FROM runs WHERE id = ?"
_RUN_VISIBLE = "SELECT 1 FROM runs WHERE id = ? AND organization_id = ?"


class SQLiteReads(SQLOutline):
    """Read queries over one connection to a stepwell database.

    Args:
        db: the connection, with its lock and error boundary.
        files: the file store holding large payload blobs.
    """

    def __init__(self, db: Database, files: LocalFileStore) -> None:
        self.db = db
        self.local_files = files

    # ------------------------------------------------------------------ runs

    def read_run(self, run_id: str, *, organization_id: str | None = None) -> RunRecord:
        """One run. Raises NotFoundError (also for another organization's run)."""
        with self.db.read(f"reading run {run_id}") as conn:
            return run_record(self._run_row(conn, run_id, organization_id), self.local_files)

    def page_runs(self, filters: RunFilters, *, organization_id: str | None = None,
                  limit: int = 20, after: str | None = None, before: str | None = None,
                  descending: bool = True) -> RecordPage[RunRecord]:
        """One page of matching runs by ``(created_at, id)``.

        Raises:
            NotFoundError: the cursor is not a visible run.
            UsageError: both cursors, or a limit out of range.
        """
        from engine.contracts.reads import RecordPage, check_page

        check_page(limit, after, before)
        where, params = run_where(filters, organization_id)
        with self.db.read("listing runs") as conn:
            cursor = after or before
            key = None
            if cursor is not None:
                row = self._run_row(conn, cursor, organization_id)
                key = (row["created_at"], row["id"])
            rows, more_before, more_after = keyset(
                conn, "runs", RUN_COLUMNS, where, params, ("created_at", "id"), key,
                forward=before is None, limit=limit, descending=descending)
            items = [run_record(r, self.local_files) for r in rows]
        return RecordPage(items=items, more_before=more_before, more_after=more_after)

    def _run_row(self, conn: sqlite3.Connection, run_id: str, organization_id: str | None
                 ) -> dict[str, Any]:
        where, params = ["id = ?"], [run_id]
        scope_org(where, params, organization_id)
        row = conn.execute(f"{RUN_SELECT} WHERE {' AND '.join(where)}", params).fetchone()
        if row is None:
            raise NotFoundError("run", run_id)
        return dict(zip(RUN_COLUMNS, row, strict=True))

    @staticmethod
    def _check_run(conn: sqlite3.Connection, run_id: str, organization_id: str | None
                   ) -> None:
        """Raise NotFoundError unless the run exists (and is this organization's).

        Reads one key instead of the run row: the step and log reads only need to know
        that the run is visible.
        """
        if organization_id is None:
            row = conn.execute(_RUN_EXISTS, (run_id,)).fetchone()
        else:
            row = conn.execute(_RUN_VISIBLE, (run_id, organization_id)).fetchone()
        if row is None:
            raise NotFoundError("run", run_id)

    # ------------------------------------------------------------------ steps

    def read_step(self, step_id: str, *, run_id: str | None = None,
                  organization_id: str | None = None) -> StepRecord:
        """One step; ``run_id`` disambiguates a step id several runs share.

        Raises:
            NotFoundError: no such step (or run) visible to this organization.
            ConflictError: several runs have this step id and ``run_id`` was not given.
        """
        from engine.contracts.reads import ambiguous_step, step_not_found

        with self.db.read(f"reading step {step_id}") as conn:
            if run_id is not None:
                self._check_run(conn, run_id, organization_id)
                found = conn.execute(f"{STEP_SELECT} WHERE run_id = ? AND step_id = ?",
                                     (run_id, step_id)).fetchall()
            else:
                found = self._steps_by_id(conn, step_id, organization_id)
            if not found:
                raise step_not_found(step_id)
            if len(found) > 1:
                raise ambiguous_step(step_id, [r[0] for r in found])
            row = dict(zip(STEP_COLUMNS, found[0], strict=True))
            return Resolver(conn, self.local_files).records([row])[0]

    def _steps_by_id(self, conn: sqlite3.Connection, step_id: str,
                     organization_id: str | None) -> list[Any]:
        where, params = ["s.step_id = ?"], [step_id]
        join = ""
        if organization_id is not None:
            join = " JOIN runs r ON r.id = s.run_id"
            scope_org(where, params, organization_id, "r.")
        cols = ", ".join(f"s.{c}" for c in STEP_COLUMNS)
        return conn.execute(
            f"SELECT {cols} FROM steps s{join} WHERE {' AND '.join(where)} LIMIT 21", params
        ).fetchall()

    def page_steps(self, run_id: str, filters: StepFilters, *,
                   organization_id: str | None = None, limit: int = 100,
                   after: str | None = None, before: str | None = None
                   ) -> RecordPage[StepRecord]:
        """One page of a run's matching steps in creation order.

        Raises:
            NotFoundError: unknown run, or a cursor that is not a step of this run.
            UsageError: both cursors, or a limit out of range.
        """
        from engine.contracts.reads import RecordPage, check_page

        check_page(limit, after, before)
        where, params = step_where(run_id, filters)
        with self.db.read(f"listing steps of run {run_id}") as conn:
            self._check_run(conn, run_id, organization_id)
            cursor = after or before
            key = None if cursor is None else (self._cursor_seq(conn, run_id, cursor),)
            rows, more_before, more_after = keyset(
                conn, "steps", STEP_COLUMNS, where, params, ("seq",), key,
                forward=before is None, limit=limit, descending=False)
            items = Resolver(conn, self.local_files).records(rows)
        return RecordPage(items=items, more_before=more_before, more_after=more_after)

    def _cursor_seq(self, conn: sqlite3.Connection, run_id: str, cursor: str) -> int:
        from engine.contracts.reads import step_cursor_not_found

        row = conn.execute("SELECT seq FROM steps WHERE run_id = ? AND step_id = ?",
                           (run_id, cursor)).fetchone()
        if row is None:
            raise step_cursor_not_found(cursor)
        return int(row[0])

    def run_steps(self, run_id: str, *, organization_id: str | None = None
                  ) -> list[StepRecord]:
        """Every step of a run in creation order. Raises NotFoundError."""
        with self.db.read(f"listing steps of run {run_id}") as conn:
            self._check_run(conn, run_id, organization_id)
            rows = [dict(zip(STEP_COLUMNS, r, strict=True)) for r in conn.execute(
                f"{STEP_SELECT} WHERE run_id = ? ORDER BY seq", (run_id,))]
            return Resolver(conn, self.local_files).records(rows)

    def read_artifact(self, artifact_id: str, *, organization_id: str | None = None
                      ) -> ArtifactRecord:
        """The operation record behind a step's ``artifact`` ref. Raises NotFoundError."""
        from engine.contracts.reads import ArtifactRecord, artifact_not_found

        seq = locate_artifact(artifact_id)
        with self.db.read(f"reading artifact {artifact_id}") as conn:
            row = None if seq is None else conn.execute(
                "SELECT artifact_id, run_id, step_id, artifact_operation, artifact, "
                "artifact_at FROM steps WHERE seq = ? AND artifact_id = ? "
                "AND artifact IS NOT NULL", (seq, artifact_id)).fetchone()
            in_row = row is not None
            if row is None:  # recorded before layout 6
                row = conn.execute(
                    "SELECT id, run_id, step_id, operation, record, created_at FROM artifacts "
                    "WHERE id = ?", (artifact_id,)).fetchone()
            if row is None:
                raise artifact_not_found(artifact_id)
            try:
                self._check_run(conn, row[1], organization_id)
            except NotFoundError:  # another organization's: as unknown, naming no run
                raise artifact_not_found(artifact_id) from None
        record = inline_blobs(loads(row[4]), self.local_files) or {}
        if in_row:  # stored without its operation since layout 8
            record = full_artifact(record, row[3])
        return ArtifactRecord(id=row[0], run_id=row[1], step_id=row[2], operation=row[3],
                              record=record, created_at=row[5])

    def page_logs(self, run_id: str, step_id: str, *, organization_id: str | None = None,
                  attempt: int | None = None, after: int | None = None, limit: int = 500
                  ) -> RecordPage[LogRecord]:
        """One page of a step's log entries in order (:mod:`store.step_logs`).

        Raises:
            NotFoundError: the run is not visible, or it has no such step.
            UsageError: a limit out of range, or a negative cursor.
        """
        check_log_page(limit, after)
        with self.db.read(f"reading the log of step {step_id}") as conn:
            self._check_run(conn, run_id, organization_id)
            return page_sqlite(conn, run_id, step_id, attempt=attempt, after=after,
                               limit=limit)

    # ------------------------------------------------------------------ review queue

    def read_review_entry(self, review_id: str, *, organization_id: str | None = None
                          ) -> ReviewEntry:
        """One review of the queue. Raises NotFoundError."""
        with self.db.read(f"reading review {review_id}") as conn:
            return self._review_row(conn, review_id, organization_id)

    def _review_row(self, conn: sqlite3.Connection, review_id: str,
                    organization_id: str | None) -> ReviewEntry:
        from engine.contracts.reads import review_entry_not_found

        where, params = ["id = ?"], [review_id]
        scope_org(where, params, organization_id)
        cols = ", ".join(REVIEW_COLUMNS)
        row = conn.execute(f"SELECT {cols} FROM {REVIEWS_FROM} WHERE {' AND '.join(where)}",
                           params).fetchone()
        if row is None:
            raise review_entry_not_found(review_id)
        return review_entry(dict(zip(REVIEW_COLUMNS, row, strict=True)))

    def page_review_entries(self, filters: ReviewFilters, *,
                            organization_id: str | None = None, limit: int = 50,
                            after: str | None = None, before: str | None = None,
                            descending: bool = False) -> RecordPage[ReviewEntry]:
        """One page of the review queue by ``(created_at, id)``.

        Raises:
            NotFoundError: the cursor is not a visible review.
            UsageError: both cursors, or a limit out of range.
        """
        from engine.contracts.reads import RecordPage, check_page

        check_page(limit, after, before)
        where, params = review_where(filters, organization_id)
        with self.db.read("listing reviews") as conn:
            cursor = after or before
            key = None
            if cursor is not None:
                entry = self._review_row(conn, cursor, organization_id)
                key = (entry.created_at, entry.id)
            rows, more_before, more_after = keyset(
                conn, REVIEWS_FROM, REVIEW_COLUMNS, where, params, ("created_at", "id"), key,
                forward=before is None, limit=limit, descending=descending)
        return RecordPage(items=[review_entry(r) for r in rows], more_before=more_before,
                          more_after=more_after)
