"""Filtered, paginated queries the HTTP API serves beyond :class:`store.api.ReadAPI`.

* :func:`search_runs`: runs filtered by status (and exclusion), workflow, trigger,
  creation date range, duration, a text search and metadata pairs; newest or oldest
  first; keyset cursors on ``(created_at, id)`` like :meth:`ReadAPI.list_runs`.
* :func:`search_reviews`: the review queue of one organization, filtered by workflow,
  run, block, step and decision status, oldest first by default, cursors on
  ``(created_at, id)``.

Both reuse the read API's keyset machinery and row decoding, so pages, cursors and
organization scoping behave exactly as in the rest of the read API.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.contracts.errors import NotFoundError
from store.api import Page, ReadAPI, WorkflowRun
from store.paging import _add_in, _check_page, _keyset

#: Run statuses as stored, and the names the Retab SDK also sends for them.
RUN_STATUSES = ("pending", "queued", "running", "awaiting_review", "completed", "error",
                "cancelled")
RUN_STATUS_ALIASES = {"failed": ["error"], "pending": ["pending", "queued"]}


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFilters:
    """Filters of :func:`search_runs` (all optional; None means no filter).

    Attributes:
        statuses / exclude_statuses: stored statuses (see :data:`RUN_STATUS_ALIASES`).
        workflow_id: runs of this workflow.
        trigger_types: ``manual``, ``api``, ``restart``...
        created_from / created_to: epoch seconds, inclusive / exclusive.
        min_duration_ms / max_duration_ms: finished runs whose duration is in range.
        search: a substring of the run id, workflow id or workflow name.
        metadata: ``{key: value}`` pairs the run's metadata must all hold.
    """

    statuses: Sequence[str] | None = None
    exclude_statuses: Sequence[str] | None = None
    workflow_id: str | None = None
    trigger_types: Sequence[str] | None = None
    created_from: float | None = None
    created_to: float | None = None
    min_duration_ms: int | None = None
    max_duration_ms: int | None = None
    search: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


def expand_run_statuses(values: Sequence[str]) -> list[str]:
    """Stored statuses for SDK status names (``failed`` -> ``error``, ...)."""
    out: list[str] = []
    for value in values:
        for status in RUN_STATUS_ALIASES.get(value, [value]):
            if status not in out:
                out.append(status)
    return out


def _run_where(api: ReadAPI, filters: RunFilters) -> tuple[list[str], list[Any]]:
    where: list[str] = ["1 = 1"]
    params: list[Any] = []
    api._scope_org(where, params)
    if filters.statuses:
        _add_in(where, params, "status", expand_run_statuses(filters.statuses))
    if filters.exclude_statuses:
        excluded = expand_run_statuses(filters.exclude_statuses)
        where.append(f"status NOT IN ({','.join('?' * len(excluded))})")
        params.extend(excluded)
    if filters.workflow_id is not None:
        where.append("workflow_id = ?")
        params.append(filters.workflow_id)
    _add_in(where, params, '"trigger"', list(filters.trigger_types or []) or None)
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


def search_runs(api: ReadAPI, filters: RunFilters, *, limit: int = 20,
                after: str | None = None, before: str | None = None,
                descending: bool = True) -> Page[WorkflowRun]:
    """One page of runs matching ``filters`` in creation order.

    Args:
        api: a read API (its organization scopes the result).
        filters: what to keep.
        limit: page size, 1..1000.
        after / before: a run id from ``list_metadata`` of a previous page.
        descending: newest first (default) or oldest first.

    Raises:
        NotFoundError: the cursor is not a run visible to this organization.
        UsageError: both cursors, or a limit out of range.
    """
    _check_page(limit, after, before)
    where, params = _run_where(api, filters)
    return api.page_runs(where, params, limit=limit, after=after, before=before,
                         descending=descending)


# --------------------------------------------------------------------------- reviews

REVIEW_COLUMNS = ("id", "run_id", "step_id", "block_id", "status", "data", "decision",
                  "decision_data", "note", "created_at", "decided_at", "organization_id",
                  "workflow_id", "workflow_digest", "run_status", "run_completed_at",
                  "definition", "block_type")
_REVIEWS_FROM = (
    "(SELECT rv.id AS id, rv.run_id AS run_id, rv.step_id AS step_id, "
    "rv.block_id AS block_id, rv.status AS status, rv.data AS data, "
    "rv.decision AS decision, rv.decision_data AS decision_data, rv.note AS note, "
    "rv.created_at AS created_at, rv.decided_at AS decided_at, "
    "r.organization_id AS organization_id, r.workflow_id AS workflow_id, "
    "r.workflow_digest AS workflow_digest, r.status AS run_status, "
    "r.completed_at AS run_completed_at, "
    "(SELECT d.definition FROM definitions d WHERE d.id = r.definition_id) AS definition, "
    "(SELECT s.block_type FROM steps s WHERE s.run_id = rv.run_id AND s.step_id = rv.step_id)"
    " AS block_type FROM reviews rv JOIN runs r ON r.id = rv.run_id)"
)
#: ``decision_status`` filter values -> SQL condition on the review row.
DECISION_FILTERS = {
    "pending": "decision IS NULL AND run_status NOT IN ('cancelled', 'completed', 'error')",
    "approved": "decision = 'approved'",
    "rejected": "decision = 'rejected'",
    "decided": "decision IS NOT NULL",
    "cancelled": "decision IS NULL AND run_status IN ('cancelled', 'completed', 'error')",
    "all": "1 = 1",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewFilters:
    """Filters of :func:`search_reviews`; ``decision_status`` is a key of
    :data:`DECISION_FILTERS`."""

    workflow_id: str | None = None
    run_id: str | None = None
    block_id: str | None = None
    step_id: str | None = None
    decision_status: str = "pending"


def review_row(api: ReadAPI, review_id: str) -> dict[str, Any]:
    """One review joined with its run (``REVIEW_COLUMNS``), scoped to the organization.

    Raises:
        NotFoundError: no such review visible to this organization.
    """
    where, params = ["id = ?"], [review_id]
    api._scope_org(where, params)
    cols = ", ".join(REVIEW_COLUMNS)
    with api._read(f"reading review {review_id}") as conn:
        row = conn.execute(f"SELECT {cols} FROM {_REVIEWS_FROM} WHERE {' AND '.join(where)}",
                           params).fetchone()
    if row is None:
        raise NotFoundError("review", review_id,
                            "List open reviews with GET /v1/workflows/reviews.")
    return _decode_review(dict(zip(REVIEW_COLUMNS, row, strict=True)))


def _decode_review(row: dict[str, Any]) -> dict[str, Any]:
    for column in ("data", "decision_data", "definition"):
        raw = row[column]
        row[column] = json.loads(raw) if isinstance(raw, str) and raw else None
    return row


def search_reviews(api: ReadAPI, filters: ReviewFilters, *, limit: int = 50,
                   after: str | None = None, before: str | None = None,
                   descending: bool = False) -> tuple[list[dict[str, Any]], bool, bool]:
    """One page of reviews (rows of ``REVIEW_COLUMNS``), oldest first by default.

    Returns:
        ``(rows, more_before, more_after)``.

    Raises:
        NotFoundError: the cursor is not a review visible to this organization.
        UsageError: both cursors, or a limit out of range.
    """
    _check_page(limit, after, before)
    where: list[str] = [DECISION_FILTERS[filters.decision_status]]
    params: list[Any] = []
    api._scope_org(where, params)
    for column in ("workflow_id", "run_id", "block_id", "step_id"):
        value = getattr(filters, column)
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    cursor = after or before
    key = None
    if cursor is not None:
        row = review_row(api, cursor)
        key = (row["created_at"], row["id"])
    with api._read("listing reviews") as conn:
        rows, more_before, more_after = _keyset(
            conn, _REVIEWS_FROM, REVIEW_COLUMNS, where, params, ("created_at", "id"), key,
            forward=before is None, limit=limit, descending=descending)
    return [_decode_review(r) for r in rows], more_before, more_after
