"""Evals, eval runs and results, block executions, files and uploads in SQL
(:class:`~engine.contracts.evals.EvalStore`, :class:`~engine.contracts.catalog.FileCatalog`).

Each record is one row; JSON fields are text columns. The SQL is plain (``?``
placeholders, ``DELETE`` then ``INSERT`` for a replace), so the PostgreSQL store runs it
unchanged. A list reads the rows of one scope (an organization's workflow, a run) in
``(created_at, id)`` order and cuts the page in Python (:mod:`store.paging`): these
lists are small. The filters both stores share (:func:`eval_run_matches`,
:func:`file_matches`) and the JSON copy of a record (:func:`json_fields`) are here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from engine.contracts.errors import NotFoundError
from store.codec import dumps, loads
from store.connection import Database
from store.paging import keyset_page

if TYPE_CHECKING:
    from engine.contracts.catalog import FileEntry, FileFilters, UploadSession
    from engine.contracts.evals import (
        BlockExecution,
        EvalDefinition,
        EvalResult,
        EvalRun,
        EvalRunFilters,
    )
    from engine.contracts.reads import RecordPage

T = TypeVar("T")

#: record type name -> (table, JSON fields). Keyed by name: the record classes are
#: imported when a method needs one, so a store that is only used to run workflows
#: never builds them.
TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "EvalDefinition": ("evals", ("source", "handle_inputs", "assertion")),
    "EvalRun": ("eval_runs", ("scope",)),
    "EvalResult": ("eval_results", ("handle_inputs", "handle_outputs", "artifact",
                                  "assertion_result", "warnings")),
    "BlockExecution": ("block_executions", ("handle_inputs", "handle_outputs",
                                          "routing_decisions", "artifact", "block_config")),
    "FileEntry": ("file_entries", ()),
    "UploadSession": ("uploads", ()),
}


def json_fields(record: T) -> T:
    """``record`` with its JSON fields copied through the codec (StorageError when JSON
    cannot hold one)."""
    _, fields = TABLES[type(record).__name__]
    owner = str(getattr(record, "id", ""))
    copied = {f: json.loads(dumps(getattr(record, f), f, owner)) for f in fields}
    return dataclasses.replace(record, **copied)  # type: ignore[type-var]


def eval_run_matches(run: EvalRun, filters: EvalRunFilters,
                     results: Iterable[EvalResult]) -> bool:
    """Whether ``run`` passes ``filters`` (``eval_id`` / ``block_id``: a result of the run
    replays that eval / block)."""
    if filters.workflow_id not in (None, run.workflow_id):
        return False
    if filters.statuses and run.status not in filters.statuses:
        return False
    if run.status in filters.exclude_statuses or (filters.triggers and
                                                   run.trigger not in filters.triggers):
        return False
    if filters.created_from is not None and run.created_at < filters.created_from:
        return False
    if filters.created_to is not None and run.created_at >= filters.created_to:
        return False
    if filters.eval_id is None and filters.block_id is None:
        return True
    mine = [r for r in results if r.eval_run_id == run.id]
    return any(filters.eval_id in (None, r.eval_id) and filters.block_id in (None, r.block_id)
               for r in mine)


def file_matches(entry: FileEntry, filters: FileFilters) -> bool:
    """Whether a file passes ``filters`` (``filename``: a case-insensitive substring)."""
    if filters.filename and filters.filename.lower() not in entry.filename.lower():
        return False
    if filters.mime_type not in (None, entry.mime_type):
        return False
    if filters.created_from is not None and entry.created_at < filters.created_from:
        return False
    return filters.created_to is None or entry.created_at < filters.created_to


def _columns(kind: type) -> list[str]:
    return [f.name for f in dataclasses.fields(kind)]


def _row(record: Any) -> list[Any]:
    _, fields = TABLES[type(record).__name__]
    owner = str(getattr(record, "id", ""))
    out = []
    for name in _columns(type(record)):
        value = getattr(record, name)
        out.append(dumps(value, name, owner) if name in fields else value)
    return out


def _record(kind: type[T], row: Sequence[Any]) -> T:
    _, fields = TABLES[kind.__name__]
    values = {name: loads(value) if name in fields else value
              for name, value in zip(_columns(kind), row, strict=True)}
    if "cancel_requested" in values:
        values["cancel_requested"] = bool(values["cancel_requested"])
    return kind(**values)


def _replace(conn: Any, record: Any, key: Sequence[str] = ("id",)) -> None:
    table, _ = TABLES[type(record).__name__]
    columns = _columns(type(record))
    where = " AND ".join(f"{k} = ?" for k in key)
    conn.execute(f"DELETE FROM {table} WHERE {where}", [getattr(record, k) for k in key])
    conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                 f"({', '.join('?' * len(columns))})", _row(record))


class SQLEvals:
    """Evals and files over a :class:`~store.connection.Database`; mixed into the SQLite
    store (and the PostgreSQL store, whose database takes the same SQL)."""

    db: Database

    def _save(self, record: Any, action: str, key: Sequence[str] = ("id",)) -> None:
        db = self.db
        with db.lock, db.guard(action):
            db.write(_replace, record, key)

    def _select(self, kind: type[T], where: str, params: Sequence[Any], action: str
                ) -> list[T]:
        table, _ = TABLES[kind.__name__]
        with self.db.read(action) as conn:
            rows = conn.execute(f"SELECT {', '.join(_columns(kind))} FROM {table} "
                                f"WHERE {where} ORDER BY created_at, id", list(params)
                                ).fetchall()
        return [_record(kind, r) for r in rows]

    def _one(self, kind: type[T], ident: str, org: str, what: str) -> T:
        found = self._select(kind, "id = ? AND organization_id = ?", (ident, org),
                             f"reading {what} {ident}")
        if not found:
            raise NotFoundError(what, ident)
        return found[0]

    @staticmethod
    def _page(rows: list[T], *, limit: int, after: str | None, before: str | None,
              descending: bool, kind: str) -> RecordPage[T]:
        ordered = list(reversed(rows)) if descending else rows
        return keyset_page(ordered, lambda r: r.id, limit=limit, after=after,  # type: ignore[attr-defined]
                           before=before, kind=kind)

    # ------------------------------------------------------------------ evals

    def save_eval(self, record: EvalDefinition) -> None:
        """Insert or replace an eval (committed)."""
        self._save(record, "saving an eval")

    def get_eval(self, eval_id: str, organization_id: str) -> EvalDefinition:
        """One eval. Raises NotFoundError."""
        from engine.contracts.evals import EvalDefinition

        return self._one(EvalDefinition, eval_id, organization_id, "eval")

    def delete_eval(self, eval_id: str, organization_id: str) -> None:
        """Delete an eval. Raises NotFoundError."""
        self.get_eval(eval_id, organization_id)
        db = self.db
        with db.lock, db.guard("deleting an eval"):
            db.write(lambda c: c.execute("DELETE FROM evals WHERE id = ?", (eval_id,)))

    def page_evals(self, organization_id: str, *, workflow_id: str,
                   block_id: str | None = None, limit: int = 50, after: str | None = None,
                   before: str | None = None, descending: bool = True
                   ) -> RecordPage[EvalDefinition]:
        """One page of a workflow's evals (optionally of one block)."""
        where, params = "organization_id = ? AND workflow_id = ?", [organization_id, workflow_id]
        if block_id is not None:
            where, params = where + " AND block_id = ?", [*params, block_id]
        from engine.contracts.evals import EvalDefinition

        rows = self._select(EvalDefinition, where, params, "listing evals")
        return self._page(rows, limit=limit, after=after, before=before,
                          descending=descending, kind="eval")

    # ------------------------------------------------------------------ runs

    def save_eval_run(self, run: EvalRun) -> None:
        """Insert or replace an eval run; a stored cancel request (and a stored
        ``cancelled``) is kept."""
        def write(conn: Any) -> None:
            old = conn.execute("SELECT cancel_requested, status, reason, completed_at FROM "
                               "eval_runs WHERE id = ?", (run.id,)).fetchone()
            new = run
            if old is not None and bool(old[0]) and not run.cancel_requested:
                new = dataclasses.replace(new, cancel_requested=True, reason=old[2])
            if old is not None and old[1] == "cancelled":
                new = dataclasses.replace(new, status="cancelled",
                                          completed_at=old[3] or run.completed_at)
            _replace(conn, new)

        db = self.db
        with db.lock, db.guard("saving an eval run"):
            db.write(write)

    def cancel_eval_run(self, run_id: str, organization_id: str, *, reason: str,
                        now: float) -> EvalRun:
        """Flag a run for cancellation (a pending one ends at once). Raises NotFoundError."""
        run = self.get_eval_run(run_id, organization_id)
        run = dataclasses.replace(run, cancel_requested=True, reason=reason)
        if run.status in ("pending", "queued"):
            run = dataclasses.replace(run, status="cancelled", completed_at=now)
        self._save(run, "cancelling an eval run")
        return run

    def get_eval_run(self, run_id: str, organization_id: str) -> EvalRun:
        """One eval run. Raises NotFoundError."""
        from engine.contracts.evals import EvalRun

        return self._one(EvalRun, run_id, organization_id, "eval run")

    def page_eval_runs(self, organization_id: str, filters: EvalRunFilters, *,
                       limit: int = 50, after: str | None = None, before: str | None = None,
                       descending: bool = True) -> RecordPage[EvalRun]:
        """One page of eval runs matching ``filters``."""
        from engine.contracts.evals import EvalResult, EvalRun

        runs = self._select(EvalRun, "organization_id = ?", [organization_id],
                            "listing eval runs")
        results: list[EvalResult] = []
        if filters.eval_id is not None or filters.block_id is not None:
            results = self._select(EvalResult, "organization_id = ?", [organization_id],
                                   "listing eval results")
        rows = [r for r in runs if eval_run_matches(r, filters, results)]
        return self._page(rows, limit=limit, after=after, before=before,
                          descending=descending, kind="eval run")

    # ------------------------------------------------------------------ results

    def save_eval_result(self, result: EvalResult) -> None:
        """Insert or replace one result (committed)."""
        self._save(result, "saving an eval result")

    def get_eval_result(self, result_id: str, organization_id: str) -> EvalResult:
        """One result. Raises NotFoundError."""
        from engine.contracts.evals import EvalResult

        return self._one(EvalResult, result_id, organization_id, "eval result")

    def page_eval_results(self, organization_id: str, *, eval_run_id: str | None = None,
                          eval_id: str | None = None, limit: int = 20,
                          after: str | None = None, before: str | None = None,
                          descending: bool = True) -> RecordPage[EvalResult]:
        """One page of results of one run, or of one eval across runs."""
        where, params = "organization_id = ?", [organization_id]
        if eval_run_id is not None:
            where, params = where + " AND eval_run_id = ?", [*params, eval_run_id]
        if eval_id is not None:
            where, params = where + " AND eval_id = ?", [*params, eval_id]
        from engine.contracts.evals import EvalResult

        rows = self._select(EvalResult, where, params, "listing eval results")
        return self._page(rows, limit=limit, after=after, before=before,
                          descending=descending, kind="eval result")

    # ------------------------------------------------------------------ executions

    def save_block_execution(self, record: BlockExecution) -> None:
        """Insert or replace a block execution (committed)."""
        self._save(record, "saving a block execution")

    def get_block_execution(self, execution_id: str, organization_id: str) -> BlockExecution:
        """One block execution. Raises NotFoundError."""
        from engine.contracts.evals import BlockExecution

        return self._one(BlockExecution, execution_id, organization_id, "block execution")

    def page_block_executions(self, organization_id: str, *, run_id: str, block_id: str,
                              limit: int = 20, after: str | None = None,
                              before: str | None = None, descending: bool = True
                              ) -> RecordPage[BlockExecution]:
        """One page of the executions of one block of one run."""
        from engine.contracts.evals import BlockExecution

        rows = self._select(BlockExecution, "organization_id = ? AND source_run_id = ? AND "
                            "block_id = ?", [organization_id, run_id, block_id],
                            "listing block executions")
        return self._page(rows, limit=limit, after=after, before=before,
                          descending=descending, kind="block execution")

    # ------------------------------------------------------------------ files

    def record_file(self, entry: FileEntry) -> FileEntry:
        """Record that an organization owns a file; the first entry wins (committed)."""
        def write(conn: Any) -> None:
            found = conn.execute("SELECT 1 FROM file_entries WHERE organization_id = ? AND "
                                 "id = ?", (entry.organization_id, entry.id)).fetchone()
            if found is None:
                _replace(conn, entry, ("organization_id", "id"))

        db = self.db
        with db.lock, db.guard("recording a file"):
            db.write(write)
        return self.file_entry(entry.id, entry.organization_id)

    def file_entry(self, file_id: str, organization_id: str) -> FileEntry:
        """One file of an organization. Raises NotFoundError."""
        from engine.contracts.catalog import FileEntry

        return self._one(FileEntry, file_id, organization_id, "file")

    def page_files(self, organization_id: str, filters: FileFilters, *, limit: int = 10,
                   after: str | None = None, before: str | None = None,
                   descending: bool = True) -> RecordPage[FileEntry]:
        """One page of an organization's files."""
        from engine.contracts.catalog import FileEntry

        rows = [f for f in self._select(FileEntry, "organization_id = ?", [organization_id],
                                        "listing files") if file_matches(f, filters)]
        return self._page(rows, limit=limit, after=after, before=before,
                          descending=descending, kind="file")

    def save_upload(self, session: UploadSession) -> None:
        """Insert or replace an upload session (committed)."""
        self._save(session, "saving an upload")

    def upload(self, upload_id: str) -> UploadSession:
        """One upload session. Raises NotFoundError."""
        from engine.contracts.catalog import UploadSession

        found = self._select(UploadSession, "id = ?", [upload_id], f"reading upload {upload_id}")
        if not found:
            raise NotFoundError("upload", upload_id)
        return found[0]

