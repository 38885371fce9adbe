"""Lists and scopes of the HTTP API: pages built in memory, required scope parameters.

Lists are ``{"data": [...], "list_metadata": {"before", "after"}}`` (see docs/http.md):
``after`` is the last item's id when more follow, ``before`` the first item's id when
items precede it. :func:`page` cuts one page out of a list already in its order (blocks,
edges and versions are derived lists, not table rows); :func:`page_json` shapes a store
page. A cursor that is not an id of the list is 422 ``INVALID_CURSOR``.

Retab answers a missing or bad scope with 400: :func:`required` raises 400
``MISSING_PARAMETER`` naming the parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from engine.contracts.reads import RecordPage
from engine.server.errors import ApiError

T = TypeVar("T")


def required(name: str, value: T | None, what: str) -> T:
    """``value``, or 400 ``MISSING_PARAMETER`` when it is missing or empty.

    Args:
        name: the parameter.
        value: what the request gave.
        what: what the parameter scopes, for the message ("the workflow whose blocks...").
    """
    if value is None or value == "":
        raise ApiError(400, "MISSING_PARAMETER",
                       f"{name} is required: {what}. Pass ?{name}=...",
                       {"parameter": name})
    return value


def invalid_cursor(cursor: str) -> ApiError:
    """The 422 of a cursor that is not an id of the list."""
    return ApiError(422, "INVALID_CURSOR",
                    f"Cursor {cursor!r} is not an item of this list. Pass the value of "
                    "list_metadata.after (or .before) from the previous page.",
                    {"cursor": cursor})


def page(items: Sequence[T], ids: Sequence[str], *, limit: int, after: str | None,
         before: str | None, shape: Callable[[T], Any]) -> dict[str, Any]:
    """One page of ``items`` (already in list order; ``ids`` are their ids).

    Raises:
        ApiError: 422 ``INVALID_CURSOR`` when the cursor is not one of ``ids``.
    """
    start, stop = 0, len(items)
    cursor = after or before
    if cursor is not None:
        if cursor not in ids:
            raise invalid_cursor(cursor)
        at = list(ids).index(cursor)
        start, stop = (at + 1, len(items)) if after else (max(0, at - limit), at)
    if after or cursor is None:
        stop = min(stop, start + limit)
    chosen = list(items[start:stop])
    return {"data": [shape(i) for i in chosen], "list_metadata": {
        "before": ids[start] if chosen and start > 0 else None,
        "after": ids[stop - 1] if chosen and stop < len(items) else None}}


def page_json(found: RecordPage[T], ident: Callable[[T], str],
              shape: Callable[[T], Any]) -> dict[str, Any]:
    """A store page in the wire shape."""
    items = found.items
    return {"data": [shape(i) for i in items], "list_metadata": {
        "before": ident(items[0]) if items and found.more_before else None,
        "after": ident(items[-1]) if items and found.more_after else None}}
