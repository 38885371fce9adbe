"""The conditional block: routes its input to the first matching branch.

``conditional`` sends its unchanged ``input-json-0`` payload to the handle of the first
branch whose condition matches (or to ``output-json-else`` when ``has_else``) and fires
nothing else (the unfired handles carry the reason ``branch_not_selected`` downstream).
Conditions are parsed and evaluated by :mod:`blocks.conditions`; every evaluation is
recorded in the step's ``conditional_evaluation`` artifact.

Branches are written in Retab's documented form (``{branch_name, logical_operator,
sub_conditions: [{path, operator, value}]}``) or in stepwell's (``{id, name, handle_key?,
condition}``); :mod:`blocks.condition_forms` turns the first into the second when the
config is parsed, and :meth:`Conditional.check` refuses a config that mixes them.
``has_else`` defaults to true, as Retab documents it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import AliasChoices, Field, model_validator

from blocks.base import BlockType, StrictConfig
from blocks.condition_forms import (
    RETAB_BRANCH_KEYS,
    STEPWELL_BRANCH_KEYS,
    branch_form,
    normalise_branch,
)
from blocks.conditions import empty_groups, evaluate, validate_condition_group
from blocks.control import parse_group, require_json
from engine.contracts.blocks import BlockContext, BlockResult, HandleKind
from engine.contracts.errors import Diagnostic
from engine.contracts.values import Payload

if TYPE_CHECKING:
    from engine.contracts.definition import BlockDef


def slugify(name: str) -> str:
    """Handle key from a label: lower-case, runs of non ``[a-z0-9]`` become one ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


class Branch(StrictConfig):
    """One branch: ``{id, name, handle_key?, condition}`` (condition checked in check())."""

    id: str | None = None
    name: str = ""
    handle_key: str | None = None
    condition: dict[str, Any] = Field(default_factory=dict)


class ConditionalConfig(StrictConfig):
    """``conditions`` (alias ``branches``) in priority order, and ``has_else``."""

    conditions: list[Branch] = Field(
        default_factory=list, validation_alias=AliasChoices("conditions", "branches")
    )
    has_else: bool = True

    @model_validator(mode="before")
    @classmethod
    def _retab_form(cls, raw: Any) -> Any:
        # Retab-form branches become stepwell-form ones; a mixed branch keeps the keys of
        # its main form so that check() reports the mix rather than unknown fields.
        if not isinstance(raw, Mapping):
            return raw
        raw = dict(raw)
        for key in ("conditions", "branches"):
            if isinstance(raw.get(key), list):
                raw[key] = [_normalised(branch, i) for i, branch in enumerate(raw[key])]
        return raw

    def resolved(self) -> list[tuple[str, str, str, dict[str, Any]]]:
        """``[(id, name, handle_key, raw condition)]`` with defaults filled in."""
        out = []
        for i, b in enumerate(self.conditions):
            ident = b.id or f"condition_{i}"
            name = b.name or ident
            out.append((ident, name, b.handle_key or slugify(name), b.condition))
        return out


def _normalised(branch: Any, index: int) -> Any:
    form = branch_form(branch)
    if form == "mixed":
        retab, own = _keys_by_form(branch)
        drop = STEPWELL_BRANCH_KEYS if len(retab) > len(own) else RETAB_BRANCH_KEYS
        branch = {k: v for k, v in branch.items() if k not in drop}
        form = branch_form(branch)
    if form == "retab":
        extra = {k: v for k, v in branch.items() if k not in RETAB_BRANCH_KEYS
                 and k not in ("id", "handle_key")}
        return {**normalise_branch(branch, index), **extra}
    return branch


