"""Keyset pages cut from rows already in list order (a store's small lists).

Evals, eval runs, results, block executions, files: a list is every row of one scope
(an organization's, a run's) ordered by ``(created_at, id)``, and a page is cut from it
here. A cursor is the id of a row of the same list; any other id is ``NotFoundError``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from engine.contracts.errors import NotFoundError

if TYPE_CHECKING:
    from engine.contracts.reads import RecordPage

T = TypeVar("T")


def keyset_page(rows: Sequence[T], ident: Callable[[T], str], *, limit: int,
                after: str | None, before: str | None, kind: str) -> RecordPage[T]:
    """One page of ``rows`` (already in list order).

    Raises:
        NotFoundError: the cursor is not one of the rows (``NotFoundError(kind, cursor)``).
        UsageError: both cursors, or a limit out of range.
    """
    # here: store.evals, a base of every SQL store, imports this module; a page is only
    # built when a list is read
    from engine.contracts.reads import RecordPage, check_page

    check_page(limit, after, before)
    ids = [ident(r) for r in rows]
    start, stop = 0, len(rows)
    cursor = after or before
    if cursor is not None:
        if cursor not in ids:
            raise NotFoundError(kind, cursor, "Cursors are ids from list_metadata of the "
                                "same list.")
        at = ids.index(cursor)
        start, stop = (at + 1, len(rows)) if after else (max(0, at - limit), at)
    if after or cursor is None:
        stop = min(stop, start + limit)
    return RecordPage(items=list(rows[start:stop]), more_before=start > 0,
                      more_after=stop < len(rows))


def ordered(rows: Sequence[T], key: Callable[[T], tuple[float, str]], *,
            descending: bool) -> list[T]:
    """``rows`` by ``(created_at, id)``, newest first when ``descending``."""
    return sorted(rows, key=key, reverse=descending)
