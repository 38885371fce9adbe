"""Review predicates: when a model block's output must wait for a human.

``config.review: {predicate: {kind, ...}}`` on extract, split, classifier and the
split_by_key for_each. After the block computed its output, :func:`evaluate_review`
tests the predicate; when it fires, the block returns ``BlockResult(review=record)`` and
the step waits in ``awaiting_review``. The record is the ``review_trigger_evaluation``::

    {"triggered_by": "confidence_lt", "requires_human_review": true,
     "evaluations": [{"kind": "confidence_lt", "triggered": true, "threshold": 0.9,
                      "actual": 0.67}]}

Kinds (``facts`` are what the block passes in ``extra``):

========================== ======================= ====================================
kind                        blocks                  fires when
========================== ======================= ====================================
always                      all                     always
validation_failed           all                     the output breaks its schema
confidence_lt{threshold}    all                     the block's likelihood is lower
                                                    (extract: its lowest leaf)
category_in{categories}     classifier              the chosen category is listed
top_margin_lt{margin}       classifier              top score - runner-up is lower
split_count_neq{expected}   split, split_by_key     the number of parts differs
any_split_pages_lt{min_..}  split, split_by_key     some part has fewer pages
boundary_confidence_lt{..}  split, split_by_key     some part's confidence is lower
any_pages_unassigned        split, split_by_key     a page belongs to no part
any_required_field_null     extract                 a required field is null/missing
json_condition{condition}   all                     the condition group matches
any_of{predicates}          all                     one matches (the first is reported)
all_of{predicates}          all                     every one matches
========================== ======================= ====================================

``json_condition`` paths read ``{data: <output>, likelihoods: <tree>}``; a path that
starts with neither (or with ``output-json-0``) is read inside ``data``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from blocks.conditions import evaluate, parse_condition_group, validate_condition_group
from blocks.control import schema_errors
from blocks.providers.consensus import min_likelihood
from engine.contracts.errors import Diagnostic
from engine.contracts.frozen import record

ALL = frozenset({"extract", "split", "classifier", "split_by_key"})
SPLITS = frozenset({"split", "split_by_key"})
#: kind -> (block kinds it applies to, required fields and their types)
KINDS: dict[str, tuple[frozenset[str], dict[str, type | tuple[type, ...]]]] = {
    "always": (ALL, {}),
    "validation_failed": (ALL, {}),
    "confidence_lt": (ALL, {"threshold": (int, float)}),
    "category_in": (frozenset({"classifier"}), {"categories": list}),
    "top_margin_lt": (frozenset({"classifier"}), {"margin": (int, float)}),
    "split_count_neq": (SPLITS, {"expected": int}),
    "any_split_pages_lt": (SPLITS, {"min_pages": int}),
    "boundary_confidence_lt": (SPLITS, {"threshold": (int, float)}),
    "any_pages_unassigned": (SPLITS, {}),
    "any_required_field_null": (frozenset({"extract"}), {}),
    "json_condition": (ALL, {"condition": dict}),
    "any_of": (ALL, {"predicates": list}),
    "all_of": (ALL, {"predicates": list}),
}


def _diag(code: str, path: str, message: str, fix: str) -> Diagnostic:
    return Diagnostic(code=code, path=path, message=message, fix=fix)


def review_diagnostics(raw: Any, block_type: str, path: str, *, owner: str = "",
                       categories: Mapping[str, str] | None = None) -> list[Diagnostic]:
    """Every problem of a ``config.review`` value, as validation diagnostics.

    Args:
        raw: the ``review`` mapping as written.
        block_type: ``extract``, ``split``, ``classifier`` or ``split_by_key``.
        path: YAML path of ``config.review``.
        owner: how the warnings name the block (``classifier block 'sort'``).
        categories: a classifier's categories, ``{name: handle_key}``, so ``category_in``
            can be checked against them.
    """
    if raw is None:
        return []
    if not isinstance(raw, Mapping) or set(raw) - {"predicate"}:
        return [_diag("INVALID_REVIEW_CONFIG", path, "review takes one key, `predicate`",
                      "write `review: {predicate: {kind: always}}`")]
    if "predicate" not in raw:
        return [Diagnostic(code="MISSING_REVIEW_PREDICATE", path=f"{path}.predicate",
                           severity="warning", message="Review gate needs a predicate",
                           fix="add `predicate: {kind: ...}`; without one nothing is reviewed")]
    context = _Context(prefix=f"{owner}: " if owner else "", categories=categories)
    return _predicate_diagnostics(raw["predicate"], block_type, f"{path}.predicate", context)


@record
class _Context:
    """What the warnings need besides the predicate: the block's name (a message prefix)
    and a classifier's categories ``{name: handle_key}``."""

    prefix: str = ""
    categories: Mapping[str, str] | None = None