def _keys_by_form(branch: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    return ([k for k in branch if k in RETAB_BRANCH_KEYS],
            [k for k in branch if k in STEPWELL_BRANCH_KEYS])


# The key that shows a branch's form, best first; and how messages name the forms.
_MARKS = {"stepwell": ("condition", "name"),
          "retab": ("sub_conditions", "branch_name", "logical_operator")}
_FORM_NAMES = {"retab": "Retab's", "stepwell": "stepwell's"}


def form_problems(raw_branches: Any, where: str, owner: str) -> list[Diagnostic]:
    """``CONDITION_FORMS_MIXED`` for branches that mix Retab's form and stepwell's.

    Args:
        raw_branches: ``config.conditions`` as written.
        where: YAML path of that list.
        owner: how the message names the block.

    Returns:
        One diagnostic per branch that mixes the two forms within itself, or uses the
        other form than the first branch does.
    """
    if not isinstance(raw_branches, list):
        return []
    problems: list[Diagnostic] = []
    first: str | None = None
    fix = ("write every branch in one form: Retab's {branch_name, logical_operator, "
           "sub_conditions: [{path, operator, value}]} or stepwell's {id, name, handle_key, "
           "condition: {logical_operator, sub_conditions}}")
    for i, branch in enumerate(raw_branches):
        form = branch_form(branch)
        if form == "mixed":
            retab, own = _keys_by_form(branch)
            odd = own if len(retab) > len(own) else retab
            problems.append(Diagnostic(
                code="CONDITION_FORMS_MIXED", path=f"{where}[{i}].{odd[0]}", fix=fix,
                message=f"{owner}: branch {i} mixes Retab's form ({', '.join(retab)}) with "
                f"stepwell's ({', '.join(own)}); {odd[0]!r} does not belong with the rest"))
            continue
        if form not in ("retab", "stepwell"):
            continue
        if first is None:
            first = form
        elif form != first:
            key = next(k for k in _MARKS[form] if k in branch)
            problems.append(Diagnostic(
                code="CONDITION_FORMS_MIXED", path=f"{where}[{i}].{key}", fix=fix,
                message=f"{owner}: branch {i} is written in {_FORM_NAMES[form]} form ({key!r}) "
                f"but the branches before it in {_FORM_NAMES[first]}"))
    return problems


def _listed(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _empty_condition(name: str, raw: Any, where: str, owner: str, *, retab: bool,
                     later: list[str], has_else: bool) -> list[Diagnostic]:
    """``EMPTY_CONDITION`` for each group of a branch that has no sub_conditions.

    Args:
        name: the branch's name.
        raw: its condition group (stepwell's form).
        where: YAML path of the group (the branch itself in Retab's form).
        owner: how messages name the block.
        retab: the branch is written in Retab's form (the fix shows that form).
        later: names of the branches after it.
        has_else: the block has an else handle.
    """
    problems = []
    for group_path, operator in empty_groups(raw, where):
        verdict = "always matches" if operator == "and" else "never matches"
        if group_path != where:
            message = (f"{owner}: branch {name!r} holds a group with no sub_conditions, "
                       f"which {verdict} (logical_operator {operator})")
            fix = "add sub_conditions to the group, or remove it"
        else:
            message = f"{owner}: branch {name!r} has no sub_conditions, so it {verdict}"
            shadowed = [f"branch {n!r}" for n in later] + (
                ["the else branch"] if has_else else [])
            if operator == "or":
                message += " (logical_operator or)"
            elif shadowed:
                verb = "is" if len(shadowed) == 1 else "are"
                message += f": {_listed(shadowed)} after it {verb} never selected"
            fix = ("add `sub_conditions: [{path: data.total, operator: is_greater_than, "
                   "value: 1000}]`" if retab else "add `condition: {sub_conditions: "
                   "[{path_ref: {input: default, path: total}, operator: greater_than, "
                   "value: 1000}]}`") + ", or remove the branch"
        problems.append(Diagnostic(code="EMPTY_CONDITION", severity="warning",
                                   path=f"{group_path}.sub_conditions", message=message,
                                   fix=fix))
    return problems


_HANDLE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class Conditional(BlockType):
    """Routes ``input-json-0`` unchanged to the first matching branch (or ``else``)."""

    type_name = "conditional"
    config_model = ConditionalConfig
    operation = "conditional_evaluation"
    unfired_reason = "branch_not_selected"
    inline = True

    def input_handles(self, config: ConditionalConfig) -> dict[str, HandleKind]:
        return {"input-json-0": "json"}

    def output_handles(self, config: ConditionalConfig) -> dict[str, HandleKind]:
        handles: dict[str, HandleKind] = {
            f"output-json-{key}": "json" for _, _, key, _ in config.resolved()
        }
        if config.has_else:
            handles["output-json-else"] = "json"
        return handles

    def check(self, block: BlockDef, config: ConditionalConfig, path: str) -> list[Diagnostic]:
        field = "branches" if "branches" in block.config else "conditions"
        owner = f"conditional block {block.id!r}"
        written = block.config.get(field)
        problems = form_problems(written, f"{path}.config.{field}", owner)
        if not config.conditions:
            problems.append(self._no_conditions(config, f"{path}.config.{field}", owner))
        seen_keys: dict[str, int] = {}
        seen_ids: set[str] = set()
        resolved = config.resolved()
        for i, (ident, name, key, raw) in enumerate(resolved):
            where = f"{path}.config.{field}[{i}]"
            retab = isinstance(written, list) and branch_form(written[i]) == "retab"
            group_path = where if retab else f"{where}.condition"
            found = validate_condition_group(raw, group_path, inputs=["input-json-0"],
                                             owner=owner)
            problems += found
            if not found:
                later = [n for _, n, _, _ in resolved[i + 1:]]
                problems += _empty_condition(name, raw, group_path, owner, retab=retab,
                                             later=later, has_else=config.has_else)
            problems += self._key_problems(key, where, seen_keys, i)
            if ident in seen_ids:
                problems.append(
                    Diagnostic(
                        code="DUPLICATE_CONDITION_ID",
                        message=f"condition id {ident!r} is used twice",
                        path=f"{where}.id",
                        fix="give every branch its own id",
                    )
                )
            seen_ids.add(ident)
        if config.has_else and "else" in seen_keys:
            problems.append(
                Diagnostic(
                    code="DUPLICATE_HANDLE_KEY",
                    message="handle key 'else' clashes with has_else",
                    path=f"{path}.config.{field}[{seen_keys['else']}].handle_key",
                    fix="rename the branch or its handle_key",
                )
            )
        return problems

    @staticmethod
    def _no_conditions(config: ConditionalConfig, where: str, owner: str) -> Diagnostic:
        """``NO_CONDITIONS``: a conditional without branches routes nothing."""
        if config.has_else:
            effect = ("every input goes to output-json-else, so the block routes nothing; "
                      "whatever hangs off it runs for every input")
        else:
            effect = "with has_else: false it has no output handle, so it fires nothing"
        return Diagnostic(
            code="NO_CONDITIONS", severity="warning", path=where,
            message=f"{owner} has no conditions: {effect}",
            fix="add a branch, e.g. `conditions: [{branch_name: big, sub_conditions: "
            "[{path: data.total, operator: is_greater_than, value: 1000}]}]`, or remove "
            "the block and connect its input to what should run")

    @staticmethod
    def _key_problems(key: str, where: str, seen: dict[str, int], i: int) -> list[Diagnostic]:
        if not key or not _HANDLE_KEY.match(key):
            return [
                Diagnostic(
                    code="INVALID_HANDLE_KEY",
                    message=f"branch handle key {key!r} is empty or has characters other than "
                    "letters, digits, '-' and '_'",
                    path=f"{where}.handle_key",
                    fix="set handle_key, e.g. `needs-approval`",
                )
            ]
        if key in seen:
            return [
                Diagnostic(
                    code="DUPLICATE_HANDLE_KEY",
                    message=f"handle key {key!r} is also used by branch {seen[key]}",
                    path=f"{where}.handle_key",
                    fix="give the branch a distinct name or an explicit handle_key",
                )
            ]
        seen[key] = i
        return []

    async def run(
        self, ctx: BlockContext, config: ConditionalConfig, inputs: Mapping[str, Payload]
    ) -> BlockResult:
        """Evaluate every branch; fire the first match (or else) with the input payload.

        Raises:
            PermanentError: no input, or a condition that does not parse.
        """
        data = require_json(ctx, inputs, "input-json-0")
        evaluations: list[dict[str, Any]] = []
        for i, (ident, name, key, raw) in enumerate(config.resolved()):
            group = parse_group(ctx, raw, f"conditions[{i}].condition")
            result = evaluate(group, data, inputs={"input-json-0": data})
            evaluations.append(
                {
                    "condition_id": ident,
                    "branch_name": name,
                    "output_handle_id": f"output-json-{key}",
                    **result.to_dict(),
                }
            )
        matched = [e for e in evaluations if e["matched"]]
        if matched:
            selected = [matched[0]["output_handle_id"]]
        else:
            selected = ["output-json-else"] if config.has_else else []
        artifact = {
            "operation": self.operation,
            "evaluations": evaluations,
            "selected_handles": selected,
            "matched_branch_id": matched[0]["condition_id"] if matched else None,
            "matched_condition_ids": [e["condition_id"] for e in matched],
        }
        return BlockResult(outputs={h: inputs["input-json-0"] for h in selected}, artifact=artifact)
