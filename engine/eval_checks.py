"""Eval assertions: parse one, then check it against a block's outputs.

An assertion (Retab's ``AssertionSpec``) names an output handle, an optional path inside
that handle's payload, and a condition::

    {"target": {"output_handle_id": "output-json-0", "path": "lines.0.total"},
     "condition": {"kind": "number_compare", "op": "gte", "expected": 100}}

:func:`parse_assertion` refuses anything it cannot check (unknown kind, missing or extra
field, a regex or JSON schema that does not compile) with an ``InputError`` listing every
problem. :func:`check_assertion` gives a verdict: ``passed``, ``failed``, or ``blocked``
when the condition could not be evaluated (the block failed, the value has the wrong
type, or the condition needs a model judge, which is not available locally); a blocked
outcome carries a ``failure`` with a code saying why.

Paths are dotted keys with list indexes as numbers (``vendor.name``, ``lines.0.total``).
A path that leads nowhere gives an absent value: ``exists`` fails on it, ``not_exists``
passes, every other condition fails with the failure code ``path_not_found``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import field
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from engine.contracts.errors import InputError
from engine.contracts.frozen import record

Op = Literal["gt", "gte", "lt", "lte", "eq", "neq"]
_ABSENT: Any = object()


class _Kind(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Exists(_Kind):
    kind: Literal["exists"]


class NotExists(_Kind):
    kind: Literal["not_exists"]


class Equals(_Kind):
    kind: Literal["equals", "not_equals"]
    expected: Any


class NumberCompare(_Kind):
    kind: Literal["number_compare"]
    op: Op
    expected: float


class LengthCompare(_Kind):
    kind: Literal["length_compare"]
    op: Op
    expected: int


class Contains(_Kind):
    kind: Literal["contains", "not_contains"]
    expected: Any


class ObjectContains(_Kind):
    kind: Literal["object_contains", "array_contains"]
    expected: dict[str, Any]


class Affix(_Kind):
    kind: Literal["starts_with", "ends_with"]
    expected: str


class MatchesRegex(_Kind):
    kind: Literal["matches_regex"]
    pattern: str

    @model_validator(mode="after")
    def _compiles(self) -> MatchesRegex:
        from engine.contracts.bounded import regex_problem

        problem = regex_problem(self.pattern)  # too long, or does not compile
        if problem is not None:
            raise ValueError(problem)
        return self


class JsonSchemaValid(_Kind):
    kind: Literal["json_schema_valid"]
    schema_: dict[str, Any] = Field(alias="schema")

    @model_validator(mode="after")
    def _valid_schema(self) -> JsonSchemaValid:
        import jsonschema

        try:
            jsonschema.validators.validator_for(self.schema_).check_schema(self.schema_)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"schema is not a valid JSON schema: {exc.message}") from None
        return self


class Between(_Kind):
    kind: Literal["between"]
    lower: float
    upper: float
    inclusive: bool = True


class SimilarityGte(_Kind):
    kind: Literal["similarity_gte"]
    reference: Any
    threshold: float = Field(ge=0.0, le=1.0)
    method: Literal["levenshtein", "embeddings"] = "levenshtein"


class LlmJudged(_Kind):
    kind: Literal["llm_judged_as", "llm_not_judged_as"]
    rubric: str
    expected_label: str | None = None


class SplitIou(_Kind):
    kind: Literal["split_iou_gte"]
    expected: dict[str, Any]
    threshold: float = Field(default=1.0, ge=0.0, le=1.0)


class Items(_Kind):
    kind: Literal["all_items_match", "any_item_matches"]
    condition: Condition


Condition = Annotated[
    Exists | NotExists | Equals | NumberCompare | LengthCompare | Contains | ObjectContains
    | Affix | MatchesRegex | JsonSchemaValid | Between | SimilarityGte | LlmJudged | SplitIou
    | Items,
    Field(discriminator="kind"),
]
Items.model_rebuild()


class Target(_Kind):
    output_handle_id: str = Field(min_length=1)
    path: str | None = None


class Assertion(_Kind):
    """A parsed assertion (see the module docstring)."""

    id: str | None = None
    target: Target
    condition: Condition
    label: str | None = None


_ADAPTER = TypeAdapter(Assertion)


@record
class Outcome:
    """A verdict on one assertion, in Retab's ``AssertionResult`` terms."""

    assertion_id: str
    condition_kind: str
    outcome: str
    actual_value: Any = None
    expected_value: Any = None
    score: float | None = None
    threshold: float | None = None
    metric_kind: str | None = None
    assertion_label: str | None = None
    failure: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``AssertionResult``)."""
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def parse_assertion(raw: Any) -> dict[str, Any]:
    """Check an assertion and return it in canonical form (with an ``id``).

    Raises:
        InputError: it does not parse; the message lists every problem with its field.
    """
    try:
        parsed = _ADAPTER.validate_python(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'assertion'}: {e['msg']}"
                             for e in exc.errors()[:8])
        raise InputError(f"The assertion does not parse: {problems}. An assertion is "
                         "{target: {output_handle_id, path}, condition: {kind, ...}}.") from None
    data = parsed.model_dump(mode="json", by_alias=True, exclude_none=True)
    if not data.get("id"):
        body = json.dumps(data, sort_keys=True, separators=(",", ":"))
        data["id"] = "assert_" + hashlib.sha256(body.encode()).hexdigest()[:12]
    return data


def value_at(payload: Any, path: str | None) -> Any:
    """The value at a dotted ``path`` of ``payload`` (:data:`_ABSENT`-like sentinel when
    missing; test with :func:`is_absent`)."""
    current = payload
    for part in [p for p in (path or "").split(".") if p]:
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.lstrip("-").isdigit() and \
                -len(current) <= int(part) < len(current):
            current = current[int(part)]
        else:
            return _ABSENT
    return current


def is_absent(value: Any) -> bool:
    """True for the missing value :func:`value_at` returns."""
    return value is _ABSENT


def check_assertion(assertion: Mapping[str, Any], outputs: Mapping[str, Any]) -> Outcome:
    """Check a parsed assertion against a block's fired outputs.

    Args:
        assertion: as :func:`parse_assertion` returned it.
        outputs: data per fired output handle (a file handle's value is its document
            ``{id, filename, mime_type}``).

    Returns:
        The outcome; never raises for a value of the wrong type (that is ``blocked``).
    """
    parsed = _ADAPTER.validate_python(assertion)
    target = parsed.target
    payload = outputs.get(target.output_handle_id, _ABSENT)
    actual = _ABSENT if is_absent(payload) else value_at(payload, target.path)
    verdict = _check(parsed.condition, actual)
    shown = None if is_absent(actual) else actual
    return Outcome(assertion_id=parsed.id or "", condition_kind=parsed.condition.kind,
                   outcome=verdict.outcome, actual_value=shown,
                   expected_value=_expected(parsed.condition), score=verdict.score,
                   threshold=verdict.threshold, metric_kind=verdict.metric,
                   assertion_label=parsed.label, failure=verdict.failure)


def blocked(assertion: Mapping[str, Any], code: str, message: str) -> Outcome:
    """The outcome of an assertion that could not be evaluated (``code`` says why)."""
    parsed = _ADAPTER.validate_python(assertion)
    return Outcome(assertion_id=parsed.id or "", condition_kind=parsed.condition.kind,
                   outcome="blocked", expected_value=_expected(parsed.condition),
                   assertion_label=parsed.label,
                   failure={"code": code, "message": message, "details": {}})


@record
class _Verdict:
    outcome: str
    score: float | None = None
    threshold: float | None = None
    metric: str | None = None
    failure: dict[str, Any] | None = field(default=None)


def _expected(condition: Any) -> Any:
    for name in ("expected", "reference", "pattern", "schema_"):
        if hasattr(condition, name):
            return getattr(condition, name)
    if isinstance(condition, Between):
        return {"lower": condition.lower, "upper": condition.upper}
    return None


def _fail(code: str, message: str) -> _Verdict:
    return _Verdict(outcome="failed", failure={"code": code, "message": message, "details": {}})


def _blocked(code: str, message: str) -> _Verdict:
    return _Verdict(outcome="blocked", failure={"code": code, "message": message,
                                                "details": {}})


def _ok(passed: bool, **extra: Any) -> _Verdict:
    return _Verdict(outcome="passed" if passed else "failed", **extra)


def _check(condition: Any, actual: Any) -> _Verdict:
    from engine.eval_conditions import evaluate

    if isinstance(condition, Exists):
        return _ok(not is_absent(actual))
    if isinstance(condition, NotExists):
        return _ok(is_absent(actual) or actual is None)
    if is_absent(actual):
        return _fail("path_not_found", "the output handle or path has no value")
    if isinstance(condition, LlmJudged):
        return _blocked("llm_judge_unavailable",
                        "LLM-judged conditions need a judge model; stepwell evaluates "
                        "assertions locally without one")
    if isinstance(condition, Items):
        if not isinstance(actual, list):
            return _blocked("type_error", f"expected a list, got {type(actual).__name__}")
        results = [_check(condition.condition, item) for item in actual]
        if any(r.outcome == "blocked" for r in results):
            return next(r for r in results if r.outcome == "blocked")
        passed = [r.outcome == "passed" for r in results]
        return _ok(all(passed) if condition.kind == "all_items_match" else any(passed))
    try:
        outcome, score, threshold, metric = evaluate(condition, actual)
    except (TypeError, ValueError) as exc:
        return _blocked("type_error", str(exc))
    return _ok(outcome, score=score, threshold=threshold, metric=metric)
