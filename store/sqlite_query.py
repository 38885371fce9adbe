"""SQL for the read queries: filters as WHERE terms, keyset pages, rows as records.

The typed filters of :mod:`engine.contracts.reads` become WHERE terms here, and only
here (:func:`run_where`, :func:`review_where`, :func:`step_where`). Lists are
keyset-paginated (:func:`keyset`): steps on their per-run creation ``seq``, runs and
reviews on ``(created_at, id)``. Stored payload maps may hold ``{"ref": [step_id,
handle]}`` (an input that is another step's output) and ``{"blob": id}`` (a large
payload in the file store); :class:`Resolver` resolves both, in one batched query per
page, while rows become records.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from engine.contracts.bounded import clean_text, json_problem
from engine.contracts.run_record import RunRecord
from store.codec import inline_blobs, loads
from store.files import LocalFileStore
from store.layout import EXCEPTIONAL_STATUSES, EXCEPTIONAL_STATUSES_SQL

if TYPE_CHECKING:  # built by the queries that return them: a run reads back its run only
    from engine.contracts.reads import (
        ReviewEntry,
        ReviewFilters,
        RunFilters,
        StepFilters,
        StepRecord,
    )

STEP_COLUMNS = (
    "run_id", "step_id", "seq", "block_id", "block_type", "label", "status", "scope",
    "retry_count", "inputs", "outputs", "error", "reason", "artifact_id",
    "artifact_operation", "model", "tokens", "cost", "trace_spans", "created_at",
    "started_at", "completed_at", "updated_at", "duration_ms",
)
STEP_SELECT = f"SELECT {', '.join(STEP_COLUMNS)} FROM steps"
RUN_COLUMNS = (
    "id", "workflow_id", "workflow_name", "workflow_digest", "inputs", "metadata",
    "organization_id", "trigger", "status", "failing_step_id", "error", "reason",
    "waiting_for", "outputs", "parent_run_id", "owner_pid", "owner_host", "heartbeat_at",
    "created_at", "started_at", "completed_at",
)
RUN_SELECT = "SELECT " + ", ".join(
    '"trigger"' if c == "trigger" else c for c in RUN_COLUMNS) + " FROM runs"

REVIEW_COLUMNS = ("id", "run_id", "step_id", "block_id", "status", "data", "decision",
                  "decision_data", "note", "created_at", "decided_at", "organization_id",
                  "workflow_id", "workflow_digest", "run_status", "run_completed_at",
                  "definition", "block_type")
#: The review queue: every review joined with its run, its definition and its step.
REVIEWS_FROM = (
    "(SELECT rv.id AS id, rv.run_id AS run_id, rv.step_id AS step_id, "
    "rv.block_id AS block_id, rv.status AS status, rv.data AS data, "
    "rv.decision AS decision, rv.decision_data AS decision_data, rv.note AS note, "
    "rv.created_at AS created_at, rv.decided_at AS decided_at, "
    "r.organization_id AS organization_id, r.workflow_id AS workflow_id, "
    "r.workflow_digest AS workflow_digest, r.status AS run_status, "
    "r.completed_at AS run_completed_at, "
    "(SELECT d.definition FROM definitions d WHERE d.id = r.definition_id) AS definition, "
    "(SELECT s.block_type FROM steps s WHERE s.run_id = rv.run_id AND s.step_id = rv.step_id)"
    " AS block_type FROM reviews rv JOIN runs r ON r.id = rv.run_id) AS review_queue"
)
#: The WHERE term of each :class:`~engine.contracts.reads.DecisionStatus`, by its value.
_DECISION_SQL = {
    "pending": "decision IS NULL AND run_status NOT IN ('cancelled', 'completed', 'error')",
    "approved": "decision = 'approved'",
    "rejected": "decision = 'rejected'",
    "decided": "decision IS NOT NULL",
    "cancelled": "decision IS NULL AND run_status IN ('cancelled', 'completed', 'error')",
    "all": "1 = 1",
}

# --------------------------------------------------------------------------- WHERE terms


def add_in(where: list[str], params: list[Any], column: str,
           values: Sequence[str] | None) -> None:
    """Add ``column IN (values)`` (nothing for no values)."""
    if not values:
        return
    if len(values) == 1:
        where.append(f"{column} = ?")
    else:
        where.append(f"{column} IN ({','.join('?' * len(values))})")
    params.extend(values)


def scope_org(where: list[str], params: list[Any], organization_id: str | None,
              prefix: str = "") -> None:
    """Limit to one organization's rows when ``organization_id`` is given."""
    if organization_id is not None:
        where.append(f"{prefix}organization_id = ?")
        params.append(organization_id)


