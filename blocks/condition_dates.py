"""ISO 8601 dates for the condition operators ``is_after``, ``is_before``,
``is_after_or_equal_to`` and ``is_before_or_equal_to`` (pure, no I/O).

Rules
-----
* A value is a date when it is a string that reads as an ISO 8601 calendar date
  (``2026-03-12``) or date-time (``2026-03-12T09:30:00``, ``2026-03-12 09:30``,
  ``...Z``, ``...+02:00``, fractions of seconds). Anything else (numbers, ``"yesterday"``,
  ``"12/03/2026"``) is not a date: a condition on it does not match, and the evaluation
  record says why. A condition whose own ``value`` is not a date fails validation.
* Time zones: a date-time with an offset is an instant; one without an offset is read
  as UTC. Two date-times compare as instants.
* A date without a time compares by calendar day: when either side is a plain date, the
  other side is reduced to its calendar day (in UTC when it has an offset), so
  ``2026-03-12T23:00:00`` is neither after nor before ``2026-03-12``, and is
  ``is_after_or_equal_to`` it.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

#: The date operators, each with the comparison it makes on ``(actual, expected)``.
DATE_OPERATORS: frozenset[str] = frozenset(
    {"is_after", "is_before", "is_after_or_equal_to", "is_before_or_equal_to"}
)

# Python's fromisoformat also reads compact and week forms; stepwell asks for the
# extended calendar form users write, so ``20260312`` (which is also a number-like
# string) is not taken as a date.
_SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?"
                    r"(Z|[+-]\d{2}:?\d{2})?)?$")


def parse_iso(value: Any) -> dt.date | dt.datetime | None:
    """The date or aware UTC date-time a value holds, or None when it is not one.

    Args:
        value: any JSON value.

    Returns:
        A ``date`` for ``YYYY-MM-DD``; a timezone-aware ``datetime`` in UTC for a
        date-time (no offset = UTC); None for anything else.
    """
    if not isinstance(value, str) or not _SHAPE.match(value.strip()):
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return dt.date.fromisoformat(text)
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _comparable(a: dt.date | dt.datetime, b: dt.date | dt.datetime) -> tuple[Any, Any]:
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        return a, b
    day_a = a.date() if isinstance(a, dt.datetime) else a
    day_b = b.date() if isinstance(b, dt.datetime) else b
    return day_a, day_b


def compare_dates(operator: str, actual: Any, expected: Any) -> tuple[bool, str | None]:
    """Apply a date operator.

    Args:
        operator: one of :data:`DATE_OPERATORS`.
        actual: the value found at the condition's path.
        expected: the condition's ``value``.

    Returns:
        ``(matched, reason)``; ``reason`` says why a value that is not a date did not
        match. Never raises on odd data.
    """
    left, right = parse_iso(actual), parse_iso(expected)
    if left is None:
        return False, f"{operator} needs an ISO 8601 date or date-time, found {actual!r}"
    if right is None:
        return False, f"{operator} needs an ISO 8601 date or date-time as value, got {expected!r}"
    a, b = _comparable(left, right)
    checks = {
        "is_after": a > b,
        "is_before": a < b,
        "is_after_or_equal_to": a >= b,
        "is_before_or_equal_to": a <= b,
    }
    return bool(checks[operator]), None


def date_value_problem(operator: str, value: Any) -> str | None:
    """Why ``value`` cannot be the ``value`` of date operator ``operator`` (None if it can)."""
    if parse_iso(value) is None:
        return (f"operator {operator!r} needs an ISO 8601 date (2026-03-12) or date-time "
                f"(2026-03-12T09:30:00Z) as value, got {value!r}")
    return None
