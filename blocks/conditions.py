"""The condition language: JSON paths, operators and condition groups (pure, sans-IO).

Shared by ``conditional`` branches, ``while_loop`` termination, ``reshape`` mappings,
``for_each`` ``map_source_path`` and review ``json_condition`` predicates.

Paths
-----
``a.b``, ``a.0.b``, ``a[0].b`` and ``a.*.b`` (also ``a[*].b``). The empty path is the
root itself. A segment reads a key of an object, or, when it is a non-negative integer,
an element of an array. ``*`` fans out over the elements of an array; anything that is
not where the path says resolves to :data:`MISSING`.

Conditions
----------
A group is ``{logical_operator: and|or, sub_conditions: [...]}``; each sub-condition is
either a nested group or ``{path_ref: {input, path}, operator, value}``. Rules:

* Operators accept both spellings (``equals`` / ``is_equal_to``); the record keeps the
  canonical one (the first spelling). Unknown operators fail validation.
* A missing value matches only ``exists`` (false) and ``not_exists`` (true). ``null`` is a
  present value, except that ``exists`` treats it as absent (extraction outputs use
  ``null`` for "not found").
* Equality is JSON equality: ``1 == 1.0`` but ``true != 1``, and no string/number
  coercion.
* Ordering operators compare numbers only; anything else does not match and the record
  says why. Evaluation never raises on odd data.
* A wildcard path is evaluated per element and every element must match (implicit AND);
  each element's result is recorded with its hierarchical ``indices``. A wildcard over an
  empty array yields no values and counts as missing.
* Every sub-condition is evaluated (no short-circuit) so the record explains the outcome.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from engine.contracts.errors import Diagnostic

# ----------------------------------------------------------------------------- paths


class _Wildcard(Enum):
    WILDCARD = "*"


class _Missing(Enum):
    MISSING = "missing"

    def __repr__(self) -> str:
        return "MISSING"


#: The fan-out path segment (``*``).
WILDCARD = _Wildcard.WILDCARD
#: What a path resolves to when nothing is there.
MISSING = _Missing.MISSING

Segment = str | _Wildcard
_TOKEN = re.compile(r"\[(\d+|\*)\]|([^.\[\]]+)|(\.)")


class PathSyntaxError(ValueError):
    """A path that does not follow the ``a.b[0].*.c`` grammar."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(
            f"invalid path {path!r}: {problem}. Write dotted keys such as `items.0.price`, "
            "`items[0].price` or `items.*.price` (empty = the whole value)"
        )


def parse_path(path: str) -> tuple[Segment, ...]:
    """Split a path into segments.

    Args:
        path: ``a.b``, ``a.0.b``, ``a[0].b``, ``a.*.b``; ``""`` is the root.

    Returns:
        The segments; array indices stay strings, ``*`` becomes :data:`WILDCARD`.

    Raises:
        PathSyntaxError: empty segments, unbalanced brackets or non-numeric indices.
    """
    if path == "":
        return ()
    segments: list[Segment] = []
    pos, need_segment = 0, True
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if m is None:
            raise PathSyntaxError(path, f"unexpected {path[pos]!r} at position {pos}")
        bracket, key, dot = m.groups()
        if dot is not None:
            if need_segment:
                raise PathSyntaxError(path, f"empty segment before position {pos}")
            need_segment = True
        elif bracket is not None:
            if not segments:
                raise PathSyntaxError(path, "a bracket index needs a key before it")
            segments.append(WILDCARD if bracket == "*" else bracket)
            need_segment = False
        else:
            if not need_segment:
                raise PathSyntaxError(path, f"missing '.' before {key!r}")
            segments.append(WILDCARD if key == "*" else key)
            need_segment = False
        pos = m.end()
    if need_segment:
        raise PathSyntaxError(path, "it ends with '.'")
    return tuple(segments)


