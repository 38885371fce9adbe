"""The condition language: condition groups, their validation and their evaluation.

Shared by ``conditional`` branches, ``while_loop`` termination and review
``json_condition`` predicates. Paths are :mod:`blocks.condition_paths`, operators
:mod:`blocks.condition_operators`; both are re-exported here.

A group is ``{logical_operator: and|or, sub_conditions: [...]}``; each sub-condition is
either a nested group or ``{path_ref: {input, path}, operator, value}``. Rules:

* A condition is validated when parsed: an unknown operator, a malformed path or a value
  the operator cannot use is a problem with its path in the document.
* A wildcard path is evaluated per element and every element must match (implicit AND);
  each element's result is recorded with its hierarchical ``indices``. A wildcard over an
  empty array yields no values and counts as missing.
* Every sub-condition is evaluated (no short-circuit) so the record explains the outcome.
  Evaluation never raises on odd data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import field
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

from blocks.condition_operators import (
    OPERATOR_SPELLINGS,
    Outcome,
    apply_operator,
    canonical_operator,
    json_equal,
    suggest_operator,
    value_problem,
)
from blocks.condition_paths import (
    MISSING,
    WILDCARD,
    PathSyntaxError,
    Segment,
    json_type,
    lookup,
    parse_path,
    resolve,
)
from engine.contracts.errors import Diagnostic
from engine.contracts.frozen import record

__all__ = [
    "MISSING", "OPERATOR_SPELLINGS", "WILDCARD", "Condition", "ConditionGroup", "Evaluation",
    "Outcome", "PathRef", "PathSyntaxError", "Segment", "apply_operator", "canonical_operator",
    "empty_groups", "evaluate", "json_equal", "json_type", "lookup", "parse_condition_group",
    "parse_path", "resolve", "select_root", "validate_condition_group",
]

# ----------------------------------------------------------------------------- groups

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
        problem = value_problem(operator, value) if operator else None
        if problem:
            raise ValueError(problem)
        return value


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
    raw: Any, path: str, *, inputs: Sequence[str] | None = None, owner: str = ""
) -> list[Diagnostic]:
    """Every problem of a raw condition group, as diagnostics.

    Args:
        raw: the group as written.
        path: YAML path of the group, prefixed to each diagnostic's path.
        inputs: input handle ids ``path_ref.input`` may name (``default`` always works,
            as does a handle's short name); None skips the check.
        owner: how messages name the block (``conditional block 'route'``), if at all.

    Returns:
        ``INVALID_CONDITION_OPERATOR`` for unknown operators, ``INVALID_CONDITION_PATH``,
        ``INVALID_CONDITION_VALUE``, ``UNKNOWN_CONDITION_INPUT``, ``INVALID_CONDITION``
        for the rest; ``[]`` when the group is valid.
    """
    prefix = f"{owner}: " if owner else ""
    try:
        group = parse_condition_group(raw)
    except ValidationError as exc:
        return [_diagnostic_from_error(err, path, prefix) for err in exc.errors()]
    problems: list[Diagnostic] = []
    for cond, cond_path in _iter_conditions(group, path):
        if inputs is not None and not _input_matches(cond.path_ref.input, inputs):
            problems.append(
                Diagnostic(
                    code="UNKNOWN_CONDITION_INPUT",
                    message=f"{prefix}path_ref.input {cond.path_ref.input!r} is not an input "
                    "of this block",
                    path=f"{cond_path}.path_ref.input",
                    fix=f"use 'default' or one of: {', '.join(inputs)}",
                )
            )
    return problems


def empty_groups(raw: Any, path: str) -> list[tuple[str, str]]:
    """Every group of a raw condition group that has no sub-conditions.

    Such a group is decided before any data is read: ``and`` over nothing always matches,
    ``or`` over nothing never does. Nothing is reported for a group that does not
    validate (:func:`validate_condition_group` reports that).

    Args:
        raw: the group as written (stepwell's form).
        path: its YAML path.

    Returns:
        ``[(YAML path of the group, its logical_operator)]``, outermost first.
    """
    try:
        group = parse_condition_group(raw)
    except ValidationError:
        return []
    found: list[tuple[str, str]] = []

    def walk(node: ConditionGroup, where: str) -> None:
        if not node.sub_conditions:
            found.append((where, node.logical_operator))
        for i, sub in enumerate(node.sub_conditions):
            if isinstance(sub, ConditionGroup):
                walk(sub, f"{where}.sub_conditions[{i}]")

    walk(group, path)
    return found


def _diagnostic_from_error(err: Mapping[str, Any], base: str, prefix: str = "") -> Diagnostic:
    loc = tuple(err.get("loc", ()))
    where = _loc_path(base, loc)
    message = prefix + str(err.get("msg", "invalid condition")).removeprefix("Value error, ")
    if loc and loc[-1] == "operator":
        close = suggest_operator(err.get("input"))
        hint = f"Did you mean {close!r}? " if close else ""
        code, fix = "INVALID_CONDITION_OPERATOR", f"{hint}Use one of the listed operators."
    elif "path" in loc:
        code, fix = "INVALID_CONDITION_PATH", "write the path as `a.b`, `a.0.b` or `a.*.b`"
    elif loc and loc[-1] == "value":
        code, fix = "INVALID_CONDITION_VALUE", _value_fix(message)
    else:
        code = "INVALID_CONDITION"
        fix = (
            "write {logical_operator: and|or, sub_conditions: [{path_ref: {input: default, "
            "path: ...}, operator: ..., value: ...}]}"
        )
    return Diagnostic(code=code, message=message, path=where, fix=fix)


def _value_fix(message: str) -> str:
    if "ISO 8601" in message:
        return "write the value as an ISO 8601 date such as 2026-03-12, or a date-time such as "\
            "2026-03-12T09:30:00Z"
    if "non-negative integer" in message:
        return "write the length to compare with as a whole number, e.g. `value: 3`"
    return "give a value of the type the operator needs"


# ----------------------------------------------------------------------------- evaluation


def _jsonable(value: Any) -> Any:
    return None if value is MISSING else value


@record
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
