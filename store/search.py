"""Filtered, paginated queries the HTTP API serves beyond :class:`store.api.ReadAPI`.

* :func:`search_runs`: runs filtered by status (and exclusion, with the SDK's status
  names), workflow, trigger, creation date range, duration, a text search and metadata
  pairs; newest or oldest first; keyset cursors on ``(created_at, id)`` like
  :meth:`ReadAPI.list_runs`.
* :func:`search_reviews`: the review queue of one organization, filtered by workflow,
  run, block, step and decision status, oldest first by default, cursors on
  ``(created_at, id)``.

Both go through the read API's store and organization, so pages, cursors and
organization scoping behave exactly as in the rest of the read API.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from engine.contracts.reads import ReviewFilters, RunFilters
from store.api import Page, ReadAPI, WorkflowRun

__all__ = [
    "RUN_STATUSES",
    "RUN_STATUS_ALIASES",
    "ReviewFilters",
    "RunFilters",
    "expand_run_statuses",
    "review_row",
    "search_reviews",
    "search_runs",
]

#: Run statuses as stored, and the names the Retab SDK also sends for them.
RUN_STATUSES = ("pending", "queued", "running", "awaiting_review", "completed", "error",
                "cancelled")
RUN_STATUS_ALIASES = {"failed": ["error"], "pending": ["pending", "queued"]}


def expand_run_statuses(values: Sequence[str]) -> list[str]:
    """Stored statuses for SDK status names (``failed`` -> ``error``, ...)."""
    out: list[str] = []
    for value in values:
        for status in RUN_STATUS_ALIASES.get(value, [value]):
            if status not in out:
                out.append(status)
    return out


def search_runs(api: ReadAPI, filters: RunFilters, *, limit: int = 20,
                after: str | None = None, before: str | None = None,
                descending: bool = True) -> Page[WorkflowRun]:
    """One page of runs matching ``filters`` (SDK status names allowed) in creation order.

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
    stored = dataclasses.replace(
        filters,
        statuses=expand_run_statuses(filters.statuses) if filters.statuses else None,
        exclude_statuses=(expand_run_statuses(filters.exclude_statuses)
                          if filters.exclude_statuses else None))
    return api.page_runs(stored, limit=limit, after=after, before=before,
                         descending=descending)


def review_row(api: ReadAPI, review_id: str) -> dict[str, Any]:
    """One review joined with its run (a :class:`~engine.contracts.reads.ReviewEntry` as a
    dict), scoped to the organization.

    Raises:
        NotFoundError: no such review visible to this organization.
    """
    return api.reads.read_review_entry(review_id, organization_id=api.organization_id).to_dict()


def search_reviews(api: ReadAPI, filters: ReviewFilters, *, limit: int = 50,
                   after: str | None = None, before: str | None = None,
                   descending: bool = False) -> tuple[list[dict[str, Any]], bool, bool]:
    """One page of reviews (dicts as :func:`review_row` gives), oldest first by default.

    Returns:
        ``(rows, more_before, more_after)``.

    Raises:
        NotFoundError: the cursor is not a review visible to this organization.
        UsageError: both cursors, or a limit out of range.
    """
    page = api.reads.page_review_entries(filters, organization_id=api.organization_id,
                                         limit=limit, after=after, before=before,
                                         descending=descending)
    return [e.to_dict() for e in page.items], page.more_before, page.more_after
