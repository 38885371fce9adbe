"""The ``while_loop`` container, and the sentinel types of both loop containers.

The engine expands a container through two generated members per iteration:
``<container>_sentinel_start`` hands the iteration's item or state to the children,
``<container>_sentinel_end`` collects what they produced. The handlers here only compute
values; the scheduler owns iteration, concurrency and collection:

* ``for_each`` (:mod:`blocks.for_each`, re-exported here) returns
  :class:`~engine.contracts.blocks.ExpandItems`;
* ``while_loop.run`` returns :class:`~engine.contracts.blocks.LoopStart`: iteration 0's
  state and ``max_iterations``;
* ``while_loop_sentinel_end.run`` returns :class:`~engine.contracts.blocks.LoopDecision`
  after testing the termination condition on ``loop-termination`` (or ``loop-right-in``
  when that did not arrive).

Sentinel types reuse their container's config model, because the engine hands them the
container's parsed config.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pydantic import Field, PrivateAttr, field_validator, model_validator

from blocks.base import BlockType, StrictConfig
from blocks.condition_forms import termination_group
from blocks.conditions import MISSING, empty_groups, evaluate, validate_condition_group
from blocks.control import parse_group, who
from blocks.for_each import SPLIT_BY_KEY_SERVICE, ForEach, ForEachConfig, Partitioner
from blocks.loop_context import render, template_diagnostics
from engine.contracts.blocks import (
    LOOP_CONTEXT_HANDLE,
    BlockContext,
    BlockResult,
    HandleKind,
    JoinMode,
    LoopDecision,
    LoopStart,
    block_result,
)
from engine.contracts.errors import Diagnostic, ErrorStage, PermanentError
from engine.contracts.values import Payload

if TYPE_CHECKING:
    from engine.contracts.definition import BlockDef

__all__ = [
    "MAX_WHILE_ITERATIONS", "SPLIT_BY_KEY_SERVICE", "ForEach", "ForEachConfig",
    "ForEachSentinelEnd", "ForEachSentinelStart", "Partitioner", "SentinelStart", "WhileLoop",
    "WhileLoopConfig", "WhileLoopSentinelEnd", "WhileLoopSentinelStart",
]

#: The most iterations a while_loop may ask for. A workflow can come from an untrusted
#: client (the HTTP API): a for_each's iterations are bounded by the items its input
#: holds, a while_loop's by this number alone. 100,000 is the largest for_each the bench
#: runs (``for_each_100k``, with ``max_items: 100000``) and a hundred times W3's 1,000.
MAX_WHILE_ITERATIONS = 100_000


class WhileLoopConfig(StrictConfig):
    """``max_iterations`` (default 10, at most :data:`MAX_WHILE_ITERATIONS`), the
    termination conditions in one of three spellings, and ``loop_context_template``.

    ``termination_conditions`` (Retab's documented key) is a list of ``{path, operator,
    value}`` (or groups); ``termination_condition`` one group; ``conditions`` a list of
    groups. In every spelling any matching entry ends the loop.
    """

    max_iterations: int = Field(10, ge=1)
    termination_conditions: list[Any] | None = None
    termination_condition: dict[str, Any] | None = None
    conditions: list[dict[str, Any]] | None = None
    loop_context_template: str | None = None
    _normalised: tuple[list[Any], list[tuple[str, str, Any]]] | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, raw: Any) -> Any:
        if isinstance(raw, Mapping) and "max_iterations" in raw and raw["max_iterations"] is None:
            raise ValueError(
                "while_loop needs config.max_iterations (an integer >= 1) to bound the loop; "
                "write e.g. `max_iterations: 10`, or leave it out for Retab's default of 10"
            )
        return raw

    @field_validator("max_iterations")
    @classmethod
    def _at_most(cls, value: int) -> int:
        if value > MAX_WHILE_ITERATIONS:
            raise ValueError(
                f"while_loop config.max_iterations is {value}, more than the limit of "
                f"{MAX_WHILE_ITERATIONS:,} iterations; write at most "
                f"`max_iterations: {MAX_WHILE_ITERATIONS}` and end the loop earlier with "
                "termination_conditions (or loop over a list with a for_each)"
            )
        return value

    def groups(self) -> list[tuple[str, str, Any]]:
        """``[(condition_id, yaml field, group)]``; any match ends the loop."""
        source = self.termination_conditions
        if source is not None:
            # Normalised once per config (the same objects each iteration, so the parsed
            # groups are reused too: blocks.control.parse_group).
            cached = self._normalised
            if cached is None or cached[0] is not source:
                cached = self._normalised = (source, [
                    (f"condition_{i}", f"termination_conditions[{i}]", termination_group(raw))
                    for i, raw in enumerate(source)])
            return cached[1]
        if self.termination_condition is not None:
            return [("termination", "termination_condition", self.termination_condition)]
        return [
            (f"condition_{i}", f"conditions[{i}]", g) for i, g in enumerate(self.conditions or [])
        ]

    def spellings(self) -> list[str]:
        """The termination keys written (more than one is an error)."""
        return [k for k in ("termination_conditions", "termination_condition", "conditions")
                if getattr(self, k) is not None]


_TERMINATION_INPUTS = ["loop-termination", "loop-right-in"]


def _is_group(raw: Any) -> bool:
    return isinstance(raw, Mapping) and "sub_conditions" in raw


def _empty_termination(raw: Any, where: str, field: str, owner: str) -> list[Diagnostic]:
    """``EMPTY_CONDITION`` for each termination group that has no sub_conditions."""
    problems = []
    for group_path, operator in empty_groups(raw, where):
        if group_path != where:
            verdict = "always matches" if operator == "and" else "never matches"
            message = (f"{owner}: {field} holds a group with no sub_conditions, which "
                       f"{verdict} (logical_operator {operator})")
        elif operator == "and":
            message = (f"{owner}: {field} has no sub_conditions, so it matches after the "
                       "first iteration: the loop body runs once")
        else:
            message = (f"{owner}: {field} has no sub_conditions, so it never matches "
                       "(logical_operator or)")
        problems.append(Diagnostic(
            code="EMPTY_CONDITION", severity="warning", path=f"{group_path}.sub_conditions",
            message=message,
            fix="add `sub_conditions: [{path: done, operator: is_true}]`, or remove it"))
    return problems


class WhileLoop(BlockType):
    """Runs its children until the termination condition matches (do-while)."""

    type_name = "while_loop"
    config_model = WhileLoopConfig
    container = "while_loop"
    operation = "while_loop_termination"
    inline = True

    def input_handles(self, config: WhileLoopConfig) -> dict[str, HandleKind]:
        return {"loop-left-in": "json", "loop-right-in": "json", "loop-termination": "json"}

    def output_handles(self, config: WhileLoopConfig) -> dict[str, HandleKind]:
        return {"loop-right-out": "json", "loop-left-out": "json"}

    def check(self, block: BlockDef, config: WhileLoopConfig, path: str) -> list[Diagnostic]:
        owner = f"while_loop block {block.id!r}"
        problems: list[Diagnostic] = []
        written = config.spellings()
        if len(written) > 1:
            problems.append(
                Diagnostic(
                    code="CONFLICTING_TERMINATION",
                    message=f"{owner}: {' and '.join(written)} are all set; the loop would "
                    "not know which to test",
                    path=f"{path}.config.{written[1]}",
                    fix="keep one: termination_conditions (Retab's list), "
                    "termination_condition (a group) or conditions (a list of groups)",
                )
            )
        if not config.groups():
            problems.append(
                Diagnostic(
                    code="NO_TERMINATION_CONDITION",
                    severity="warning",
                    message=f"{owner}: no termination condition: the loop always runs "
                    "max_iterations times",
                    path=f"{path}.config.termination_conditions",
                    fix="add termination_conditions: [{path, operator, value}]",
                )
            )
        flat = {f"termination_conditions[{i}]"
                for i, raw in enumerate(config.termination_conditions or [])
                if not _is_group(raw)}
        for _, field, raw in config.groups():
            where = f"{path}.config.{field}"
            found = validate_condition_group(raw, where, inputs=_TERMINATION_INPUTS,
                                             owner=owner)
            if field in flat:  # a flat {path, operator, value} was wrapped in a group of one
                found = [replace(d, path=d.path.replace(f"{where}.sub_conditions[0]", where))
                         for d in found]
            problems += found or _empty_termination(raw, where, field, owner)
        problems += template_diagnostics(config.loop_context_template,
                                         f"{path}.config.loop_context_template", owner)
        return problems

    async def run(
        self, ctx: BlockContext, config: WhileLoopConfig, inputs: Mapping[str, Payload]
    ) -> BlockResult:
        """Start the loop with the ``loop-left-in`` payload as iteration 0's state.

        Raises:
            PermanentError: nothing arrived on ``loop-left-in``.
        """
        state = inputs.get("loop-left-in")
        if state is None:
            raise PermanentError(
                f"{who(ctx)} received nothing on 'loop-left-in'; connect the initial state.",
                stage=ErrorStage.INPUT_COLLECTION,
                code="MISSING_INPUT",
            )
        return BlockResult(control=LoopStart(
            state=state, max_iterations=config.max_iterations,
            inject_context=bool(config.loop_context_template)))


# ----------------------------------------------------------------------------- sentinels


class SentinelStart(BlockType):
    """Identity: the engine injects the item/state on ``in_handle``; it goes out on
    ``out_handle`` to the container's children."""

    inline = True

    authorable = False
    in_handle = ""
    out_handle = ""

    def _kind(self, config: Any) -> HandleKind:
        return "json"

    def input_handles(self, config: Any) -> dict[str, HandleKind]:
        return {self.in_handle: self._kind(config)}

    def output_handles(self, config: Any) -> dict[str, HandleKind]:
        return {self.out_handle: self._kind(config)}

    async def run(
        self, ctx: BlockContext, config: Any, inputs: Mapping[str, Payload]
    ) -> BlockResult:
        """Pass the injected payload through.

        Raises:
            PermanentError: the engine injected nothing (an engine bug).
        """
        if self.in_handle not in inputs:
            raise PermanentError(
                f"{who(ctx)} got no {self.in_handle!r} payload; this is an engine bug, "
                "please report it with the run's database.",
                stage=ErrorStage.INPUT_COLLECTION,
                code="MISSING_INPUT",
            )
        return block_result(outputs={self.out_handle: inputs[self.in_handle]})