def run_where(filters: RunFilters, organization_id: str | None
              ) -> tuple[list[str], list[Any]]:
    """WHERE terms and parameters of a run query."""
    where: list[str] = ["1 = 1"]
    params: list[Any] = []
    scope_org(where, params, organization_id)
    add_in(where, params, "status", filters.statuses)
    if filters.exclude_statuses:
        where.append(f"status NOT IN ({','.join('?' * len(filters.exclude_statuses))})")
        params.extend(filters.exclude_statuses)
    if filters.workflow_id is not None:
        where.append("workflow_id = ?")
        params.append(filters.workflow_id)
    add_in(where, params, '"trigger"', filters.trigger_types)
    for op, value in ((">=", filters.created_from), ("<", filters.created_to)):
        if value is not None:
            where.append(f"created_at {op} ?")
            params.append(value)
    duration = "(completed_at - started_at) * 1000.0"
    for op, ms in ((">=", filters.min_duration_ms), ("<=", filters.max_duration_ms)):
        if ms is not None:
            where.append(f"completed_at IS NOT NULL AND started_at IS NOT NULL "
                         f"AND {duration} {op} ?")
            params.append(ms)
    if filters.search:
        pattern = "%" + filters.search.replace("\\", "\\\\").replace("%", "\\%") \
            .replace("_", "\\_") + "%"
        where.append("(id LIKE ? ESCAPE '\\' OR workflow_id LIKE ? ESCAPE '\\' "
                     "OR workflow_name LIKE ? ESCAPE '\\')")
        params.extend([pattern] * 3)
    for key, wanted in filters.metadata.items():
        where.append("json_extract(metadata, ?) = ?")
        params.extend(['$."' + key.replace('"', '""') + '"', wanted])
    return where, params


def step_where(run_id: str, filters: StepFilters) -> tuple[list[str], list[Any]]:
    """WHERE terms and parameters of a step query within one run."""
    where, params = ["run_id = ?"], [run_id]
    for column in ("block_id", "step_id"):
        value = getattr(filters, column)
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    add_in(where, params, "block_type", filters.block_types)
    add_in(where, params, "status", filters.statuses)
    if filters.statuses and set(filters.statuses) <= set(EXCEPTIONAL_STATUSES):
        where.append(EXCEPTIONAL_STATUSES_SQL)  # lets SQLite pick the partial index
    return where, params


def review_where(filters: ReviewFilters, organization_id: str | None
                 ) -> tuple[list[str], list[Any]]:
    """WHERE terms (over :data:`REVIEWS_FROM`) and parameters of a queue query."""
    from engine.contracts.reads import DecisionStatus

    where: list[str] = [_DECISION_SQL[DecisionStatus(filters.decision_status)]]
    params: list[Any] = []
    scope_org(where, params, organization_id)
    for column in ("workflow_id", "run_id", "block_id", "step_id"):
        value = getattr(filters, column)
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    return where, params


# --------------------------------------------------------------------------- keyset


def keyset(
    conn: sqlite3.Connection, table: str, columns: Sequence[str], where: list[str],
    params: list[Any], key_cols: tuple[str, ...], key: tuple[Any, ...] | None, *,
    forward: bool, limit: int, descending: bool,
) -> tuple[list[dict[str, Any]], bool, bool]:
    """Fetch one page past ``key`` in list order (or before it when not ``forward``).

    Returns:
        The rows in list order, and whether rows exist before and after the page.
    """
    # "Later in list order" is ">" ascending, "<" descending.
    later, earlier = (">", "<") if not descending else ("<", ">")
    direction = "ASC" if forward != descending else "DESC"
    key_sql = "(" + ", ".join(key_cols) + ")"
    clauses = list(where)
    if key is not None:
        clauses.append(f"{key_sql} {later if forward else earlier} {_marks(key)}")
    order = ", ".join(f"{c} {direction}" for c in key_cols)
    select = ", ".join(f'"{c}"' for c in columns)
    sql = f"SELECT {select} FROM {table} WHERE {' AND '.join(clauses)} ORDER BY {order} LIMIT ?"
    found = conn.execute(sql, (*params, *(key or ()), limit + 1)).fetchall()
    extra = len(found) > limit
    rows = [dict(zip(columns, r, strict=True)) for r in found[:limit]]
    if not forward:
        rows.reverse()
    if not rows:
        return rows, False, False
    first = tuple(rows[0][c] for c in key_cols)
    last = tuple(rows[-1][c] for c in key_cols)
    probe = f"SELECT 1 FROM {table} WHERE {' AND '.join(where)} AND {key_sql} "
    tail = f" {_marks(first)} LIMIT 1"
    if forward:
        before = conn.execute(probe + earlier + tail, (*params, *first)).fetchone() is not None
        return rows, before, extra
    after = conn.execute(probe + later + tail, (*params, *last)).fetchone() is not None
    return rows, extra, after


def _marks(key: tuple[Any, ...]) -> str:
    return "(" + ", ".join("?" * len(key)) + ")"


# --------------------------------------------------------------------------- records