#: Predicates whose limit is a fraction (likelihoods, confidences and score margins run
#: from 0 to 1): kind -> (field, what it is compared with, a sensible value).
_FRACTIONS = {"confidence_lt": ("threshold", "likelihood", 0.8),
              "boundary_confidence_lt": ("threshold", "part confidence", 0.8),
              "top_margin_lt": ("margin", "top margin", 0.2)}


def _range_warnings(kind: str, pred: Mapping[str, Any], path: str,
                    prefix: str) -> list[Diagnostic]:
    """``REVIEW_PREDICATE_OUT_OF_RANGE`` when a predicate's number decides it before any
    output is seen: it always fires or never does."""
    def warn(field: str, problem: str, fix: str) -> list[Diagnostic]:
        return [Diagnostic(code="REVIEW_PREDICATE_OUT_OF_RANGE", severity="warning",
                           path=f"{path}.{field}", message=f"{prefix}{kind} {problem}",
                           fix=fix)]

    if kind in _FRACTIONS:
        field, what, example = _FRACTIONS[kind]
        value = pred[field]
        if value > 1:
            example = value / 100 if 10 <= value <= 100 else example  # a percentage
            return warn(field, f"{field} {value} is above 1: a {what} runs from 0 to 1, "
                        "so the predicate always fires",
                        f"write the {field} as a fraction between 0 and 1, e.g. "
                        f"`{field}: {example:g}`")
        if value <= 0:
            return warn(field, f"{field} {value} is 0 or less: no {what} is below it, so "
                        "the predicate never fires",
                        f"use a {field} between 0 and 1, e.g. `{field}: {example:g}`, or "
                        "remove the predicate")
    if kind == "split_count_neq" and pred["expected"] < 0:
        return warn("expected", f"expected {pred['expected']} is negative: no split has "
                    "fewer than 0 parts, so the predicate always fires",
                    "write how many parts you expect, e.g. `expected: 2`")
    if kind == "any_split_pages_lt" and pred["min_pages"] <= 1:
        return warn("min_pages", f"min_pages {pred['min_pages']}: every part has at least "
                    "one page, so the predicate never fires",
                    "write the smallest number of pages a part should have, 2 or more, "
                    "e.g. `min_pages: 2`")
    return []


def _category_warnings(listed: list[Any], path: str, context: _Context) -> list[Diagnostic]:
    """``UNKNOWN_REVIEW_CATEGORY`` for each ``category_in`` entry that names no category."""
    categories = context.categories
    if not categories:
        return []
    problems = []
    for i, name in enumerate(listed):
        if isinstance(name, str) and name in categories:
            continue
        by_key = next((n for n, key in categories.items() if key == name), None)
        fix = (f"write the category's name, {by_key!r}, not its handle_key" if by_key
               else f"use the names of the categories: {', '.join(categories)}")
        problems.append(Diagnostic(
            code="UNKNOWN_REVIEW_CATEGORY", severity="warning",
            path=f"{path}.categories[{i}]", fix=fix,
            message=f"{context.prefix}category_in lists {name!r}, which is not one of the "
            f"categories ({', '.join(categories)}), so it never fires for it"))
    return problems