class ForEachSentinelStart(SentinelStart):
    """Hands one item to the for_each children."""

    type_name = "for_each_sentinel_start"
    config_model = ForEachConfig
    in_handle, out_handle = "fe-left-in", "fe-left-out"

    def _kind(self, config: ForEachConfig) -> HandleKind:
        return config.item_kind


class WhileLoopSentinelStart(SentinelStart):
    """Hands the iteration's state to the while_loop children, and renders the loop
    context template (:mod:`blocks.loop_context`) as the step's ``loop_context`` span."""

    type_name = "while_loop_sentinel_start"
    config_model = WhileLoopConfig
    in_handle, out_handle = "loop-left-in", "loop-left-out"

    async def run(
        self, ctx: BlockContext, config: WhileLoopConfig, inputs: Mapping[str, Payload]
    ) -> BlockResult:
        """Pass the state through; render the loop context when there is a template.

        Raises:
            PermanentError: the engine injected nothing (an engine bug).
        """
        result = await super().run(ctx, config, inputs)
        if not config.loop_context_template:
            return result
        previous = inputs.get(LOOP_CONTEXT_HANDLE)
        evaluations = (previous.data or {}).get("evaluations", []) if previous else []
        now = time.time()
        text = render(config.loop_context_template, iteration=ctx.iteration or 0,
                      max_iterations=config.max_iterations,
                      data=inputs[self.in_handle].data, evaluations=evaluations)
        span = {"name": "loop_context", "start": now, "end": now, "attributes": {"text": text}}
        return replace(result, trace_spans=[span])


