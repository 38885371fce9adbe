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
:class:`~engine.errors.BlockError` subclasses; the runner persists and retries.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from engine.errors import Diagnostic
from engine.values import FileRef, LoopFrame, Payload

if TYPE_CHECKING:
    from engine.definition import BlockDef

HandleKind = Literal["json", "file"]


class JoinMode(StrEnum):
    """When a block with several connected inputs runs.

    ``all``: every connected input must arrive; any input that never arrives skips it.
    ``any``: runs with what arrived; skipped only when nothing can arrive (``end``).
    ``any_no_fail``: like ``any`` but skipped when an input died of an upstream error
    (``merge_dicts``).
    ``settled``: runs once every input is settled, even if none arrived, unless one died
    of an error (loop sentinel ends).
    """

    ALL = "all"
    ANY = "any"
    ANY_NO_FAIL = "any_no_fail"
    SETTLED = "settled"


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


# ----------------------------------------------------------------- control results


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpandItems:
    """Returned by a for_each container handler: one iteration per item, in order."""

    items: list[Payload]


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopStart:
    """Returned by a while_loop container handler: the state of iteration 0."""

    state: Payload


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopDecision:
    """Returned by a while_loop sentinel end: whether the termination condition matched."""

    matched: bool
    evaluations: list[dict[str, Any]] = field(default_factory=list)


Control = ExpandItems | LoopStart | LoopDecision


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockResult:
    """What a handler returns.

    Attributes:
        outputs: payload per *fired* output handle; a routing block fires a subset.
        artifact: the operation record (must contain ``operation``), or None.
        model: the model that produced the output, when one did.
        tokens: token usage ``{prompt_tokens, completion_tokens, total_tokens}``.
        cost: cost breakdown ``{total, currency}``.
        control: container bookkeeping for the scheduler (loops only).
        trace_spans: optional nested spans ``[{name, start, end, attributes}]``.
        review: when set, a human must decide before the outputs flow on: the step waits
            in ``awaiting_review`` and this dict (the ``review_trigger_evaluation``
            record: ``{triggered_by, evaluations}``) is kept with the review.
    """

    outputs: dict[str, Payload] = field(default_factory=dict)
    artifact: dict[str, Any] | None = None
    model: str | None = None
    tokens: dict[str, int] | None = None
    cost: dict[str, Any] | None = None
    control: Control | None = None
    trace_spans: list[dict[str, Any]] | None = None
    review: dict[str, Any] | None = None


class FileStore(Protocol):
    """Content-addressed file storage handed to handlers."""

    def put_bytes(self, data: bytes, filename: str, mime_type: str | None = None) -> FileRef:
        """Store ``data`` (once per content) and return its reference."""
        ...

    def read_bytes(self, ref: FileRef) -> bytes:
        """Return the bytes of a stored file."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockContext:
    """What a handler may know about the step it runs.

    Attributes:
        run_id, step_id, block_id, block_type, label: identity of the step.
        scope: loop frames, outermost first.
        attempt: 0 on the first attempt, +1 per retry.
        files: the run's file store.
        run_inputs: the run's inputs keyed by start block id (start blocks read these).
        env: environment for ``${NAME}`` substitution and secrets.
        input_schemas: JSON schema of each input handle's upstream output, when known.
        timeout_seconds: the per-attempt bound the runner enforces, if any.
        services: optional engine services (model provider, ...), keyed by name.
    """

    run_id: str
    step_id: str
    block_id: str
    block_type: str
    label: str
    scope: tuple[LoopFrame, ...] = ()
    attempt: int = 0
    files: FileStore | None = None
    run_inputs: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    input_schemas: Mapping[str, dict[str, Any] | None] = field(default_factory=dict)
    timeout_seconds: float | None = None
    services: Mapping[str, Any] = field(default_factory=dict)

    @property
    def iteration(self) -> int | None:
        """Iteration of the innermost loop, or None at top level."""
        return self.scope[-1].iteration if self.scope else None


_CURRENT: ContextVar[BlockContext | None] = ContextVar("stepwell_block_context", default=None)


def current_context() -> BlockContext | None:
    """The context of the step whose handler is running (None outside a step).

    In-process function blocks (``python: module:func``) can use it to learn their run
    and step ids, e.g. for logging or idempotency keys.
    """
    return _CURRENT.get()


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
