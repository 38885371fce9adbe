"""The value conditions of eval assertions, one function per ``kind``.

:func:`evaluate` looks the condition's kind up in :data:`CHECKS` and returns
``(passed, score, threshold, metric)``. A value of the wrong type raises ``TypeError``
(the caller turns it into a ``blocked`` outcome). ``exists``, ``not_exists``, the item
quantifiers and the model-judged kinds are handled by :mod:`engine.eval_checks`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from engine.contracts.bounded import bounded_search

Result = tuple[bool, float | None, float | None, str | None]

_OPS: dict[str, Callable[[float, float], bool]] = {
    "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b, "eq": lambda a, b: a == b, "neq": lambda a, b: a != b,
}


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__} {value!r}")
    return float(value)


def _plain(passed: bool) -> Result:
    return passed, None, None, None


def _equals(condition: Any, actual: Any) -> Result:
    same = actual == condition.expected
    return _plain(same if condition.kind == "equals" else not same)


def _number_compare(condition: Any, actual: Any) -> Result:
    return _plain(_OPS[condition.op](_number(actual), condition.expected))


def _length_compare(condition: Any, actual: Any) -> Result:
    if not isinstance(actual, str | list | dict):
        raise TypeError(f"length_compare needs a string, list or object, got "
                        f"{type(actual).__name__}")
    return _plain(_OPS[condition.op](len(actual), condition.expected))


def _contains(condition: Any, actual: Any) -> Result:
    if isinstance(actual, str):
        if not isinstance(condition.expected, str):
            raise TypeError("a string only contains strings")
        found = condition.expected in actual
    elif isinstance(actual, (list, dict)):
        found = condition.expected in actual
    else:
        raise TypeError(f"contains needs a string, list or object, got {type(actual).__name__}")
    return _plain(found if condition.kind == "contains" else not found)


def subset(expected: Any, actual: Any) -> bool:
    """True when ``actual`` holds everything of ``expected`` (objects recursively)."""
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(
            k in actual and subset(v, actual[k]) for k, v in expected.items())
    return bool(expected == actual)


def _object_contains(condition: Any, actual: Any) -> Result:
    if condition.kind == "object_contains":
        if not isinstance(actual, Mapping):
            raise TypeError(f"object_contains needs an object, got {type(actual).__name__}")
        return _plain(subset(condition.expected, actual))
    if not isinstance(actual, list):
        raise TypeError(f"array_contains needs a list, got {type(actual).__name__}")
    return _plain(any(subset(condition.expected, item) for item in actual))


def _affix(condition: Any, actual: Any) -> Result:
    if not isinstance(actual, str):
        raise TypeError(f"{condition.kind} needs a string, got {type(actual).__name__}")
    if condition.kind == "starts_with":
        return _plain(actual.startswith(condition.expected))
    return _plain(actual.endswith(condition.expected))


def _regex(condition: Any, actual: Any) -> Result:
    if not isinstance(actual, str):
        raise TypeError(f"matches_regex needs a string, got {type(actual).__name__}")
    return _plain(bounded_search(condition.pattern, actual,
                                 what="eval assertion matches_regex"))


def _schema(condition: Any, actual: Any) -> Result:
    import jsonschema

    validator = jsonschema.validators.validator_for(condition.schema_)(condition.schema_)
    return _plain(validator.is_valid(actual))


def _between(condition: Any, actual: Any) -> Result:
    value = _number(actual)
    if condition.inclusive:
        return _plain(condition.lower <= value <= condition.upper)
    return _plain(condition.lower < value < condition.upper)


def levenshtein(a: str, b: str) -> int:
    """The edit distance between two strings."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _similarity(condition: Any, actual: Any) -> Result:
    if condition.method != "levenshtein":
        raise ValueError("similarity by embeddings needs an embedding model; use "
                         "method: levenshtein")
    a, b = _text(actual), _text(condition.reference)
    longest = max(len(a), len(b))
    score = 1.0 if longest == 0 else 1.0 - levenshtein(a, b) / longest
    return score >= condition.threshold, round(score, 6), condition.threshold, "levenshtein"


def _pages(split: Any) -> dict[str, set[int]]:
    if not isinstance(split, Mapping) or not isinstance(split.get("splits"), list):
        raise TypeError('split_iou_gte compares {"splits": [{"name", "pages"}]} values')
    out: dict[str, set[int]] = {}
    for item in split["splits"]:
        if not isinstance(item, Mapping) or not isinstance(item.get("pages"), list):
            raise TypeError('every split needs "name" and a "pages" list')
        out.setdefault(str(item.get("name")), set()).update(int(p) for p in item["pages"])
    return out


def _split_iou(condition: Any, actual: Any) -> Result:
    expected, got = _pages(condition.expected), _pages(actual)
    names = set(expected) | set(got)
    scores = []
    for name in names:
        a, b = expected.get(name, set()), got.get(name, set())
        union = a | b
        scores.append(1.0 if not union else len(a & b) / len(union))
    score = sum(scores) / len(scores) if scores else 1.0
    return score >= condition.threshold, round(score, 6), condition.threshold, "split_iou"


#: condition kind -> check.
CHECKS: dict[str, Callable[[Any, Any], Result]] = {
    "equals": _equals, "not_equals": _equals, "number_compare": _number_compare,
    "length_compare": _length_compare, "contains": _contains, "not_contains": _contains,
    "object_contains": _object_contains, "array_contains": _object_contains,
    "starts_with": _affix, "ends_with": _affix, "matches_regex": _regex,
    "json_schema_valid": _schema, "between": _between, "similarity_gte": _similarity,
    "split_iou_gte": _split_iou,
}


def evaluate(condition: Any, actual: Any) -> Result:
    """Check ``condition`` against ``actual``.

    Returns:
        ``(passed, score, threshold, metric)``; the last three are None for plain checks.

    Raises:
        TypeError / ValueError: ``actual`` cannot be checked this way.
    """
    return CHECKS[condition.kind](condition, actual)