def _predicate_diagnostics(pred: Any, block_type: str, path: str,
                           context: _Context) -> list[Diagnostic]:
    if not isinstance(pred, Mapping) or not isinstance(pred.get("kind"), str):
        return [_diag("INVALID_REVIEW_PREDICATE", path, "a predicate is a mapping with `kind`",
                      "write `{kind: always}`")]
    kind = pred["kind"]
    if kind not in KINDS:
        return [_diag("UNKNOWN_REVIEW_PREDICATE", f"{path}.kind",
                      f"unknown review predicate kind {kind!r}",
                      f"use one of: {', '.join(KINDS)}")]
    applies, fields = KINDS[kind]
    if block_type not in applies:
        return [_diag("REVIEW_PREDICATE_NOT_APPLICABLE", f"{path}.kind",
                      f"predicate {kind!r} does not apply to {block_type} blocks",
                      f"use it on {', '.join(sorted(applies))}; or use json_condition")]
    problems = []
    for name, kinds in fields.items():
        value = pred.get(name)
        if not isinstance(value, kinds) or isinstance(value, bool):
            problems.append(_diag("INVALID_REVIEW_PREDICATE", f"{path}.{name}",
                                  f"{kind} needs `{name}`", f"set {name} (see docs/models.md)"))
    extra = set(pred) - {"kind", *fields}
    if extra:
        problems.append(_diag("INVALID_REVIEW_PREDICATE", path,
                              f"{kind} has unknown keys: {', '.join(sorted(extra))}",
                              f"keep only: {', '.join(['kind', *fields])}"))
    if problems:
        return problems
    if kind == "json_condition":
        return validate_condition_group(pred["condition"], f"{path}.condition",
                                        inputs=["data", "likelihoods", "output-json-0"])
    problems += _range_warnings(kind, pred, path, context.prefix)
    if kind == "category_in":
        problems += _category_warnings(pred["categories"], path, context)
    for i, sub in enumerate(pred.get("predicates", [])):
        problems += _predicate_diagnostics(sub, block_type, f"{path}.predicates[{i}]", context)
    return problems


# ----------------------------------------------------------------------------- evaluation


def _required_nulls(data: Any, schema: Mapping[str, Any], where: str = "") -> list[str]:
    if not isinstance(schema, Mapping) or not isinstance(data, Mapping):
        return []
    found = []
    props = schema.get("properties") or {}
    for name in schema.get("required") or []:
        if data.get(name) is None:
            found.append(f"{where}{name}")
    for name, sub in props.items():
        if isinstance(data.get(name), Mapping):
            found += _required_nulls(data[name], sub, f"{where}{name}.")
    return found


