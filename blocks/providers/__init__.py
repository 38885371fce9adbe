"""Model providers: what the document blocks call when they need a model.

A provider implements :class:`ModelProvider` (async methods; no engine types beyond
:class:`CallContext`). Three ship with stepwell:

* ``offline`` (:mod:`blocks.providers.offline`, the default): deterministic heuristics,
  no network;
* ``openai`` (:mod:`blocks.providers.openai`): any OpenAI-compatible chat endpoint;
* ``scripted`` (:mod:`blocks.providers.scripted`): the test double, answers per block.

Which provider a step uses (:func:`provider_for`): the engine service
``ctx.services["model_provider"]`` when set (``Engine(services={MODEL_PROVIDER_SERVICE:
...})``); else a ``model`` written as ``openai:<model>`` or ``offline``; else
``$STEPWELL_MODEL_PROVIDER``; else ``offline``.

Every answer carries a :class:`Usage`; blocks turn it into the step's ``model``,
``tokens`` and ``cost`` (:func:`step_usage`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import anyio

from engine.contracts.errors import PermanentError
from engine.contracts.frozen import record

if TYPE_CHECKING:
    from blocks.pdf import FormField
    from engine.contracts.blocks import BlockContext

#: ``ctx.services`` key (and ``Engine(services=...)`` key) of the model provider.
MODEL_PROVIDER_SERVICE = "model_provider"
PROVIDER_NAMES = ("offline", "openai")
T = TypeVar("T")


@record
class CallContext:
    """Who is asking: lets providers log, and the scripted provider answer per step."""

    run_id: str = ""
    step_id: str = ""
    block_id: str = ""
    block_type: str = ""
    attempt: int = 0
    instructions: str | None = None

    @classmethod
    def of(cls, ctx: BlockContext, instructions: str | None = None) -> CallContext:
        """The call context of the step ``ctx`` describes."""
        return cls(run_id=ctx.run_id, step_id=ctx.step_id, block_id=ctx.block_id,
                   block_type=ctx.block_type, attempt=ctx.attempt, instructions=instructions)


@record
class Usage:
    """Tokens and cost of one or more model calls; ``cost`` None when unknown."""

    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = 0.0
    currency: str = "USD"

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        cost = None if self.cost is None or other.cost is None else self.cost + other.cost
        return Usage(model=self.model or other.model,
                     prompt_tokens=self.prompt_tokens + other.prompt_tokens,
                     completion_tokens=self.completion_tokens + other.completion_tokens,
                     cost=cost, currency=self.currency)

    def to_dict(self) -> dict[str, Any]:
        """``{model, prompt_tokens, completion_tokens, total_tokens, cost, currency}``."""
        return {"model": self.model, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens, "cost": self.cost,
                "currency": self.currency}


def total_usage(usages: Sequence[Usage]) -> Usage:
    """The sum of ``usages`` (an empty Usage when there are none)."""
    out = Usage()
    for usage in usages:
        out = out + usage
    return out


def step_usage(usage: Usage) -> dict[str, Any]:
    """BlockResult keyword arguments ``model``, ``tokens``, ``cost`` for ``usage``."""
    tokens = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
              "total_tokens": usage.total_tokens}
    cost = None if usage.cost is None else {"total": round(usage.cost, 8),
                                             "currency": usage.currency}
    return {"model": usage.model, "tokens": tokens, "cost": cost}


@record
class Label:
    """A category (classifier) or subdocument (split): a name and what it looks like."""

    name: str
    description: str = ""


@record
class ExtractionResult:
    """``data`` (the voted output), per-leaf ``likelihoods`` and every vote (``choices``)."""

    data: Any
    likelihoods: Any
    choices: list[Any] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)

    @property
    def model(self) -> str | None:
        """The model that answered."""
        return self.usage.model


@record
class Classification:
    """The chosen ``category``, why, a score per category and the winner's likelihood."""

    category: str
    reasoning: str = ""
    scores: dict[str, float] = field(default_factory=dict)
    likelihood: float = 1.0
    usage: Usage = field(default_factory=Usage)


@record
class SplitPart:
    """One found subdocument: its ``name``, 1-based ``pages`` and ``confidence``."""

    name: str
    pages: list[int]
    confidence: float = 1.0


@record
class SplitResult:
    """Every subdocument instance found, in page order."""

    parts: list[SplitPart]
    usage: Usage = field(default_factory=Usage)


@record
class Partition:
    """Pages (1-based) that share one value of the partition key."""

    key: str
    pages: list[int]
    confidence: float = 1.0


@record
class PartitionResult:
    """The partitions, and the pages no partition claimed."""

    partitions: list[Partition]
    unassigned_pages: list[int] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)


@record
class FormMapping:
    """Values to write, keyed by form field name."""

    values: dict[str, Any]
    usage: Usage = field(default_factory=Usage)


@record
class ImageText:
    """What a vision model read from an image: one text per page."""

    pages: list[str]
    usage: Usage = field(default_factory=Usage)


