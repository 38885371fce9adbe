"""JSON object blocks: merge_dicts and reshape.

``merge_dicts`` is a join (it runs with whatever arrived). As Retab documents it, the
output holds each input that arrived under its name, in declared order
(``{invoice_data: {...}, vendor_data: {...}}``; an unnamed input is named by its
index). Writing ``collision`` (stepwell's own key, which Retab does not have) selects
stepwell's earlier behaviour instead: a shallow merge of the objects, in declared order,
under that policy.
``reshape`` builds a new object from ``{target: source path}`` mappings into its input
(paths as in :mod:`blocks.conditions`), optionally checked against ``output_schema``.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from blocks.base import BlockType, StrictConfig
from blocks.condition_paths import (
    MISSING,
    PathSyntaxError,
    json_type,
    lookup,
    parse_path,
)
from blocks.control import (
    NamedInput,
    duplicate_inputs,
    named_handle,
    no_inputs,
    require_json,
    who,
)
from blocks.schemas import ensure_matches_schema, schema_diagnostics
from engine.contracts.blocks import BlockContext, BlockResult, HandleKind, JoinMode
from engine.contracts.errors import Diagnostic, PermanentError
from engine.contracts.values import Payload

if TYPE_CHECKING:
    from engine.contracts.definition import BlockDef

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- merge_dicts


class MergeDictsConfig(StrictConfig):
    """Declared ``inputs`` (output order); ``collision`` selects the shallow merge."""

    inputs: list[NamedInput] = Field(default_factory=lambda: [NamedInput()])
    collision: Literal["last_wins", "first_wins", "error"] | None = None


class MergeDicts(BlockType):
    """Puts each arrived input under its name (or shallow-merges, with ``collision``)."""

    type_name = "merge_dicts"
    config_model = MergeDictsConfig
    join = JoinMode.ANY_NO_FAIL
    inline = True

    def input_handles(self, config: MergeDictsConfig) -> dict[str, HandleKind]:
        return {named_handle("json", i.name, n): "json" for n, i in enumerate(config.inputs)}

    def output_handles(self, config: MergeDictsConfig) -> dict[str, HandleKind]:
        return {"output-json-0": "json"}

    def check(self, block: BlockDef, config: MergeDictsConfig, path: str) -> list[Diagnostic]:
        problems = duplicate_inputs(config.inputs, path)
        if not config.inputs:
            problems.append(no_inputs(
                block, path, "so it has no input handle and always outputs {}", "input-json-0",
                "what to merge: `inputs: [{name: invoice_data}, {name: vendor_data}]`",
                severity="warning"))
        for n, item in enumerate(config.inputs):
            if item.type != "json":
                problems.append(
                    Diagnostic(
                        code="INVALID_INPUT_TYPE",
                        message="merge_dicts merges JSON objects only",
                        path=f"{path}.config.inputs[{n}].type",
                        fix="use `type: json` or drop it",
                    )
                )
        return problems

    async def run(
        self, ctx: BlockContext, config: MergeDictsConfig, inputs: Mapping[str, Payload]
    ) -> BlockResult:
        """Combine the arrived inputs.

        Raises:
            PermanentError: with ``collision``: a payload is not an object, or a key
                collides under ``collision: error``.
        """
        if config.collision is None:
            named = {str(i.name if i.name not in (None, "") else n): named_handle(
                "json", i.name, n) for n, i in enumerate(config.inputs)}
            wrapped = {name: inputs[h].data for name, h in named.items() if h in inputs}
            return BlockResult(outputs={"output-json-0": Payload.json(wrapped)})
        merged: dict[str, Any] = {}
        owner: dict[str, str] = {}
        for handle in self.input_handles(config):
            if handle not in inputs:
                continue
            data = inputs[handle].data
            if not isinstance(data, Mapping):
                raise PermanentError(
                    f"{who(ctx)}: {handle!r} carries a JSON {json_type(data)}, not an object; "
                    "merge_dicts merges objects. Wrap it upstream (e.g. reshape).",
                    code="MERGE_INPUT_NOT_OBJECT",
                    context={"handle": handle},
                )
            self._merge_into(ctx, config, merged, owner, handle, data)
        return BlockResult(outputs={"output-json-0": Payload.json(merged)})

    @staticmethod
    def _merge_into(
        ctx: BlockContext,
        config: MergeDictsConfig,
        merged: dict[str, Any],
        owner: dict[str, str],
        handle: str,
        data: Mapping[str, Any],
    ) -> None:
        for key, value in data.items():
            if key in merged:
                if config.collision == "error":
                    raise PermanentError(
                        f"{who(ctx)}: key {key!r} comes from both {owner[key]!r} and "
                        f"{handle!r}. Rename it upstream or set collision: last_wins|first_wins.",
                        code="MERGE_KEY_COLLISION",
                        context={"key": key, "handles": [owner[key], handle]},
                    )
                if config.collision == "first_wins":
                    continue
                log.debug("%s: %r from %s overwrites %s", who(ctx), key, handle, owner[key])
            merged[key] = value
            owner[key] = handle


# ----------------------------------------------------------------------------- reshape

_TARGET = re.compile(r"^[^.\[\]*]+(\.[^.\[\]*]+)*$")


class ReshapeConfig(StrictConfig):
    """``mappings`` ``{target: source path}``, optional ``output_schema``, ``missing``."""

    mappings: dict[str, str] = Field(default_factory=dict)
    output_schema: dict[str, Any] | None = None
    missing: Literal["error", "null"] = "error"


class Reshape(BlockType):
    """Builds a new object from paths into ``input-json-0``."""

    type_name = "reshape"
    config_model = ReshapeConfig
    inline = True

    def input_handles(self, config: ReshapeConfig) -> dict[str, HandleKind]:
        return {"input-json-0": "json"}

    def output_handles(self, config: ReshapeConfig) -> dict[str, HandleKind]:
        return {"output-json-0": "json"}

    def output_schema(self, config: ReshapeConfig, handle: str) -> dict[str, Any] | None:
        return config.output_schema

    def check(self, block: BlockDef, config: ReshapeConfig, path: str) -> list[Diagnostic]:
        problems = schema_diagnostics(config.output_schema, f"{path}.config.output_schema")
        if not config.mappings:
            problems.append(Diagnostic(
                code="NO_MAPPINGS", severity="warning", path=f"{path}.config.mappings",
                message=f"reshape block {block.id!r} has no mappings: its output is always {{}}, "
                "whatever arrives",
                fix="map output keys to input paths, e.g. `mappings: {total: invoice.total, "
                "customer.name: buyer.name}`"))
        targets: list[tuple[str, ...]] = []
        for target, source in config.mappings.items():
            where = f"{path}.config.mappings.{target}"
            try:
                parse_path(source)
            except PathSyntaxError as exc:
                problems.append(
                    Diagnostic(
                        code="INVALID_PATH", message=str(exc), path=where, fix="fix the source path"
                    )
                )
            if not _TARGET.match(target):
                problems.append(
                    Diagnostic(
                        code="INVALID_RESHAPE_TARGET",
                        message=f"target {target!r} must be dotted keys (no brackets, no '*')",
                        path=where,
                        fix="write targets like `customer.name`",
                    )
                )
                continue
            parts = tuple(target.split("."))
            for other in targets:
                shorter, longer = sorted((parts, other), key=len)
                if longer[: len(shorter)] == shorter:
                    problems.append(
                        Diagnostic(
                            code="RESHAPE_TARGET_CONFLICT",
                            message=f"targets {'.'.join(other)!r} and {target!r} overlap",
                            path=where,
                            fix="map to a target that neither holds nor is held by another",
                        )
                    )
            targets.append(parts)
        return problems

    async def run(
        self, ctx: BlockContext, config: ReshapeConfig, inputs: Mapping[str, Payload]
    ) -> BlockResult:
        """Build the output object.

        Raises:
            PermanentError: a source path is missing (unless ``missing: null``), targets
                overlap, or the result breaks ``output_schema``.
        """
        data = require_json(ctx, inputs, "input-json-0")
        out: dict[str, Any] = {}
        for target, source in config.mappings.items():
            value = lookup(data, source)  # a `*` over an empty array gives []
            if value is MISSING:
                if config.missing == "error":
                    raise PermanentError(
                        f"{who(ctx)}: path {source!r} (for {target!r}) is not in the input. "
                        "Fix config.mappings, or set `missing: null` to map absent paths to null.",
                        code="RESHAPE_PATH_MISSING",
                        context={"target": target, "path": source},
                    )
                value = None
            self._assign(ctx, out, target, copy.deepcopy(value))
        ensure_matches_schema(ctx, out, config.output_schema, "the reshaped output")
        return BlockResult(outputs={"output-json-0": Payload.json(out)})

    @staticmethod
    def _assign(ctx: BlockContext, out: dict[str, Any], target: str, value: Any) -> None:
        *parents, last = target.split(".")
        node: Any = out
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        if not isinstance(node, dict) or last in node:
            raise PermanentError(
                f"{who(ctx)}: mapping target {target!r} overlaps another target. "
                "Give each mapping its own place in the output.",
                code="RESHAPE_TARGET_CONFLICT",
                context={"target": target},
            )
        node[last] = value
