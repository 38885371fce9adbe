"""The contract between the engine and a block type.

A block type is a :class:`BlockType` subclass registered on a
:class:`~blocks.registry.BlockRegistry`. It declares:

* ``type_name`` and a pydantic ``config_model`` (``extra='forbid'``: an unknown config key
  is a validation error listing the valid keys);
* its handles, derived from its parsed config (:meth:`BlockType.input_handles`,
  :meth:`BlockType.output_handles`), each of kind ``json`` or ``file``;
* how it joins its inputs (:class:`JoinMode`) and what reason an unfired output handle
  gives downstream (``unfired_reason``);
* :meth:`BlockType.run`, an async function from handle payloads to a :class:`BlockResult`.

Handlers never touch the database: they return values and raise
:class:`~engine.contracts.errors.BlockError` subclasses; the runner persists and retries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from engine.contracts.blocks import (
    CURRENT_CONTEXT,
    BlockContext,
    BlockResult,
    Control,
    ExpandItems,
    HandleKind,
    JoinMode,
    LoopDecision,
    LoopStart,
    current_context,
)
from engine.contracts.definition import BlockDef
from engine.contracts.errors import Diagnostic
from engine.contracts.files import FileStore
from engine.contracts.values import Payload

__all__ = [
    "CURRENT_CONTEXT", "BlockContext", "BlockResult", "BlockType", "Control", "EmptyConfig",
    "ExpandItems", "FileStore", "HandleKind", "JoinMode", "LoopDecision", "LoopStart",
    "RetryConfig", "StrictConfig", "current_context",
]

class RetryConfig(BaseModel):
    """``config.retry`` on any block: overrides the engine's default retry policy."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int | None = Field(default=None, ge=1, le=100)
    initial_interval_s: float | None = Field(default=None, ge=0)
    backoff: float | None = Field(default=None, ge=1)
    max_interval_s: float | None = Field(default=None, ge=0)
    jitter: float | None = Field(default=None, ge=0, le=1)


class StrictConfig(BaseModel):
    """Base for block config models: unknown keys are rejected.

    Every block accepts ``retry`` (see :class:`RetryConfig`).
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    retry: RetryConfig | None = None


class EmptyConfig(StrictConfig):
    """Config of blocks that take none."""


class BlockType:
    """Base class of every block type. Subclass, set the class attributes, implement run.

    Class attributes:
        type_name: the ``type`` written in workflow files.
        config_model: pydantic model of ``config`` (extra keys forbidden).
        join: see :class:`JoinMode`.
        unfired_reason: reason prefix given downstream when an output handle does not fire
            (``branch_not_selected``, ``category_not_selected``, ``subdocument_not_found``).
        reviewable: ``config.review`` is allowed.
        executes: False for blocks that never run and write no step (``note``).
        authorable: False for engine-generated types (loop sentinels).
        container: ``for_each`` / ``while_loop`` for container types, else None.
        operation: artifact operation name this block records, if any.
        inline: ``run`` never suspends (pure CPU logic): see :meth:`runs_inline`.
    """

    type_name: ClassVar[str] = ""
    config_model: ClassVar[type[BaseModel]] = EmptyConfig
    join: ClassVar[JoinMode] = JoinMode.ALL
    unfired_reason: ClassVar[str] = "branch_not_selected"
    reviewable: ClassVar[bool] = False
    executes: ClassVar[bool] = True
    authorable: ClassVar[bool] = True
    container: ClassVar[str | None] = None
    operation: ClassVar[str | None] = None
    inline: ClassVar[bool] = False

    def parse_config(self, raw: Mapping[str, Any]) -> BaseModel:
        """Validate ``raw`` into ``config_model`` (raises pydantic.ValidationError)."""
        return self.config_model.model_validate(dict(raw))

    def input_handles(self, config: Any) -> dict[str, HandleKind]:
        """Input handle ids and kinds for this config (default: none)."""
        return {}

    def output_handles(self, config: Any) -> dict[str, HandleKind]:
        """Output handle ids and kinds for this config (default: none)."""
        return {}

    def input_aliases(self, config: Any) -> dict[str, str]:
        """Friendly target-handle names (``document`` -> ``input-file-document``)."""
        aliases: dict[str, str] = {}
        for handle in self.input_handles(config):
            parts = handle.split("-", 2)
            if len(parts) == 3 and parts[2] not in aliases:
                aliases[parts[2]] = handle
        return aliases

    def check(self, block: BlockDef, config: Any, path: str) -> list[Diagnostic]:
        """Extra semantic checks beyond the config model (default: none)."""
        return []

    def output_schema(self, config: Any, handle: str) -> dict[str, Any] | None:
        """JSON schema of what ``handle`` will carry, when the config says (default None)."""
        return None

    def runs_inline(self, config: Any) -> bool:
        """True when :meth:`run` never suspends for this config (default: ``inline``).

        The runner then calls the handler directly in its driver loop, with no task,
        cancel scope or timer around it: the fast path for pure, CPU-only logic.
        Return True only if ``run`` awaits nothing that can suspend (no I/O, no
        sleeps, no threads); a handler that suspends anyway fails its step with
        ``INLINE_BLOCK_SUSPENDED``. Types that never suspend set ``inline = True``;
        override this when it depends on the config.
        """
        return self.inline

    async def run(
        self, ctx: BlockContext, config: Any, inputs: Mapping[str, Payload]
    ) -> BlockResult:
        """Execute the block. Raise BlockError subclasses on failure."""
        raise NotImplementedError(f"block type {self.type_name!r} does not execute")