@runtime_checkable
class ModelProvider(Protocol):
    """What the document blocks need from a model. All page numbers are 1-based.

    Errors: raise :class:`~engine.contracts.errors.TransientError` (network, 5xx),
    :class:`~engine.contracts.errors.QuotaError` (429, with ``retry_after``) or
    :class:`~engine.contracts.errors.PermanentError` (bad request, bad answer); the engine
    retries the first two.
    """

    name: str

    @property
    def supports_vision(self) -> bool:
        """True when :meth:`describe_image` can read images."""
        ...

    async def extract(self, pages: Sequence[str], json_schema: Mapping[str, Any], *,
                      model: str | None, n_consensus: int, context: CallContext,
                      extra: Mapping[str, Any] | None = None) -> ExtractionResult:
        """Fill ``json_schema`` from the pages (``extra``: JSON context inputs)."""
        ...

    async def classify(self, pages: Sequence[str], categories: Sequence[Label], *,
                       model: str | None, first_n_pages: int | None,
                       context: CallContext) -> Classification:
        """Pick the category of the document."""
        ...

    async def split(self, pages: Sequence[str], subdocuments: Sequence[Label], *,
                    model: str | None, allow_multiple: bool,
                    context: CallContext) -> SplitResult:
        """Find the subdocuments and their pages."""
        ...

    async def partition(self, pages: Sequence[str], key: str, *, model: str | None,
                        allow_overlap: bool, context: CallContext) -> PartitionResult:
        """Group pages by the value of ``key`` (e.g. "invoice number")."""
        ...

    async def map_form_fields(self, fields: Sequence[FormField], data: Mapping[str, Any], *,
                              model: str | None, context: CallContext) -> FormMapping:
        """Which value of ``data`` goes into which form field."""
        ...

    async def describe_image(self, image: bytes, mime_type: str, *, model: str | None,
                             context: CallContext) -> ImageText:
        """Read the text of an image (vision providers only)."""
        ...


def _json_lines(value: Any, prefix: str) -> list[str]:
    if isinstance(value, Mapping):
        return [line for k, v in value.items()
                for line in _json_lines(v, f"{prefix} {k}".strip())]
    if isinstance(value, list) and any(isinstance(v, Mapping | list) for v in value):
        return [line for v in value for line in _json_lines(v, prefix)]
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    shown = "yes" if value is True else "no" if value is False else value
    return [f"{prefix.replace('_', ' ')}: {shown}" if prefix else str(shown)]


def json_as_text(value: Any) -> str:
    """A JSON value as ``key path: value`` lines: how JSON inputs are shown as a document
    (``{"supplier": {"name": "X"}}`` -> ``supplier name: X``)."""
    return "\n".join(_json_lines(value, ""))


async def gather(calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run ``calls`` concurrently; results in order. One call runs inline.

    Raises:
        The first failure itself (not an ExceptionGroup), so the engine sees the
        BlockError's category; the other calls are cancelled.
    """
    if len(calls) == 1:
        return [await calls[0]()]
    results: list[Any] = [None] * len(calls)

    async def one(i: int) -> None:
        results[i] = await calls[i]()

    try:
        async with anyio.create_task_group() as tg:
            for i in range(len(calls)):
                tg.start_soon(one, i)
    except BaseExceptionGroup as group:
        first = group.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    return results


def resolve_provider(name: str | None, env: Mapping[str, str]) -> ModelProvider:
    """The provider called ``name`` (None: ``$STEPWELL_MODEL_PROVIDER``, else offline).

    Args:
        name: ``offline`` or ``openai``.
        env: environment read for the provider's settings.

    Raises:
        PermanentError: an unknown name (``scripted`` needs its script, so it cannot be
            built from a name: pass an instance through ``Engine(services=...)``).
    """
    chosen = (name or env.get("STEPWELL_MODEL_PROVIDER") or "offline").strip().lower()
    if chosen == "offline":
        from blocks.providers.offline import OfflineProvider

        return OfflineProvider()
    if chosen == "openai":
        from blocks.providers.openai import OpenAIProvider

        return OpenAIProvider.from_env(env)
    raise PermanentError(
        f"unknown model provider {chosen!r}. Known providers: {', '.join(PROVIDER_NAMES)}; "
        "set STEPWELL_MODEL_PROVIDER to one of them, or pass a provider instance with "
        f"Engine(services={{{MODEL_PROVIDER_SERVICE!r}: provider}}).",
        code="UNKNOWN_MODEL_PROVIDER",
    )


def provider_for(ctx: BlockContext, model: str | None) -> tuple[ModelProvider, str | None]:
    """The provider a step uses, and the model name to pass it (see the module doc).

    Raises:
        PermanentError: the named provider is unknown; the message names the block.
    """
    service = ctx.services.get(MODEL_PROVIDER_SERVICE)
    if service is not None:
        return service, model
    prefix, _, rest = (model or "").partition(":")
    try:
        if prefix.lower() in PROVIDER_NAMES:
            return resolve_provider(prefix, ctx.env), (rest or None)
        return resolve_provider(None, ctx.env), model
    except PermanentError as exc:
        raise PermanentError(f"{ctx.block_type} block {ctx.block_id!r}: {exc.message}",
                             code=exc.code) from exc
