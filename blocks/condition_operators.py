"""Operators of the condition language: one resolved value against a condition's value.

Rules:

* Operators accept both spellings (``equals`` / ``is_equal_to``); the record keeps the
  canonical one (the first spelling). Unknown operators fail validation.
* A missing value matches only ``exists`` (false) and ``not_exists`` (true). ``null`` is a
  present value, except that ``exists`` treats it as absent (extraction outputs use
  ``null`` for "not found").
* Equality is JSON equality: ``1 == 1.0`` but ``true != 1``, and no string/number
  coercion.
* Ordering operators compare numbers only; anything else does not match and the
  outcome says why. Applying an operator never raises on odd data.
* Length operators (``length_equal_to``, ``length_greater_than``, ``length_less_than``)
  count the elements of an array, the characters of a string or the keys of an object;
  their ``value`` is a non-negative integer.
* Date operators (``is_after``, ``is_before`` and their ``_or_equal_to`` forms) compare
  ISO 8601 dates and date-times, see :mod:`blocks.condition_dates`.
* ``does_not_exist`` (Retab's spelling) is ``not_exists``.
* ``matches_regex`` searches under a time budget (:func:`engine.contracts.bounded.
  bounded_search`): a pattern that backtracks too long fails the step permanently
  (``REGEX_TOO_SLOW``) instead of holding the server.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from typing import Any

from blocks.condition_dates import DATE_OPERATORS, compare_dates, date_value_problem
from blocks.condition_paths import MISSING, json_type
from engine.contracts.bounded import bounded_search, regex_problem

#: canonical name -> every accepted spelling.
OPERATOR_SPELLINGS: dict[str, tuple[str, ...]] = {
    "equals": ("equals", "is_equal_to"),
    "not_equals": ("not_equals", "is_not_equal_to"),
    "greater_than": ("greater_than", "is_greater_than"),
    "greater_than_or_equal": ("greater_than_or_equal", "is_greater_than_or_equal_to"),
    "less_than": ("less_than", "is_less_than"),
    "less_than_or_equal": ("less_than_or_equal", "is_less_than_or_equal_to"),
    "contains": ("contains",),
    "not_contains": ("not_contains",),
    "starts_with": ("starts_with",),
    "ends_with": ("ends_with",),
    "matches_regex": ("matches_regex",),
    "exists": ("exists",),
    "not_exists": ("not_exists", "does_not_exist"),
    "is_empty": ("is_empty",),
    "is_not_empty": ("is_not_empty",),
    "is_true": ("is_true",),
    "is_false": ("is_false",),
    "in": ("in",),
    "not_in": ("not_in",),
    "length_equal_to": ("length_equal_to",),
    "length_greater_than": ("length_greater_than",),
    "length_less_than": ("length_less_than",),
    "is_after": ("is_after",),
    "is_before": ("is_before",),
    "is_after_or_equal_to": ("is_after_or_equal_to",),
    "is_before_or_equal_to": ("is_before_or_equal_to",),
}
_CANONICAL = {s: name for name, spellings in OPERATOR_SPELLINGS.items() for s in spellings}
_NUMERIC = frozenset({"greater_than", "greater_than_or_equal", "less_than", "less_than_or_equal"})
_STRING_VALUE = frozenset({"starts_with", "ends_with", "matches_regex"})
_LENGTH = frozenset({"length_equal_to", "length_greater_than", "length_less_than"})

# An operator returns (matched, reason); reason explains a non-match caused by types.
Outcome = tuple[bool, str | None]


def canonical_operator(name: str) -> str:
    """The canonical spelling of an operator.

    Raises:
        ValueError: the operator is unknown; the message lists the valid ones.
    """
    try:
        return _CANONICAL[name]
    except KeyError:
        valid = ", ".join(sorted(_CANONICAL))
        close = suggest_operator(name)
        hint = f" Did you mean {close!r}?" if close else ""
        raise ValueError(f"unknown operator {name!r}.{hint} Valid operators: {valid}") from None


def suggest_operator(name: Any) -> str | None:
    """The accepted spelling closest to an unknown operator, or None when none is close."""
    if not isinstance(name, str):
        return None
    close = difflib.get_close_matches(name, list(_CANONICAL), n=1, cutoff=0.6)
    return close[0] if close else None


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value, booleans only equal booleans, deep for containers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _compare(op: str, actual: Any, expected: Any) -> Outcome:
    if not _is_number(actual):
        return False, f"{op} needs a number, found {json_type(actual)}"
    if not _is_number(expected):
        return False, f"{op} needs a number as value, got {json_type(expected)}"
    checks: dict[str, Callable[[Any, Any], bool]] = {
        "greater_than": lambda x, y: x > y,
        "greater_than_or_equal": lambda x, y: x >= y,
        "less_than": lambda x, y: x < y,
        "less_than_or_equal": lambda x, y: x <= y,
    }
    return checks[op](actual, expected), None


def _contains(actual: Any, expected: Any) -> Outcome:
    if isinstance(actual, str):
        if not isinstance(expected, str):
            return False, f"a string contains only strings, value is {json_type(expected)}"
        return expected in actual, None
    if isinstance(actual, list):
        return any(json_equal(item, expected) for item in actual), None
    if isinstance(actual, Mapping):
        return isinstance(expected, str) and expected in actual, None
    return False, f"contains needs a string, array or object, found {json_type(actual)}"


def _member(actual: Any, expected: Any) -> Outcome:
    if isinstance(expected, list):
        return any(json_equal(actual, item) for item in expected), None
    if isinstance(expected, str):
        if isinstance(actual, str):
            return actual in expected, None
        return False, f"in with a string value needs a string, found {json_type(actual)}"
    return False, f"in needs an array as value, got {json_type(expected)}"


def _string_op(op: str, actual: Any, expected: Any) -> Outcome:
    if not isinstance(actual, str):
        return False, f"{op} needs a string, found {json_type(actual)}"
    if not isinstance(expected, str):
        return False, f"{op} needs a string as value, got {json_type(expected)}"
    if op == "starts_with":
        return actual.startswith(expected), None
    if op == "ends_with":
        return actual.endswith(expected), None
    try:
        return bounded_search(expected, actual, what="condition matches_regex"), None
    except re.error as exc:
        return False, f"invalid regular expression {expected!r}: {exc}"


def _length(op: str, actual: Any, expected: Any) -> Outcome:
    if not isinstance(actual, str | list | Mapping):
        return False, f"{op} needs an array, a string or an object, found {json_type(actual)}"
    if not _is_count(expected):
        return False, f"{op} needs a non-negative integer as value, got {json_type(expected)}"
    size = len(actual)
    checks = {"length_equal_to": size == expected, "length_greater_than": size > expected,
              "length_less_than": size < expected}
    return checks[op], None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | Mapping) and len(value) == 0)


def _negate(outcome: Outcome) -> Outcome:
    matched, reason = outcome
    return (False, reason) if reason else (not matched, None)


def apply_operator(operator: str, actual: Any, expected: Any = None) -> Outcome:
    """Apply one operator to a resolved value.

    Args:
        operator: any accepted spelling.
        actual: the value found (may be MISSING).
        expected: the condition's ``value``.

    Returns:
        ``(matched, reason)``; ``reason`` says why a type mismatch did not match.

    Raises:
        ValueError: unknown operator.
    """
    op = canonical_operator(operator)
    if op in ("exists", "not_exists"):
        present = actual is not MISSING and actual is not None
        return present == (op == "exists"), None
    if actual is MISSING:
        return False, "path not found"
    if op in _NUMERIC:
        return _compare(op, actual, expected)
    if op in _STRING_VALUE:
        return _string_op(op, actual, expected)
    if op in _LENGTH:
        return _length(op, actual, expected)
    if op in DATE_OPERATORS:
        return compare_dates(op, actual, expected)
    simple: dict[str, Callable[[], Outcome]] = {
        "equals": lambda: (json_equal(actual, expected), None),
        "not_equals": lambda: (not json_equal(actual, expected), None),
        "contains": lambda: _contains(actual, expected),
        "not_contains": lambda: _negate(_contains(actual, expected)),
        "in": lambda: _member(actual, expected),
        "not_in": lambda: _negate(_member(actual, expected)),
        "is_empty": lambda: (_is_empty(actual), None),
        "is_not_empty": lambda: (not _is_empty(actual), None),
        "is_true": lambda: (actual is True, None),
        "is_false": lambda: (actual is False, None),
    }
    return simple[op]()


def value_problem(op: str, value: Any) -> str | None:
    """What is wrong with a condition's ``value`` for operator ``op``, or None.

    Args:
        op: a canonical operator name.
        value: the condition's ``value`` as written.

    Returns:
        A message for the validation error, or None when the value fits.
    """
    if op in _NUMERIC and not _is_number(value):
        return f"operator {op!r} needs a number as value, got {json_type(value)}"
    if op in _STRING_VALUE and not isinstance(value, str):
        return f"operator {op!r} needs a string as value, got {json_type(value)}"
    if op == "matches_regex":
        problem = regex_problem(value)
        if problem is not None:
            return problem
    if op in ("in", "not_in") and not isinstance(value, list | str):
        return f"operator {op!r} needs an array as value, got {json_type(value)}"
    if op in ("contains", "not_contains") and value is None:
        return f"operator {op!r} needs a value"
    if op in _LENGTH and not _is_count(value):
        return f"operator {op!r} needs a non-negative integer as value, got {json_type(value)}"
    if op in DATE_OPERATORS:
        return date_value_problem(op, value)
    return None