class Resolver:
    """Turns step rows into records, resolving payload refs and blobs.

    Args:
        conn: the connection the rows came from.
        files: the file store holding large payload blobs.
    """

    def __init__(self, conn: sqlite3.Connection, files: LocalFileStore) -> None:
        self.conn = conn
        self.files = files
        self.blobs: dict[str, Any] = {}
        self.outputs: dict[tuple[str, str], dict[str, Any]] = {}

    def records(self, rows: Sequence[dict[str, Any]]) -> list[StepRecord]:
        """The records of ``rows``, every producer their inputs refer to fetched at once."""
        for row in rows:
            self.outputs[(row["run_id"], row["step_id"])] = loads(row["outputs"]) or {}
        wanted: dict[str, set[str]] = {}
        for row in rows:
            row["inputs_map"] = inputs = loads(row["inputs"]) or {}
            for value in inputs.values():
                if isinstance(value, dict) and "ref" in value:
                    key = (row["run_id"], value["ref"][0])
                    if key not in self.outputs:
                        wanted.setdefault(key[0], set()).add(key[1])
        for run_id, step_ids in wanted.items():
            self._fetch(run_id, sorted(step_ids))
        return [self._record(row) for row in rows]

    def _fetch(self, run_id: str, step_ids: list[str]) -> None:
        for i in range(0, len(step_ids), 500):
            chunk = step_ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT step_id, outputs FROM steps WHERE run_id = ? AND step_id IN ({marks})"
            for step_id, raw in self.conn.execute(sql, (run_id, *chunk)):
                self.outputs[(run_id, step_id)] = loads(raw) or {}

    def _inline(self, value: Any) -> Any:
        return inline_blobs(value, self.files, self.blobs)

    def _inputs(self, row: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for handle, value in row["inputs_map"].items():
            if isinstance(value, dict) and "ref" in value:
                source, source_handle = value["ref"]
                value = self.outputs.get((row["run_id"], source), {}).get(source_handle)
                if value is None:
                    continue  # the producer's output is gone (never stored)
            result[handle] = self._inline(value)
        return result

    def _record(self, row: dict[str, Any]) -> StepRecord:
        from engine.contracts.reads import StepRecord

        stored = self.outputs.get((row["run_id"], row["step_id"]), {})
        return StepRecord(
            run_id=row["run_id"], step_id=row["step_id"], block_id=row["block_id"],
            block_type=row["block_type"], label=row["label"], status=row["status"],
            scope=loads(row["scope"]) or [], retry_count=row["retry_count"],
            inputs=self._inputs(row), outputs={h: self._inline(v) for h, v in stored.items()},
            error=loads(row["error"]), reason=row["reason"], artifact_id=row["artifact_id"],
            artifact_operation=row["artifact_operation"], model=row["model"],
            tokens=self._inline(loads(row["tokens"])), cost=self._inline(loads(row["cost"])),
            trace_spans=self._inline(loads(row["trace_spans"])),
            created_at=row["created_at"], started_at=row["started_at"],
            completed_at=row["completed_at"], updated_at=row["updated_at"],
            duration_ms=row["duration_ms"],
        )


def run_record(row: dict[str, Any], files: LocalFileStore) -> RunRecord:
    """A runs row (:data:`RUN_COLUMNS`) as a record, run outputs' blobs inlined.

    A row whose JSON cannot be read back safely (corrupt, or nested too deeply for
    readers, as older versions could store) keeps its identity and status, with its data
    left out and ``metadata.stepwell_unreadable`` saying why: one bad row never breaks a
    listing.
    """
    try:
        data = _run_data(row, files)
    except (ValueError, TypeError, RecursionError) as exc:
        data = _unreadable(f"{type(exc).__name__}: {exc}")
    else:
        problem = next(filter(None, (json_problem(v) for v in data.values())), None)
        if problem is not None:
            data = _unreadable(problem)
    return RunRecord(
        id=row["id"], workflow_id=row["workflow_id"],
        workflow_name=clean_text(str(row["workflow_name"]), limit=200),
        workflow_digest=row["workflow_digest"], organization_id=row["organization_id"],
        trigger=row["trigger"], status=row["status"], failing_step_id=row["failing_step_id"],
        reason=row["reason"], parent_run_id=row["parent_run_id"], owner_pid=row["owner_pid"],
        owner_host=row["owner_host"], heartbeat_at=row["heartbeat_at"],
        created_at=row["created_at"],
        started_at=row["started_at"], completed_at=row["completed_at"], **data,
    )


def _run_data(row: dict[str, Any], files: LocalFileStore) -> dict[str, Any]:
    outputs = loads(row["outputs"])
    if outputs is not None:
        outputs = {key: inline_blobs(value, files) for key, value in outputs.items()}
    return {"inputs": loads(row["inputs"]) or {}, "metadata": loads(row["metadata"]) or {},
            "error": loads(row["error"]), "waiting_for": loads(row["waiting_for"]),
            "outputs": outputs}


def _unreadable(problem: str) -> dict[str, Any]:
    note = (f"this run's stored data cannot be read back ({problem[:200]}); it is left "
            "out of this listing")
    return {"inputs": {}, "metadata": {"stepwell_unreadable": note}, "error": None,
            "waiting_for": None, "outputs": None}


def review_entry(row: dict[str, Any]) -> ReviewEntry:
    """A row of :data:`REVIEWS_FROM` as a record, JSON columns decoded."""
    from engine.contracts.reads import ReviewEntry

    values = dict(row)
    for column in ("data", "decision_data", "definition"):
        raw = values[column]
        values[column] = loads(raw) if isinstance(raw, str | bytes) and raw else None
    return ReviewEntry(**values)
