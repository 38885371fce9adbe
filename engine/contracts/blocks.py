"""The vocabulary between the engine and a block handler.

A handler receives a :class:`BlockContext` and handle payloads and returns a
:class:`BlockResult`; containers add a control value (:class:`ExpandItems`,
:class:`LoopStart`, :class:`LoopDecision`) that the scheduler acts on. :class:`JoinMode`
says when a block with several inputs runs. Nothing here imports pydantic or the rest of
the project, so the scheduler can depend on it alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import field
from enum import StrEnum
from typing import Any, Literal

from engine.contracts.files import FileStore
from engine.contracts.frozen import builder, record
from engine.contracts.logs import StepLog
from engine.contracts.values import LoopFrame, Payload

HandleKind = Literal["json", "file"]


class BlockRole(StrEnum):
    """What a block type is to the engine, beyond running its handler.

    ``start_json`` / ``start_document``: a start block; the run's input for it is a JSON
    value / a document stored in the file store before the run starts. ``end``: what
    reaches it is a run output. ``task``: everything else. The engine reads the role from
    the block type, never the type's name.
    """

    TASK = "task"
    START_JSON = "start_json"
    START_DOCUMENT = "start_document"
    END = "end"

    @property
    def is_start(self) -> bool:
        """True for the two start roles."""
        return self in (BlockRole.START_JSON, BlockRole.START_DOCUMENT)


class SentinelRole(StrEnum):
    """Which boundary of a loop container a generated sentinel node stands for."""

    START = "start"
    END = "end"


def sentinel_id(container_id: str, role: SentinelRole) -> str:
    """The id of a container's sentinel node: ``<container>_sentinel_<role>``.

    The one place these ids are built; step ids of sentinels derive from them.
    """
    return f"{container_id}_sentinel_{role.value}"


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


# ----------------------------------------------------------------- control results


@record
class ExpandItems:
    """Returned by a for_each container handler: one iteration per item, in order.

    The loop's policy travels with the items, so the scheduler never reads block config:

    Attributes:
        items: one payload per iteration.
        max_concurrency: iterations in flight at once (1 runs them one after another).
        on_item_error: ``fail`` stops the loop at the first failed iteration; ``skip``
            puts null in that item's place and goes on.
        reduce_strategy: how the results become ``fe-right-out``: ``concat_array`` (the
            list), ``first``, ``last`` or ``none`` (nothing fires); see
            :mod:`engine.reduce`.
        reduce_data_key: ``concat_array`` only: wrap the list as ``{key: [...]}``.
        reduce_item_key: ``concat_array`` only: add each item's key to its result under
            this name.
        item_keys: each item's key (the index when None): a partition key, a page range.
    """

    items: list[Payload]
    max_concurrency: int = 1
    on_item_error: Literal["fail", "skip"] = "fail"
    reduce_strategy: Literal["concat_array", "first", "last", "none"] = "concat_array"
    reduce_data_key: str | None = None
    reduce_item_key: str | None = None
    item_keys: list[Any] | None = None


@record
class LoopStart:
    """Returned by a while_loop container handler: the state of iteration 0.

    Attributes:
        state: what iteration 0 receives.
        max_iterations: the loop ends ``max_iterations_reached`` after this many.
        inject_context: every iteration's sentinel start also receives
            :data:`LOOP_CONTEXT_HANDLE` ``{"evaluations": [...]}``, the termination
            evaluations of the iteration before (empty for the first), so it can render
            the loop's context template.
    """

    state: Payload
    max_iterations: int
    inject_context: bool = False


#: The extra input of a while_loop iteration's sentinel start (see ``LoopStart``).
LOOP_CONTEXT_HANDLE = "loop-context"


@record
class LoopDecision:
    """Returned by a while_loop sentinel end: whether the termination condition matched."""

    matched: bool
    evaluations: list[dict[str, Any]] = field(default_factory=list)


Control = ExpandItems | LoopStart | LoopDecision
#: The controls that open a loop, for ``isinstance`` (a tuple: it takes one faster
#: than a union, and every step's result is asked).
OPENS_LOOP = (ExpandItems, LoopStart)


@record
class ReviewDecision:
    """A human decision on a step waiting for review.

    Attributes:
        approved: approve (outputs flow on) or reject (dependants are skipped).
        data: the reviewer's corrected data, when ``has_data``.
        has_data: the reviewer gave data (``None`` is a valid correction).
        reason: free text kept with the decision.
    """

    approved: bool
    data: Any = None
    has_data: bool = False
    reason: str = ""


@record
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


@record
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
        log: the attempt's log (:class:`~engine.contracts.logs.StepLog`): what the
            handler writes there is stored with the step (``stepwell steps logs``);
            None where nothing is kept (a loop's sentinels, contexts built by hand).
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
    log: StepLog | None = None

    @property
    def iteration(self) -> int | None:
        """Iteration of the innermost loop, or None at top level."""
        return self.scope[-1].iteration if self.scope else None


#: ``BlockResult(**fields)`` and ``BlockContext(**fields)``, about twice as fast
#: (:func:`~engine.contracts.frozen.builder`): for the engine's and the built-in blocks'
#: hot paths; block code builds them as usual.
block_result = builder(BlockResult)
block_context = builder(BlockContext)

#: The context of the step whose handler runs in the current task (set by the runner).
CURRENT_CONTEXT: ContextVar[BlockContext | None] = ContextVar(
    "stepwell_block_context", default=None)


def current_context() -> BlockContext | None:
    """The context of the step whose handler is running (None outside a step).

    In-process function blocks (``python: module:func``) can use it to learn their run
    and step ids, e.g. for logging or idempotency keys.
    """
    return CURRENT_CONTEXT.get()