def _step(value: Any, segment: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(segment, MISSING)
    if isinstance(value, list) and segment.isdigit():
        index = int(segment)
        return value[index] if index < len(value) else MISSING
    return MISSING


def resolve(root: Any, path: str | Sequence[Segment]) -> list[tuple[tuple[int, ...], Any]]:
    """Every value a path reaches, with the array indices its wildcards took.

    Args:
        root: the JSON value to read.
        path: a path string or already-parsed segments.

    Returns:
        ``[(indices, value)]``: one entry without wildcards (value may be MISSING); one per
        element and nested element with them; ``[]`` when a wildcard meets an empty array.

    Raises:
        PathSyntaxError: ``path`` is a malformed string.
    """
    segments = parse_path(path) if isinstance(path, str) else tuple(path)
    found: list[tuple[tuple[int, ...], Any]] = [((), root)]
    for segment in segments:
        nxt: list[tuple[tuple[int, ...], Any]] = []
        for indices, value in found:
            if segment is WILDCARD:
                if isinstance(value, list):
                    nxt.extend(((*indices, i), item) for i, item in enumerate(value))
                else:
                    nxt.append((indices, MISSING))
            else:
                nxt.append((indices, _step(value, segment)))
        found = nxt
    return found


def lookup(root: Any, path: str | Sequence[Segment]) -> Any:
    """The single value at ``path``: MISSING when absent; a list for wildcard paths.

    Wildcard paths give the list of per-element values (absent elements as ``None``),
    or MISSING when no element was reached.

    Raises:
        PathSyntaxError: ``path`` is a malformed string.
    """
    segments = parse_path(path) if isinstance(path, str) else tuple(path)
    found = resolve(root, segments)
    if WILDCARD not in segments:
        return found[0][1]
    if not found or all(v is MISSING for _, v in found):
        return MISSING
    return [None if v is MISSING else v for _, v in found]


def json_type(value: Any) -> str:
    """The JSON type name of a value (``missing`` for MISSING), for messages."""
    if value is MISSING:
        return "missing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


# ----------------------------------------------------------------------------- operators

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
    "not_exists": ("not_exists",),
    "is_empty": ("is_empty",),
    "is_not_empty": ("is_not_empty",),
    "is_true": ("is_true",),
    "is_false": ("is_false",),
    "in": ("in",),
    "not_in": ("not_in",),
}
_CANONICAL = {s: name for name, spellings in OPERATOR_SPELLINGS.items() for s in spellings}
_UNARY = frozenset({"exists", "not_exists", "is_empty", "is_not_empty", "is_true", "is_false"})
_NUMERIC = frozenset({"greater_than", "greater_than_or_equal", "less_than", "less_than_or_equal"})
_STRING_VALUE = frozenset({"starts_with", "ends_with", "matches_regex"})

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
        raise ValueError(f"unknown operator {name!r}; valid operators: {valid}") from None


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
        return re.search(expected, actual) is not None, None
    except re.error as exc:
        return False, f"invalid regular expression {expected!r}: {exc}"


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


# ----------------------------------------------------------------------------- models

_GROUP_TAG, _CONDITION_TAG = "group", "condition"


class PathRef(BaseModel):
    """Which input (``default`` = the evaluated payload) and which path in it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: str = "default"
    path: str = ""

    @field_validator("path")
    @classmethod
    def _valid_path(cls, value: str) -> str:
        parse_path(value)
        return value


class Condition(BaseModel):
    """One test: the value at ``path_ref`` compared with ``value`` by ``operator``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path_ref: PathRef
    operator: str
    value: Any = Field(default=None, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, raw: Any) -> Any:
        # Accept `path: a.b` and `path_ref: "a.b"` as shorthands for the full path_ref.
        if isinstance(raw, Mapping):
            raw = dict(raw)
            if "path" in raw and "path_ref" not in raw:
                raw["path_ref"] = {"path": raw.pop("path")}
            if isinstance(raw.get("path_ref"), str):
                raw["path_ref"] = {"path": raw["path_ref"]}
        return raw

    @field_validator("operator")
    @classmethod
    def _known_operator(cls, value: str) -> str:
        return canonical_operator(value)

    @field_validator("value")
    @classmethod
    def _value_fits(cls, value: Any, info: ValidationInfo) -> Any:
        operator = info.data.get("operator")  # absent when the operator was invalid
        problem = _value_problem(operator, value) if operator else None
        if problem:
            raise ValueError(problem)
        return value


