"""The memory store's evals, eval runs and results, block executions, files and uploads
(:class:`~engine.contracts.evals.EvalStore`, :class:`~engine.contracts.catalog.FileCatalog`).

Records are frozen dataclasses, kept as given and handed out as they are; JSON fields
are copied through the codec on the way in, so a value JSON cannot hold is refused as
the SQLite store refuses it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from operator import attrgetter
from typing import Any, TypeVar

from engine.contracts.catalog import FileEntry, FileFilters, UploadSession
from engine.contracts.errors import NotFoundError
from engine.contracts.evals import (
    BlockExecution,
    EvalDefinition,
    EvalResult,
    EvalRun,
    EvalRunFilters,
)
from engine.contracts.reads import RecordPage
from store.evals import eval_run_matches, file_matches, json_fields
from store.paging import keyset_page

T = TypeVar("T")


#: A record's id (every record kept here has one).
_ident: Callable[[Any], str] = attrgetter("id")


def _key(row: Any) -> tuple[float, str]:
    return (row.created_at, row.id)


@dataclass(slots=True)
class _Rows:
    evals: dict[str, EvalDefinition] = field(default_factory=dict)
    runs: dict[str, EvalRun] = field(default_factory=dict)
    results: dict[str, EvalResult] = field(default_factory=dict)
    executions: dict[str, BlockExecution] = field(default_factory=dict)
    files: dict[tuple[str, str], FileEntry] = field(default_factory=dict)
    uploads: dict[str, UploadSession] = field(default_factory=dict)


class MemoryEvals:
    """Evals and files in memory; mixed into :class:`store.memory.MemoryStore`."""

    def __init__(self) -> None:
        self._eval_rows = _Rows()
        self._eval_lock = threading.RLock()

    def _page(self, rows: list[T], *, limit: int, after: str | None, before: str | None,
              descending: bool, kind: str) -> RecordPage[T]:
        rows = sorted(rows, key=_key, reverse=descending)
        return keyset_page(rows, _ident, limit=limit, after=after, before=before,
                           kind=kind)

    @staticmethod
    def _owned(found: T | None, org: str, kind: str, ident: str) -> T:
        if found is None or getattr(found, "organization_id", None) != org:
            raise NotFoundError(kind, ident)
        return found

    # ------------------------------------------------------------------ evals

    def save_eval(self, record: EvalDefinition) -> None:
        """Insert or replace an eval."""
        with self._eval_lock:
            self._eval_rows.evals[record.id] = json_fields(record)

    def get_eval(self, eval_id: str, organization_id: str) -> EvalDefinition:
        """One eval. Raises NotFoundError."""
        with self._eval_lock:
            return self._owned(self._eval_rows.evals.get(eval_id), organization_id, "eval",
                               eval_id)

    def delete_eval(self, eval_id: str, organization_id: str) -> None:
        """Delete an eval. Raises NotFoundError."""
        with self._eval_lock:
            self.get_eval(eval_id, organization_id)
            del self._eval_rows.evals[eval_id]

    def page_evals(self, organization_id: str, *, workflow_id: str,
                   block_id: str | None = None, limit: int = 50, after: str | None = None,
                   before: str | None = None, descending: bool = True
                   ) -> RecordPage[EvalDefinition]:
        """One page of a workflow's evals."""
        with self._eval_lock:
            rows = [e for e in self._eval_rows.evals.values()
                    if e.organization_id == organization_id and e.workflow_id == workflow_id
                    and block_id in (None, e.block_id)]
            return self._page(rows, limit=limit, after=after, before=before,
                              descending=descending, kind="eval")

    # ------------------------------------------------------------------ runs

    def save_eval_run(self, run: EvalRun) -> None:
        """Insert or replace an eval run (a stored cancel request is kept)."""
        with self._eval_lock:
            old = self._eval_rows.runs.get(run.id)
            if old is not None:
                if old.cancel_requested and not run.cancel_requested:
                    run = replace(run, cancel_requested=True, reason=old.reason)
                if old.status == "cancelled":
                    run = replace(run, status="cancelled",
                                  completed_at=old.completed_at or run.completed_at)
            self._eval_rows.runs[run.id] = json_fields(run)

    def cancel_eval_run(self, run_id: str, organization_id: str, *, reason: str,
                        now: float) -> EvalRun:
        """Flag a run for cancellation (a pending one ends at once)."""
        with self._eval_lock:
            run = self.get_eval_run(run_id, organization_id)
            run = replace(run, cancel_requested=True, reason=reason)
            if run.status in ("pending", "queued"):
                run = replace(run, status="cancelled", completed_at=now)
            self._eval_rows.runs[run_id] = run
            return run

    def get_eval_run(self, run_id: str, organization_id: str) -> EvalRun:
        """One eval run. Raises NotFoundError."""
        with self._eval_lock:
            return self._owned(self._eval_rows.runs.get(run_id), organization_id, "eval run",
                               run_id)

    def page_eval_runs(self, organization_id: str, filters: EvalRunFilters, *,
                       limit: int = 50, after: str | None = None, before: str | None = None,
                       descending: bool = True) -> RecordPage[EvalRun]:
        """One page of eval runs matching ``filters``."""
        with self._eval_lock:
            results = list(self._eval_rows.results.values())
            rows = [r for r in self._eval_rows.runs.values()
                    if r.organization_id == organization_id
                    and eval_run_matches(r, filters, results)]
            return self._page(rows, limit=limit, after=after, before=before,
                              descending=descending, kind="eval run")

    # ------------------------------------------------------------------ results

    def save_eval_result(self, result: EvalResult) -> None:
        """Insert or replace a result."""
        with self._eval_lock:
            self._eval_rows.results[result.id] = json_fields(result)

    def get_eval_result(self, result_id: str, organization_id: str) -> EvalResult:
        """One result. Raises NotFoundError."""
        with self._eval_lock:
            return self._owned(self._eval_rows.results.get(result_id), organization_id,
                               "eval result", result_id)

    def page_eval_results(self, organization_id: str, *, eval_run_id: str | None = None,
                          eval_id: str | None = None, limit: int = 20,
                          after: str | None = None, before: str | None = None,
                          descending: bool = True) -> RecordPage[EvalResult]:
        """One page of results of a run, or of an eval."""
        with self._eval_lock:
            rows = [r for r in self._eval_rows.results.values()
                    if r.organization_id == organization_id
                    and eval_run_id in (None, r.eval_run_id) and eval_id in (None, r.eval_id)]
            return self._page(rows, limit=limit, after=after, before=before,
                              descending=descending, kind="eval result")

    # ------------------------------------------------------------------ executions

    def save_block_execution(self, record: BlockExecution) -> None:
        """Insert or replace a block execution."""
        with self._eval_lock:
            self._eval_rows.executions[record.id] = json_fields(record)

    def get_block_execution(self, execution_id: str, organization_id: str) -> BlockExecution:
        """One block execution. Raises NotFoundError."""
        with self._eval_lock:
            return self._owned(self._eval_rows.executions.get(execution_id), organization_id,
                               "block execution", execution_id)

    def page_block_executions(self, organization_id: str, *, run_id: str, block_id: str,
                              limit: int = 20, after: str | None = None,
                              before: str | None = None, descending: bool = True
                              ) -> RecordPage[BlockExecution]:
        """One page of the executions of one block of one run."""
        with self._eval_lock:
            rows = [x for x in self._eval_rows.executions.values()
                    if x.organization_id == organization_id and x.source_run_id == run_id
                    and x.block_id == block_id]
            return self._page(rows, limit=limit, after=after, before=before,
                              descending=descending, kind="block execution")

    # ------------------------------------------------------------------ files

    def record_file(self, entry: FileEntry) -> FileEntry:
        """Record that an organization owns a file (the first entry wins)."""
        with self._eval_lock:
            return self._eval_rows.files.setdefault((entry.organization_id, entry.id), entry)

    def file_entry(self, file_id: str, organization_id: str) -> FileEntry:
        """One file of an organization. Raises NotFoundError."""
        with self._eval_lock:
            found = self._eval_rows.files.get((organization_id, file_id))
            if found is None:
                raise NotFoundError("file", file_id)
            return found

    def page_files(self, organization_id: str, filters: FileFilters, *, limit: int = 10,
                   after: str | None = None, before: str | None = None,
                   descending: bool = True) -> RecordPage[FileEntry]:
        """One page of an organization's files."""
        with self._eval_lock:
            rows = [f for (org, _), f in self._eval_rows.files.items()
                    if org == organization_id and file_matches(f, filters)]
            return self._page(rows, limit=limit, after=after, before=before,
                              descending=descending, kind="file")

    def save_upload(self, session: UploadSession) -> None:
        """Insert or replace an upload session."""
        with self._eval_lock:
            self._eval_rows.uploads[session.id] = session

    def upload(self, upload_id: str) -> UploadSession:
        """One upload session. Raises NotFoundError."""
        with self._eval_lock:
            found = self._eval_rows.uploads.get(upload_id)
            if found is None:
                raise NotFoundError("upload", upload_id)
            return found

    def _forget_workflow_evals(self, workflow_id: str, organization_id: str) -> None:
        """Drop a deleted workflow's evals, eval runs and results."""
        with self._eval_lock:
            rows = self._eval_rows
            for table in (rows.evals, rows.runs, rows.results):
                for key in [k for k, v in table.items()
                            if v.workflow_id == workflow_id
                            and v.organization_id == organization_id]:
                    del table[key]
