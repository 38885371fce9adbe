"""The contract between the engine and a block type.

A block type is a :class:`BlockType` subclass registered on a
:class:`~blocks.registry.BlockRegistry`. It declares:

* ``type_name`` and a pydantic ``config_model`` (``extra='forbid'``: an unknown config key
  is a validation error listing the valid keys);
* its handles, derived from its parsed config (:meth:`BlockType.input_handles`,
  :meth:`BlockType.output_handles`), each of kind ``json`` or ``file``;
* how it joins its inputs (:class:`JoinMode`) and what reason an unfired output handle
  gives downstream (``unfired_reason``);
* its :class:`BlockRole` (start, end or task), which the engine reads instead of the type's
  name;
* :meth:`BlockType.run`, an async function from handle payloads to a :class:`BlockResult`;
* for types whose step can wait for a review, what a decision means
  (:meth:`BlockType.validate_decision`, :meth:`BlockType.result_after_review`).

Handlers never touch the database: they return values and raise
:class:`~engine.contracts.errors.BlockError` subclasses; the runner persists and retries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from engine.contracts.blocks import (
    CURRENT_CONTEXT,
    BlockContext,
    BlockResult,
    BlockRole,
    Control,
    ExpandItems,
    HandleKind,
    JoinMode,
    LoopDecision,
    LoopStart,
    ReviewDecision,
    current_context,
)
from engine.contracts.definition import BlockDef
from engine.contracts.errors import Diagnostic
from engine.contracts.files import FileStore
from engine.contracts.values import Payload

if TYPE_CHECKING:  # the policy is named in a signature; blocks that check one import it
    from engine.contracts.policy import SecurityPolicy

__all__ = [
    "CURRENT_CONTEXT", "BlockContext", "BlockResult", "BlockRole", "BlockType", "Control",
    "EmptyConfig", "ExpandItems", "FileStore", "HandleKind", "JoinMode", "LoopDecision",
    "LoopStart", "RetryConfig", "ReviewDecision", "StrictConfig", "current_context",
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
        role: what the type is to the engine (see :class:`BlockRole`): a start type
            (``START_JSON``: the run input for it is a JSON value; ``START_DOCUMENT``: a
            document), ``END`` (what reaches it is a run output), or ``TASK`` (the default).
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
        runs_unfed: the block can run with nothing connected to its inputs (``api_call``
            sends a request without a body); otherwise a block with input handles and no
            incoming edge is a validation error (``BLOCK_NOT_CONNECTED``).
    """

    type_name: ClassVar[str] = ""
    role: ClassVar[BlockRole] = BlockRole.TASK
    config_model: ClassVar[type[BaseModel]] = EmptyConfig
    join: ClassVar[JoinMode] = JoinMode.ALL
    unfired_reason: ClassVar[str] = "branch_not_selected"
    reviewable: ClassVar[bool] = False
    executes: ClassVar[bool] = True
    authorable: ClassVar[bool] = True
    container: ClassVar[str | None] = None
    operation: ClassVar[str | None] = None
    inline: ClassVar[bool] = False
    runs_unfed: ClassVar[bool] = False

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

    def policy_diagnostics(self, block: BlockDef, policy: SecurityPolicy,
                           path: str) -> list[Diagnostic]:
        """What the host's security policy forbids in this block (default: nothing).

        A server asks it of every block when a workflow is applied, so refusals happen
        before anything runs; the handler enforces the same rules when it runs.

        Args:
            block: the block as written (``config`` is the raw mapping).
            policy: the host's policy.
            path: the block's YAML path, for the diagnostics.

        Returns:
            One diagnostic per refusal (code ``CODE_NOT_ALLOWED`` and the like).
        """
        return []

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

    def attempt_timeout(self, config: Any) -> float | None:
        """How long one attempt may run before the runner cancels it, or None for no bound.

        The default is the config's ``timeout_seconds`` field when the config model has
        one (``function``, ``api_call``); override it when the bound comes from elsewhere.

        Args:
            config: the parsed config.

        Returns:
            Seconds per attempt, or None.
        """
        value = getattr(config, "timeout_seconds", None)
        return float(value) if value else None

    def iteration_kind(self, config: Any) -> HandleKind:
        """What one iteration of a container of this type receives (default ``json``).

        Args:
            config: the parsed config.

        Returns:
            The kind of the container's left-out handle and of its sentinel start.
        """
        return "json"

    def validate_decision(self, config: Any, proposal: Mapping[str, Any], data: Any) -> None:
        """Check a reviewer's corrected data before the decision is recorded (default: accept).

        Args:
            config: the parsed config of the step waiting for review.
            proposal: the ``proposal`` of the step's review record.
            data: the reviewer's corrected data.

        Raises:
            InputError: the data cannot be used; the message says what shape it needs.
        """

    def result_after_review(
        self,
        config: Any,
        files: FileStore,
        review: Mapping[str, Any],
        decision: ReviewDecision,
    ) -> BlockResult | None:
        """The result a container approved while waiting for review resumes with.

        A container whose handler returned a review has no iterations yet; its review
        record carries what is needed to start them, possibly corrected by the reviewer.

        Args:
            config: the parsed config of the step.
            files: the run's file store.
            review: the step's review record (``proposal`` and the trigger evaluation).
            decision: the human decision.

        Returns:
            The step's result (with its control value), or None when the recorded
            outputs stand (the default).

        Raises:
            UsageError: the result cannot be rebuilt (e.g. a source file is gone).
        """
        return None

    async def run(
        self, ctx: BlockContext, config: Any, inputs: Mapping[str, Payload]
    ) -> BlockResult:
        """Execute the block. Raise BlockError subclasses on failure."""
        raise NotImplementedError(f"block type {self.type_name!r} does not execute")