def _value_problem(op: str, value: Any) -> str | None:
    if op in _NUMERIC and not _is_number(value):
        return f"operator {op!r} needs a number as value, got {json_type(value)}"
    if op in _STRING_VALUE and not isinstance(value, str):
        return f"operator {op!r} needs a string as value, got {json_type(value)}"
    if op == "matches_regex":
        try:
            re.compile(value)
        except re.error as exc:
            return f"value {value!r} is not a valid regular expression: {exc}"
    if op in ("in", "not_in") and not isinstance(value, list | str):
        return f"operator {op!r} needs an array as value, got {json_type(value)}"
    if op in ("contains", "not_contains") and value is None:
        return f"operator {op!r} needs a value"
    return None


def _sub_tag(raw: Any) -> str:
    if isinstance(raw, Mapping):
        return (
            _GROUP_TAG if "sub_conditions" in raw or "logical_operator" in raw else _CONDITION_TAG
        )
    if isinstance(raw, ConditionGroup):
        return _GROUP_TAG
    return _CONDITION_TAG


class ConditionGroup(BaseModel):
    """``{logical_operator: and|or, sub_conditions: [Condition | ConditionGroup]}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    logical_operator: Literal["and", "or"] = "and"
    sub_conditions: list[
        Annotated[
            Annotated[Condition, Tag(_CONDITION_TAG)] | Annotated[ConditionGroup, Tag(_GROUP_TAG)],
            Discriminator(_sub_tag),
        ]
    ] = Field(default_factory=list)

    @field_validator("logical_operator", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


ConditionGroup.model_rebuild()


def parse_condition_group(raw: Any) -> ConditionGroup:
    """Validate a raw condition group.

    Raises:
        pydantic.ValidationError: the group is malformed; :func:`validate_condition_group`
            turns the same problems into diagnostics.
    """
    if isinstance(raw, ConditionGroup):
        return raw
    return ConditionGroup.model_validate(raw)


def _loc_path(base: str, loc: tuple[int | str, ...]) -> str:
    out = base
    for i, part in enumerate(loc):
        if part in (_GROUP_TAG, _CONDITION_TAG) and i and isinstance(loc[i - 1], int):
            continue  # discriminator tags are not part of the user's document
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _input_matches(name: str, handles: Iterable[str]) -> bool:
    return name == "default" or any(h == name or h.endswith(f"-{name}") for h in handles)


def _iter_conditions(group: ConditionGroup, path: str) -> Iterable[tuple[Condition, str]]:
    for i, sub in enumerate(group.sub_conditions):
        sub_path = f"{path}.sub_conditions[{i}]"
        if isinstance(sub, ConditionGroup):
            yield from _iter_conditions(sub, sub_path)
        else:
            yield sub, sub_path


def validate_condition_group(
    raw: Any, path: str, *, inputs: Sequence[str] | None = None
) -> list[Diagnostic]:
    """Every problem of a raw condition group, as diagnostics.

    Args:
        raw: the group as written.
        path: YAML path of the group, prefixed to each diagnostic's path.
        inputs: input handle ids ``path_ref.input`` may name (``default`` always works,
            as does a handle's short name); None skips the check.

    Returns:
        ``INVALID_CONDITION_OPERATOR`` for unknown operators, ``INVALID_CONDITION_PATH``,
        ``INVALID_CONDITION_VALUE``, ``UNKNOWN_CONDITION_INPUT``, ``INVALID_CONDITION``
        for the rest; ``[]`` when the group is valid.
    """
    try:
        group = parse_condition_group(raw)
    except ValidationError as exc:
        return [_diagnostic_from_error(err, path) for err in exc.errors()]
    problems: list[Diagnostic] = []
    for cond, cond_path in _iter_conditions(group, path):
        if inputs is not None and not _input_matches(cond.path_ref.input, inputs):
            problems.append(
                Diagnostic(
                    code="UNKNOWN_CONDITION_INPUT",
                    message=f"path_ref.input {cond.path_ref.input!r} is not an input of this block",
                    path=f"{cond_path}.path_ref.input",
                    fix=f"use 'default' or one of: {', '.join(inputs)}",
                )
            )
    return problems


def _diagnostic_from_error(err: Mapping[str, Any], base: str) -> Diagnostic:
    loc = tuple(err.get("loc", ()))
    where = _loc_path(base, loc)
    message = str(err.get("msg", "invalid condition")).removeprefix("Value error, ")
    if loc and loc[-1] == "operator":
        code, fix = "INVALID_CONDITION_OPERATOR", "use one of the listed operators"
    elif "path" in loc:
        code, fix = "INVALID_CONDITION_PATH", "write the path as `a.b`, `a.0.b` or `a.*.b`"
    elif loc and loc[-1] == "value":
        code, fix = "INVALID_CONDITION_VALUE", "give a value of the type the operator needs"
    else:
        code = "INVALID_CONDITION"
        fix = (
            "write {logical_operator: and|or, sub_conditions: [{path_ref: {input: default, "
            "path: ...}, operator: ..., value: ...}]}"
        )
    return Diagnostic(code=code, message=message, path=where, fix=fix)


# ----------------------------------------------------------------------------- evaluation


def _jsonable(value: Any) -> Any:
    return None if value is MISSING else value


@dataclass(frozen=True, slots=True, kw_only=True)
class Evaluation:
    """The outcome of a group, with a JSON-able record of every sub-condition."""

    matched: bool
    logical_operator: str
    sub_evaluations: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """``{matched, logical_operator, sub_evaluations}`` (nested groups nest)."""
        return {
            "matched": self.matched,
            "logical_operator": self.logical_operator,
            "sub_evaluations": self.sub_evaluations,
        }


def select_root(name: str, root: Any, inputs: Mapping[str, Any] | None) -> Any:
    """The payload ``path_ref.input`` names: ``default`` is ``root``; else a handle id or
    its short name (``0`` for ``input-json-0``); MISSING when no such input arrived."""
    if name == "default" or not inputs:
        return root
    for handle, value in inputs.items():
        if handle == name or handle.endswith(f"-{name}"):
            return value
    return MISSING


def _evaluate_condition(cond: Condition, root: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "input": cond.path_ref.input,
        "path": cond.path_ref.path,
        "operator": cond.operator,
        "expected": cond.value,
    }
    found = resolve(root, cond.path_ref.path)
    if WILDCARD not in parse_path(cond.path_ref.path):
        matched, reason = apply_operator(cond.operator, found[0][1], cond.value)
        record.update(actual=_jsonable(found[0][1]), matched=matched)
        if reason:
            record["reason"] = reason
        return record
    items = []
    for indices, value in found:
        matched, reason = apply_operator(cond.operator, value, cond.value)
        item = {"indices": list(indices), "actual": _jsonable(value), "matched": matched}
        items.append(item | ({"reason": reason} if reason else {}))
    if not found:  # wildcard over an empty array: nothing there, like a missing path
        matched, _ = apply_operator(cond.operator, MISSING, cond.value)
        record.update(matched=matched, reason="wildcard matched no elements")
    else:
        record["matched"] = all(item["matched"] for item in items)
    record.update(actual=[item["actual"] for item in items], items=items)
    return record


def evaluate(
    group: ConditionGroup, root: Any, *, inputs: Mapping[str, Any] | None = None
) -> Evaluation:
    """Evaluate a condition group.

    Args:
        group: a parsed group (:func:`parse_condition_group`).
        root: the payload ``path_ref.input: default`` reads (MISSING if none arrived).
        inputs: other named payloads ``path_ref.input`` may select, by handle id.

    Returns:
        The outcome and its record; evaluation never raises on unexpected data.
    """
    records: list[dict[str, Any]] = []
    for sub in group.sub_conditions:
        if isinstance(sub, ConditionGroup):
            records.append(evaluate(sub, root, inputs=inputs).to_dict())
        else:
            value_root = select_root(sub.path_ref.input, root, inputs)
            records.append(_evaluate_condition(sub, value_root))
    results = [r["matched"] for r in records]
    matched = all(results) if group.logical_operator == "and" else any(results)
    return Evaluation(
        matched=matched, logical_operator=group.logical_operator, sub_evaluations=records
    )
