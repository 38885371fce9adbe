"""Query-parameter checks shared by the routes: unknown parameters, enums, dates, cursors.

Unknown query parameters are refused (422 ``UNKNOWN_PARAMETER``, listing the accepted
ones) rather than ignored, so a misspelt filter never silently returns everything.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

from fastapi import Request

from engine.contracts.errors import NotFoundError
from engine.server.errors import ApiError
from engine.server.run_metadata import check_filter

T = TypeVar("T")
ALWAYS_ALLOWED = frozenset({"access_token"})
_allowed_cache: dict[int, frozenset[str]] = {}


def _route_params(route: Any) -> frozenset[str]:
    names: set[str] = set(ALWAYS_ALLOWED)
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        names.update(p.alias for p in dependant.query_params)
        stack.extend(dependant.dependencies)
    return frozenset(names)


async def reject_unknown_query(request: Request) -> None:
    """Router dependency: 422 when the query has a parameter the route does not take, 400
    when it has both paging cursors (Retab answers that 400)."""
    route = request.scope.get("route")
    if route is None or not hasattr(route, "dependant"):
        return
    allowed = _allowed_cache.get(id(route))
    if allowed is None:
        allowed = _allowed_cache[id(route)] = _route_params(route)
    if "after" in request.query_params and "before" in request.query_params:
        raise ApiError(400, "CONFLICTING_PARAMETERS",
                       "Pass either after (next page) or before (previous page), not both: "
                       "drop one of them.", {"parameters": ["after", "before"]})
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise ApiError(422, "UNKNOWN_PARAMETER",
                       f"Unknown query parameter{'s' if len(unknown) > 1 else ''} "
                       f"{', '.join(unknown)}. This endpoint accepts: "
                       f"{', '.join(sorted(allowed))}.",
                       {"unknown": unknown, "allowed": sorted(allowed)})


def split_values(values: Sequence[str] | None) -> list[str] | None:
    """Repeated or comma-separated values as one list (None when absent)."""
    if not values:
        return None
    out = [v.strip() for raw in values for v in raw.split(",") if v.strip()]
    return out or None


def check_choices(name: str, values: Iterable[str] | None, allowed: Iterable[str]) -> None:
    """422 ``INVALID_PARAMETER`` when a value is not one of ``allowed``."""
    options = sorted(set(allowed))
    bad = sorted({v for v in values or () if v not in options})
    if bad:
        raise ApiError(422, "INVALID_PARAMETER",
                       f"{name}: unknown value{'s' if len(bad) > 1 else ''} {', '.join(bad)}. "
                       f"Use one of: {', '.join(options)}.",
                       {"parameter": name, "invalid": bad, "allowed": options})


def parse_when(name: str, value: str | None, *, end: bool = False) -> float | None:
    """``YYYY-MM-DD`` or an ISO-8601 datetime as epoch seconds (UTC when no zone).

    A bare date used as an end bound means the end of that day.
    """
    if value is None or value == "":
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime.combine(day, time(), UTC)
            return (moment + timedelta(days=1) if end else moment).timestamp()
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(422, "INVALID_PARAMETER",
                       f"{name}: {value!r} is not a date. Use YYYY-MM-DD or an ISO-8601 "
                       "datetime such as 2026-03-12T09:00:00Z.", {"parameter": name}) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def parse_metadata(value: str | None) -> dict[str, str]:
    """The ``metadata`` filter: a JSON object of string pairs, at most as many as a run
    takes (:data:`engine.server.run_metadata.MAX_METADATA_KEYS`)."""
    if not value:
        return {}
    try:
        data = json.loads(value)
    except (json.JSONDecodeError, RecursionError):  # "[[[[..." deeper than the stack
        data = None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ApiError(422, "INVALID_PARAMETER",
                       'metadata: pass a JSON object of strings, e.g. {"customer": "acme"}.',
                       {"parameter": "metadata"})
    check_filter(data)
    return {str(k): v for k, v in data.items()}


def with_cursor(call: Callable[[], T], cursor: str | None, what: str) -> T:
    """Run a list query; a cursor it cannot find is 422 ``INVALID_CURSOR``, not 404.

    The resource the list belongs to must have been checked before (its absence is 404).
    """
    try:
        return call()
    except NotFoundError:
        if cursor is None:
            raise
        raise ApiError(422, "INVALID_CURSOR",
                       f"Cursor {cursor!r} is not {what} of this list. Pass the value of "
                       "list_metadata.after (or .before) from the previous page.",
                       {"cursor": cursor}) from None