def _rooted(node: Any) -> Any:
    """Prefix ``data.`` to condition paths that start neither with data nor likelihoods."""
    if isinstance(node, list):
        return [_rooted(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _rooted(v) for k, v in node.items()}
    ref = out.get("path_ref")
    if isinstance(ref, dict) and isinstance(ref.get("path"), str):
        path = ref["path"]
        if path.startswith("output-json-0"):
            path = "data" + path[len("output-json-0"):]
        elif path.split(".")[0].split("[")[0] not in ("data", "likelihoods"):
            path = f"data.{path}" if path else "data"
        out["path_ref"] = {**ref, "path": path, "input": "default"}
    return out


def _cmp_lt(actual: float | None, limit: float) -> bool:
    return actual is not None and actual < limit


class _Facts:
    def __init__(self, output: Any, likelihoods: Any, schema: Mapping[str, Any] | None,
                 kind: str, extra: Mapping[str, Any]) -> None:
        self.output, self.likelihoods, self.schema = output, likelihoods, schema
        self.kind, self.extra = kind, extra

    def confidence(self) -> float | None:
        if "confidence" in self.extra:
            value = self.extra["confidence"]
            return None if value is None else float(value)
        return min_likelihood(self.likelihoods)

    def errors(self) -> list[Any]:
        if "validation_errors" in self.extra:
            return list(self.extra["validation_errors"])
        return schema_errors(self.output, self.schema) if self.schema else []

    def parts(self) -> list[Mapping[str, Any]]:
        return list(self.extra.get("parts", []))


def _check(pred: Mapping[str, Any], f: _Facts) -> dict[str, Any]:
    kind = pred["kind"]
    rec: dict[str, Any] = {"kind": kind}
    checks: dict[str, Callable[[], bool]] = {
        "always": lambda: True,
        "validation_failed": lambda: bool(rec.setdefault("errors", f.errors()[:10])),
        "confidence_lt": lambda: _cmp_lt(rec.setdefault("actual", f.confidence()),
                                         pred["threshold"]),
        "category_in": lambda: rec.setdefault("actual", f.extra.get("category"))
        in pred["categories"],
        "top_margin_lt": lambda: _cmp_lt(rec.setdefault("actual", f.extra.get("top_margin")),
                                         pred["margin"]),
        "split_count_neq": lambda: rec.setdefault("actual", len(f.parts())) != pred["expected"],
        "any_split_pages_lt": lambda: any(len(p["pages"]) < pred["min_pages"] for p in f.parts()),
        "boundary_confidence_lt": lambda: _cmp_lt(
            rec.setdefault("actual", min((p.get("confidence", 1.0) for p in f.parts()),
                                         default=None)), pred["threshold"]),
        "any_pages_unassigned": lambda: bool(rec.setdefault(
            "unassigned_pages", list(f.extra.get("unassigned_pages", [])))),
        "any_required_field_null": lambda: bool(rec.setdefault(
            "fields", _required_nulls(f.output, f.schema or {}))),
    }
    if kind in checks:
        rec.update({k: v for k, v in pred.items() if k != "kind"})
        rec["triggered"] = bool(checks[kind]())
        return rec
    if kind == "json_condition":
        root = {"data": f.output, "likelihoods": f.likelihoods}
        result = evaluate(parse_condition_group(_rooted(copy.deepcopy(pred["condition"]))), root)
        return {**rec, "triggered": result.matched, "evaluation": result.to_dict()}
    subs = [_check(p, f) for p in pred["predicates"]]
    fired = [s for s in subs if s["triggered"]]
    triggered = bool(fired) if kind == "any_of" else bool(subs) and len(fired) == len(subs)
    rec.update(triggered=triggered, evaluations=subs)
    if kind == "any_of" and fired:
        rec["first_match"] = fired[0].get("first_match", fired[0]["kind"])
    return rec


def review_record(review_config: Any, *, output: Any, likelihoods: Any = None,
                  schema: Mapping[str, Any] | None = None, kind: str,
                  extra: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The full evaluation (fired or not), or None when no predicate is configured."""
    if not isinstance(review_config, Mapping) or not isinstance(
            review_config.get("predicate"), Mapping):
        return None
    facts = _Facts(output, likelihoods, schema, kind, extra or {})
    top = _check(review_config["predicate"], facts)
    triggered_by = top.get("first_match", top["kind"]) if top["triggered"] else None
    return {"triggered_by": triggered_by, "requires_human_review": top["triggered"],
            "evaluations": [top]}


def evaluate_review(review_config: Any, *, output: Any, likelihoods: Any = None,
                    schema: Mapping[str, Any] | None = None, kind: str,
                    extra: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The ``review_trigger_evaluation`` record when the predicate fires, else None.

    Args:
        review_config: ``config.review`` (``{predicate: {...}}``) or None.
        output: the block's output (extract: the object; others: a summary).
        likelihoods: the consensus likelihood tree (extract) or None.
        schema: the output's JSON Schema (validation_failed, any_required_field_null).
        kind: ``extract``, ``split``, ``classifier`` or ``split_by_key``.
        extra: block facts: ``confidence``, ``category``, ``top_margin``, ``parts``
            (``[{name, pages, confidence}]``), ``unassigned_pages``,
            ``validation_errors``.
    """
    record = review_record(review_config, output=output, likelihoods=likelihoods,
                           schema=schema, kind=kind, extra=extra)
    return record if record is not None and record["requires_human_review"] else None
