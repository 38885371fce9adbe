"""``ScriptedProvider``: the public test double for model-backed blocks.

Give it what each block (or step) should get back::

    provider = ScriptedProvider({
        "read_invoice": {"total": 12.5},                 # every call of block read_invoice
        "sort": ["invoice", "receipt"],                  # first call, then second call
        "each_iter_1_read": TransientError("flaky"),     # one step id: raise this
    })
    Engine(db, services={MODEL_PROVIDER_SERVICE: provider})

Keys are looked up by step id first, then block id. A value is:

* an ``Exception`` instance: raised (use stepwell's ``TransientError``/``QuotaError`` to
  exercise retries);
* a list: one entry per call, in order (running out raises a PermanentError saying so);
  for ``extract`` with ``n_consensus=n`` one call takes ``n`` entries, one per vote;
* a callable ``(method, kwargs) -> value``: called;
* anything else: the answer, every time.

Answers by method: extract -> the output object (or an :class:`ExtractionResult`);
classify -> a category name, ``{category, reasoning?, scores?, likelihood?}`` or a
:class:`Classification`; split -> ``[{name, pages, confidence?}]``; partition ->
``[{key, pages}]`` or ``{partitions, unassigned_pages}``; map_form_fields -> ``{field:
value}``; describe_image -> a string or a list of page strings.

Every call is recorded in :attr:`ScriptedProvider.calls` (method, context, arguments).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from blocks.pdf import FormField
from blocks.providers import (
    CallContext,
    Classification,
    ExtractionResult,
    FormMapping,
    ImageText,
    Label,
    Partition,
    PartitionResult,
    SplitPart,
    SplitResult,
    Usage,
)
from blocks.providers.consensus import constant_likelihoods, vote
from engine.contracts.errors import PermanentError
from engine.contracts.frozen import record


@record
class ScriptedCall:
    """One recorded call."""

    method: str
    context: CallContext
    arguments: dict[str, Any]


class ScriptedProvider:
    """Answers from a script keyed by step id or block id (see the module docstring).

    Args:
        script: ``{step_id_or_block_id: answer | [answers] | Exception | callable}``.
        usage: the usage reported for each call (default: model ``scripted``, 0 tokens).
        vision: what :attr:`supports_vision` reports.
    """

    name = "scripted"

    def __init__(self, script: Mapping[str, Any], *, usage: Usage | None = None,
                 vision: bool = True) -> None:
        self.script = dict(script)
        self.usage = usage or Usage(model="scripted", cost=0.0)
        self.vision = vision
        self.calls: list[ScriptedCall] = []
        self._served: dict[str, int] = {}

    @property
    def supports_vision(self) -> bool:
        """As configured (default True)."""
        return self.vision

    def _next(self, method: str, context: CallContext, arguments: dict[str, Any]) -> Any:
        self.calls.append(ScriptedCall(method=method, context=context, arguments=arguments))
        key = context.step_id if context.step_id in self.script else context.block_id
        if key not in self.script:
            raise PermanentError(
                f"ScriptedProvider has no answer for step {context.step_id!r} (block "
                f"{context.block_id!r}, {method}). Scripted keys: {sorted(self.script)}; add "
                "one for this block or step.", code="SCRIPT_MISSING")
        entry = self.script[key]
        if isinstance(entry, list):
            served = self._served.get(key, 0)
            if served >= len(entry):
                raise PermanentError(
                    f"ScriptedProvider ran out of answers for {key!r} after {len(entry)} "
                    "calls; add more entries to its list.", code="SCRIPT_EXHAUSTED")
            self._served[key] = served + 1
            entry = entry[served]
        if isinstance(entry, BaseException):
            raise entry
        if callable(entry) and not isinstance(entry, type):
            fn: Callable[[str, dict[str, Any]], Any] = entry
            return fn(method, arguments)
        return entry

    async def extract(self, pages: Sequence[str], json_schema: Mapping[str, Any], *,
                      model: str | None, n_consensus: int, context: CallContext,
                      extra: Mapping[str, Any] | None = None) -> ExtractionResult:
        """The scripted object (``n_consensus`` entries are voted)."""
        args = {"pages": list(pages), "json_schema": json_schema, "model": model,
                "n_consensus": n_consensus, "extra": dict(extra or {})}
        answers = [self._next("extract", context, args) for _ in range(max(1, n_consensus))]
        if len(answers) == 1 and isinstance(answers[0], ExtractionResult):
            return answers[0]
        data, likelihoods = vote(answers)
        if len(answers) == 1:
            likelihoods = constant_likelihoods(data, 1.0)
        return ExtractionResult(data=data, likelihoods=likelihoods, choices=answers,
                                usage=self.usage)

    async def classify(self, pages: Sequence[str], categories: Sequence[Label], *,
                       model: str | None, first_n_pages: int | None,
                       context: CallContext) -> Classification:
        """The scripted category."""
        answer = self._next("classify", context, {"pages": list(pages), "model": model,
                                                  "categories": [c.name for c in categories],
                                                  "first_n_pages": first_n_pages})
        if isinstance(answer, Classification):
            return answer
        if isinstance(answer, str):
            answer = {"category": answer}
        scores = answer.get("scores") or {c.name: float(c.name == answer["category"])
                                          for c in categories}
        return Classification(category=answer["category"], reasoning=answer.get("reasoning", ""),
                              scores=scores, likelihood=answer.get("likelihood", 1.0),
                              usage=self.usage)

    async def split(self, pages: Sequence[str], subdocuments: Sequence[Label], *,
                    model: str | None, allow_multiple: bool,
                    context: CallContext) -> SplitResult:
        """The scripted parts."""
        answer = self._next("split", context, {"pages": list(pages), "model": model,
                                               "subdocuments": [s.name for s in subdocuments],
                                               "allow_multiple": allow_multiple})
        if isinstance(answer, SplitResult):
            return answer
        parts = [p if isinstance(p, SplitPart) else
                 SplitPart(name=p["name"], pages=list(p["pages"]),
                           confidence=p.get("confidence", 1.0)) for p in answer]
        return SplitResult(parts=parts, usage=self.usage)

    async def partition(self, pages: Sequence[str], key: str, *, model: str | None,
                        allow_overlap: bool, context: CallContext) -> PartitionResult:
        """The scripted partitions."""
        answer = self._next("partition", context, {"pages": list(pages), "key": key,
                                                   "model": model,
                                                   "allow_overlap": allow_overlap})
        if isinstance(answer, PartitionResult):
            return answer
        unassigned: list[int] = []
        if isinstance(answer, Mapping):
            unassigned = list(answer.get("unassigned_pages", []))
            answer = answer["partitions"]
        partitions = [Partition(key=str(p["key"]), pages=list(p["pages"]),
                                confidence=p.get("confidence", 1.0)) for p in answer]
        return PartitionResult(partitions=partitions, unassigned_pages=unassigned,
                               usage=self.usage)

    async def map_form_fields(self, fields: Sequence[FormField], data: Mapping[str, Any], *,
                              model: str | None, context: CallContext) -> FormMapping:
        """The scripted ``{field: value}``."""
        answer = self._next("map_form_fields", context, {"fields": [f.name for f in fields],
                                                         "data": dict(data), "model": model})
        return answer if isinstance(answer, FormMapping) else FormMapping(
            values=dict(answer), usage=self.usage)

    async def describe_image(self, image: bytes, mime_type: str, *, model: str | None,
                             context: CallContext) -> ImageText:
        """The scripted page text(s)."""
        answer = self._next("describe_image", context, {"mime_type": mime_type, "model": model,
                                                        "size": len(image)})
        pages = [answer] if isinstance(answer, str) else list(answer)
        return ImageText(pages=pages, usage=self.usage)