class ForEachSentinelEnd(BlockType):
    """Where an iteration's result settles; the engine reads its ``fe-right-in``."""

    type_name = "for_each_sentinel_end"
    config_model = ForEachConfig
    authorable = False
    join = JoinMode.SETTLED
    inline = True

    def input_handles(self, config: ForEachConfig) -> dict[str, HandleKind]:
        return {"fe-right-in": "json"}

    async def run(
        self, ctx: BlockContext, config: ForEachConfig, inputs: Mapping[str, Payload]
    ) -> BlockResult:
        """Nothing to compute: the engine collects the inputs."""
        return BlockResult()


class WhileLoopSentinelEnd(BlockType):
    """Tests the termination condition after each iteration."""

    type_name = "while_loop_sentinel_end"
    config_model = WhileLoopConfig
    authorable = False
    join = JoinMode.SETTLED
    operation = "while_loop_termination"
    inline = True

    def input_handles(self, config: WhileLoopConfig) -> dict[str, HandleKind]:
        return {"loop-right-in": "json", "loop-termination": "json"}

    async def run(
        self, ctx: BlockContext, config: WhileLoopConfig, inputs: Mapping[str, Payload]
    ) -> BlockResult:
        """Decide whether the loop ends after this iteration.

        Returns:
            ``control=LoopDecision(matched, evaluations)`` and a ``while_loop_termination``
            artifact for this iteration (the engine owns the final reason).

        Raises:
            PermanentError: a termination condition that does not parse.
        """
        named = {h: inputs[h].data for h in _TERMINATION_INPUTS if h in inputs}
        root = named.get("loop-termination", named.get("loop-right-in", MISSING))
        evaluations = []
        for ident, field, raw in config.groups():
            group = parse_group(ctx, raw, f"config.{field}")
            result = evaluate(group, root, inputs=named)
            evaluations.append({"condition_id": ident, "branch_name": "exit", **result.to_dict()})
        matched = any(e["matched"] for e in evaluations)
        iteration = ctx.iteration or 0
        reason = (
            "condition_matched"
            if matched
            else ("max_iterations_reached" if iteration + 1 >= config.max_iterations else None)
        )
        artifact = {
            "operation": self.operation,
            "iteration": iteration,
            "should_continue": reason is None,
            "termination_reason": reason,
            "evaluations": evaluations,
        }
        return block_result(
            control=LoopDecision(matched=matched, evaluations=evaluations), artifact=artifact
        )
