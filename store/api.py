"""The read API: steps and runs of a stepwell database, as the Retab API shows them.

:class:`ReadAPI` answers the queries: one run or step, filtered lists, the legacy step
list and artifacts, scoped to one organization when given. The read models and their
mapping onto the Retab SDK's strict enums live in :mod:`store.shapes` (re-exported
here); rows become models in :mod:`store.rows`, which resolves payload refs and blobs
in one batched query per page; lists are keyset-paginated (:mod:`store.paging`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from engine.contracts.errors import ConflictError, NotFoundError, StepwellError
from store.codec import _loads, inline_blobs
from store.connection import storage_error
from store.files import LocalFileStore
from store.layout import EXCEPTIONAL_STATUSES, EXCEPTIONAL_STATUSES_SQL
from store.paging import _add_in, _check_page, _keyset, _page
from store.rows import (
    _RUN_COLUMNS,
    _RUN_SELECT,
    _STEP_COLUMNS,
    _STEP_SELECT,
    _legacy_model,
    _Resolver,
    _run_model,
    _step_model,
    ts,
)
from store.shapes import (
    ArtifactRef,
    LegacyStep,
    ListMetadata,
    Page,
    Step,
    WorkflowRun,
    sdk_block_type,
    sdk_legacy_step,
    sdk_run,
    sdk_step,
)

__all__ = [
    "ArtifactRef",
    "LegacyStep",
    "ListMetadata",
    "Page",
    "ReadAPI",
    "Step",
    "WorkflowRun",
    "sdk_block_type",
    "sdk_legacy_step",
    "sdk_run",
    "sdk_step",
]

_STATUS_ALIASES = {"waiting_for_human": "awaiting_review"}


def _as_list(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


class ReadAPI:
    """Queries over a stepwell database, scoped to one organization when given.

    Args:
        conn: an open ``sqlite3`` connection to the database.
        files: the file store holding large payload blobs.
        organization_id: when set, runs of other organizations are invisible (not found).
        lock: serializes use of ``conn`` with other users of it (the store's lock).
        db_path: the database path, for error messages.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        files: LocalFileStore,
        *,
        organization_id: str | None = None,
        lock: Any = None,
        db_path: str = "",
    ) -> None:
        self.conn = conn
        self.files = files
        self.organization_id = organization_id
        self._lock = lock if lock is not None else threading.RLock()
        self.db_path = db_path

    @contextmanager
    def _read(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self.conn
            except StepwellError:
                raise
            except sqlite3.Error as exc:
                raise storage_error(self.db_path, action, exc) from exc

    def reading(self, action: str) -> AbstractContextManager[sqlite3.Connection]:
        """The connection, held under the API's lock, SQLite errors raised as
        :class:`StorageError` naming ``action``: for read modules beside this one
        (:mod:`store.outline`)."""
        return self._read(action)

    # ------------------------------------------------------------------ runs

    def get_run(self, run_id: str) -> WorkflowRun:
        """One run. Raises NotFoundError (also for another organization's run)."""
        with self._read(f"reading run {run_id}"):
            return _run_model(self._run_row(run_id), self.files)

    def list_runs(
        self,
        *,
        status: str | Sequence[str] | None = None,
        workflow_id: str | None = None,
        limit: int = 20,
        after: str | None = None,
        before: str | None = None,
    ) -> Page[WorkflowRun]:
        """Runs, newest first, keyset-paginated by run id cursors."""
        _check_page(limit, after, before)
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        self._scope_org(where, params)
        _add_in(where, params, "status", _as_list(status))
        if workflow_id is not None:
            where.append("workflow_id = ?")
            params.append(workflow_id)
        return self.page_runs(where, params, limit=limit, after=after, before=before)

    def page_runs(self, where: list[str], params: list[Any], *, limit: int,
                  after: str | None, before: str | None,
                  descending: bool = True) -> Page[WorkflowRun]:
        """One page of the runs matching SQL ``where`` terms, keyset-paginated by run id.

        ``where`` must already hold the organization scope (see ``_scope_org``).

        Raises:
            NotFoundError: the cursor is not a run visible to this organization.
        """
        with self._read("listing runs") as conn:
            cursor = after or before
            key = None
            if cursor is not None:
                row = self._run_row(cursor)
                key = (row["created_at"], row["id"])
            rows, more_before, more_after = _keyset(
                conn, "runs", _RUN_COLUMNS, where, params, ("created_at", "id"), key,
                forward=before is None, limit=limit, descending=descending)
            page = [_run_model(r, self.files) for r in rows]
        return _page(page, [r["id"] for r in rows], more_before, more_after)

    def _run_row(self, run_id: str) -> dict[str, Any]:
        where, params = ["id = ?"], [run_id]
        self._scope_org(where, params)
        row = self.conn.execute(f"{_RUN_SELECT} WHERE {' AND '.join(where)}", params).fetchone()
        if row is None:
            raise NotFoundError("run", run_id)
        return dict(zip(_RUN_COLUMNS, row, strict=True))

    def _scope_org(self, where: list[str], params: list[Any], prefix: str = "") -> None:
        if self.organization_id is not None:
            where.append(f"{prefix}organization_id = ?")
            params.append(self.organization_id)

    # ------------------------------------------------------------------ steps

    def get_step(self, step_id: str, run_id: str | None = None) -> Step:
        """One step by id; ``run_id`` disambiguates a step id several runs share.

        Raises:
            NotFoundError: no such step (visible to this organization).
            ConflictError: several runs have this step id and ``run_id`` was not given.
        """
        with self._read(f"reading step {step_id}") as conn:
            row = self._step_row(conn, step_id, run_id)
            resolver = _Resolver(conn, self.files)
            resolver.prepare([row])
            return _step_model(row, resolver)

    def _step_row(self, conn: sqlite3.Connection, step_id: str, run_id: str | None
                  ) -> dict[str, Any]:
        if run_id is not None:
            self._run_row(run_id)
            found = conn.execute(f"{_STEP_SELECT} WHERE run_id = ? AND step_id = ?",
                                 (run_id, step_id)).fetchall()
        else:
            where, params = ["s.step_id = ?"], [step_id]
            join = ""
            if self.organization_id is not None:
                join = " JOIN runs r ON r.id = s.run_id"
                self._scope_org(where, params, "r.")
            cols = ", ".join(f"s.{c}" for c in _STEP_COLUMNS)
            found = conn.execute(
                f"SELECT {cols} FROM steps s{join} WHERE {' AND '.join(where)} LIMIT 21", params
            ).fetchall()
        if not found:
            hint = "List the run's steps with `stepwell steps list RUN_ID`."
            raise NotFoundError("step", step_id, hint)
        if len(found) > 1:
            runs = ", ".join(sorted(r[0] for r in found))
            raise ConflictError(
                f"Step {step_id!r} exists in several runs ({runs}). "
                "Pass run_id= (or --run) to say which one."
            )
        return dict(zip(_STEP_COLUMNS, found[0], strict=True))

    def list_steps(
        self,
        run_id: str,
        *,
        block_id: str | None = None,
        step_id: str | None = None,
        block_type: str | Sequence[str] | None = None,
        status: str | Sequence[str] | None = None,
        limit: int = 100,
        after: str | None = None,
        before: str | None = None,
    ) -> Page[Step]:
        """A run's steps in creation order, filtered, keyset-paginated by step id cursors.

        Raises:
            NotFoundError: unknown run, or a cursor that is not a step of this run.
            UsageError: both ``after`` and ``before``, or a limit outside 1..1000.
        """
        _check_page(limit, after, before)
        where, params = ["run_id = ?"], [run_id]
        if block_id is not None:
            where.append("block_id = ?")
            params.append(block_id)
        if step_id is not None:
            where.append("step_id = ?")
            params.append(step_id)
        _add_in(where, params, "block_type", _as_list(block_type))
        statuses = _as_list(status)
        wanted = None if statuses is None else [_STATUS_ALIASES.get(s, s) for s in statuses]
        _add_in(where, params, "status", wanted)
        if wanted and set(wanted) <= set(EXCEPTIONAL_STATUSES):
            where.append(EXCEPTIONAL_STATUSES_SQL)  # lets SQLite pick the partial index
        with self._read(f"listing steps of run {run_id}") as conn:
            self._run_row(run_id)
            cursor = after or before
            key = None if cursor is None else (self._cursor_seq(conn, run_id, cursor),)
            rows, more_before, more_after = _keyset(
                conn, "steps", _STEP_COLUMNS, where, params, ("seq",), key,
                forward=before is None, limit=limit, descending=False)
            resolver = _Resolver(conn, self.files)
            resolver.prepare(rows)
            data = [_step_model(r, resolver) for r in rows]
        return _page(data, [r["step_id"] for r in rows], more_before, more_after)

    def _cursor_seq(self, conn: sqlite3.Connection, run_id: str, cursor: str) -> int:
        row = conn.execute("SELECT seq FROM steps WHERE run_id = ? AND step_id = ?",
                           (run_id, cursor)).fetchone()
        if row is None:
            raise NotFoundError("step", cursor, "Cursors are the step ids returned in "
                                "list_metadata for the same run.")
        return int(row[0])

    def list_legacy_steps(self, run_id: str) -> list[LegacyStep]:
        """Every step of a run in the legacy flat shape, in creation order."""
        with self._read(f"listing steps of run {run_id}") as conn:
            org = self._run_row(run_id)["organization_id"]
            rows = [dict(zip(_STEP_COLUMNS, r, strict=True)) for r in conn.execute(
                f"{_STEP_SELECT} WHERE run_id = ? ORDER BY seq", (run_id,))]
            reviews = self._reviews(conn, run_id)
            resolver = _Resolver(conn, self.files)
            resolver.prepare(rows)
            return [_legacy_model(r, resolver, org, reviews.get(r["step_id"])) for r in rows]

    def _reviews(self, conn: sqlite3.Connection, run_id: str
                 ) -> dict[str, tuple[str | None, float | None]]:
        rows = conn.execute(
            "SELECT step_id, decision, decided_at FROM reviews WHERE run_id = ? "
            "ORDER BY created_at", (run_id,))
        return {step_id: (decision, decided_at) for step_id, decision, decided_at in rows}

    def get_artifact(self, artifact_id: str) -> dict[str, Any]:
        """The operation record behind a step's ``artifact`` ref (with id, run, step)."""
        with self._read(f"reading artifact {artifact_id}") as conn:
            row = conn.execute(
                "SELECT id, run_id, step_id, operation, record, created_at FROM artifacts "
                "WHERE id = ?", (artifact_id,)).fetchone()
            if row is not None:
                self._run_row(row[1])
        if row is None:
            raise NotFoundError("artifact", artifact_id, "Artifact ids come from step.artifact.id.")
        record = inline_blobs(_loads(row[4]), self.files) or {}
        created = ts(row[5])
        return {**record, "id": row[0], "workflow_run_id": row[1], "step_id": row[2],
                "operation": row[3], "created_at": created.isoformat() if created else None}
