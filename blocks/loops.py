"""Loop containers (``for_each``, ``while_loop``) and their sentinel types.

The engine expands a container through two generated members per iteration (see
``engine/graph.py``): ``<container>_sentinel_start`` hands the iteration's item or state
to the children, ``<container>_sentinel_end`` collects what they produced. The handlers
here only compute values; the scheduler owns iteration, concurrency and collection:

* ``for_each.run`` returns :class:`~engine.contracts.blocks.ExpandItems` (one payload per item):
  array elements, single-page PDFs (``iterate_pages``), or partition PDFs
  (``split_by_key``, through :func:`blocks.partition.partition_by_key` and the model
  provider, with a ``partition`` artifact and an optional review);
* ``while_loop.run`` returns :class:`~engine.contracts.blocks.LoopStart` (iteration 0's state);
* ``while_loop_sentinel_end.run`` returns :class:`~engine.contracts.blocks.LoopDecision` after testing
  the termination condition on ``loop-termination`` (or ``loop-right-in`` when that did
  not arrive).

Sentinel types reuse their container's config model, because the engine hands them the
container's parsed config.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Literal

import anyio
from pydantic import Field, model_validator

from blocks.base import BlockType, StrictConfig
from blocks.conditions import (
    MISSING,
    PathSyntaxError,
    evaluate,
    json_type,
    lookup,
    parse_path,
    validate_condition_group,
)
from blocks.control import parse_group, who
from engine.contracts.blocks import (
    BlockContext,
    BlockResult,
    ExpandItems,
    HandleKind,
    JoinMode,
    LoopDecision,
    LoopStart,
    ReviewDecision,
)
from engine.contracts.errors import Diagnostic, ErrorStage, PermanentError
from engine.contracts.files import FileStore
from engine.contracts.values import FileRef, Payload

if TYPE_CHECKING:
    from engine.contracts.definition import BlockDef

#: ``ctx.services`` key of a split_by_key partitioner that replaces the built-in one
#: (:func:`blocks.partition.partition_by_key`, which goes through the model provider):
#: ``async (ctx, config, file_payload) -> list[Payload] | BlockResult`` (a BlockResult
#: carries ``control=ExpandItems(...)`` plus the artifact, review and usage).
SPLIT_BY_KEY_SERVICE = "split_by_key"
Partitioner = Callable[
    [BlockContext, "ForEachConfig", Payload], Awaitable["list[Payload] | BlockResult"]
]

# ----------------------------------------------------------------------------- for_each


class ForEachConfig(StrictConfig):
    """Config of ``for_each`` (and, as passed by the engine, of its sentinels)."""

    map_method: Literal["iterate_array", "iterate_pages", "split_by_key"] = "iterate_array"
    map_source_path: str = ""
    max_concurrency: int = Field(4, ge=1)
    on_item_error: Literal["fail", "skip"] = "fail"
    max_items: int = Field(10_000, ge=1)
    key: str | None = None
    allow_overlap: bool = True
    review: dict[str, Any] | None = None
    # split_by_key model settings, read by the partitioner (blocks/partition.py).
    instructions: str | None = None
    model: str | None = None
    n_consensus: int = Field(1, ge=1)

    @property
    def item_kind(self) -> HandleKind:
        """What one item is: JSON for iterate_array, a file otherwise."""
        return "json" if self.map_method == "iterate_array" else "file"

    def expand(self, items: list[Payload]) -> ExpandItems:
        """The control value that starts one iteration per item, with this loop's policy.

        Args:
            items: one payload per iteration, in order.

        Returns:
            ``ExpandItems`` carrying ``max_concurrency`` and ``on_item_error``.
        """
        return ExpandItems(items=items, max_concurrency=self.max_concurrency,
                           on_item_error=self.on_item_error)


def _for_each_diagnostics(config: ForEachConfig, path: str) -> list[Diagnostic]:
    problems: list[Diagnostic] = []
    try:
        parse_path(config.map_source_path)
    except PathSyntaxError as exc:
        problems.append(
            Diagnostic(
                code="INVALID_PATH",
                message=str(exc),
                path=f"{path}.config.map_source_path",
                fix="fix the path",
            )
        )
    if config.map_method == "split_by_key" and not config.key:
        problems.append(
            Diagnostic(
                code="MISSING_SPLIT_KEY",
                message="split_by_key needs config.key",
                path=f"{path}.config.key",
                fix="name the record id, e.g. `key: invoice number`",
            )
        )
    if config.review is not None and (config.map_method != "split_by_key" or not config.key):
        problems.append(
            Diagnostic(
                code="INVALID_REVIEW_CONFIG",
                message="review is only available for map_method='split_by_key' with a key",
                path=f"{path}.config.review",
                fix="remove review, or use split_by_key with key",
            )
        )
    elif config.review:
        from blocks.review import review_diagnostics

        problems += review_diagnostics(config.review, "split_by_key", f"{path}.config.review")
    return problems


def _arrays_inside(value: Any) -> list[str]:
    if not isinstance(value, Mapping):
        return []
    return [k for k, v in value.items() if isinstance(v, list)][:10]


class ForEach(BlockType):
    """Runs its children once per item of an array, page or partition."""

    type_name = "for_each"
    config_model = ForEachConfig
    container = "for_each"
    reviewable = True

    def input_handles(self, config: ForEachConfig) -> dict[str, HandleKind]:
        return {"fe-left-in": config.item_kind, "fe-right-in": "json"}

    def output_handles(self, config: ForEachConfig) -> dict[str, HandleKind]:
        return {"fe-right-out": "json", "fe-left-out": config.item_kind}

    def output_schema(self, config: ForEachConfig, handle: str) -> dict[str, Any] | None:
        return {"type": "array"} if handle == "fe-right-out" else None

    def check(self, block: BlockDef, config: ForEachConfig, path: str) -> list[Diagnostic]:
        return _for_each_diagnostics(config, path)

    def runs_inline(self, config: ForEachConfig) -> bool:
        """Inline for ``iterate_array`` (pages and partitions read files or call models)."""
        return config.map_method == "iterate_array" and config.review is None

    def iteration_kind(self, config: ForEachConfig) -> HandleKind:
        """JSON for ``iterate_array``, a file for pages and partitions."""
        return config.item_kind

    def validate_decision(
        self, config: ForEachConfig, proposal: Mapping[str, Any], data: Any
    ) -> None:
        """Check a split_by_key reviewer's corrected partitions against the document.

        Raises:
            InputError: the data is not ``{"partitions": [{"key", "pages"}]}`` (or the
                list), or names a page the document lacks.
        """
        if config.map_method == "split_by_key":
            from blocks.partition import corrected_partitions

            corrected_partitions(proposal, data)

    def result_after_review(
        self,
        config: ForEachConfig,
        files: FileStore,
        review: Mapping[str, Any],
        decision: ReviewDecision,
    ) -> BlockResult | None:
        """The iterations an approved split_by_key review starts.

        Returns:
            The proposed partitions (or the reviewer's, cut from the source PDF, with a
            corrected ``partition`` artifact) as ``ExpandItems``; None when the decision is
            a rejection or the review carries no proposal.

        Raises:
            UsageError: the corrected partitions cannot be cut from the source document.
        """
        proposal = review.get("proposal")
        if not decision.approved or not isinstance(proposal, Mapping):
            return None
        from blocks.partition import items_after_review

        evaluation = {k: v for k, v in review.items() if k != "proposal"}
        items, artifact = items_after_review(files, proposal, corrected=decision.has_data,
                                             data=decision.data, evaluation=evaluation)
        return BlockResult(control=config.expand(items), artifact=artifact, review=dict(review))

    async def run(
        self, ctx: BlockContext, config: ForEachConfig, inputs: Mapping[str, Payload]
    ) -> BlockResult:
        """List the items.

        Raises:
            PermanentError: no input, the path misses or holds no array, too many items,
                an unreadable PDF, or a split_by_key document that cannot be read.
            TransientError, QuotaError: split_by_key's model endpoint failed (retried).
        """
        payload = inputs.get("fe-left-in")
        if payload is None:
            raise PermanentError(
                f"{who(ctx)} received nothing on 'fe-left-in'; connect the data to loop over.",
                stage=ErrorStage.INPUT_COLLECTION,
                code="MISSING_INPUT",
            )
        if config.map_method == "iterate_array":
            items = self._array_items(ctx, config, payload.data)
        elif config.map_method == "iterate_pages":
            items = await self._page_items(ctx, config, payload)
        else:
            result = await self._partition_items(ctx, config, payload)
            if isinstance(result, BlockResult):
                assert isinstance(result.control, ExpandItems)
                self._check_count(ctx, config, len(result.control.items))
                return replace(result, control=config.expand(result.control.items))
            items = result
        self._check_count(ctx, config, len(items))
        return BlockResult(control=config.expand(items))

    @staticmethod
    def _check_count(ctx: BlockContext, config: ForEachConfig, count: int) -> None:
        if count > config.max_items:
            raise PermanentError(
                f"{who(ctx)} got {count} items, more than max_items={config.max_items}. "
                "Raise config.max_items if that many iterations are intended.",
                code="TOO_MANY_ITEMS",
                context={"count": count, "max_items": config.max_items},
            )

    @staticmethod
    def _array_items(ctx: BlockContext, config: ForEachConfig, data: Any) -> list[Payload]:
        path = config.map_source_path
        found = lookup(data, path)
        if isinstance(found, list):
            return [Payload.json(item) for item in found]
        where = f"config.map_source_path {path!r}" if path else "the fe-left-in input itself"
        kind = json_type(found)
        got = (
            "nothing (the path does not exist)"
            if found is MISSING
            else (f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}")
        )
        arrays = _arrays_inside(data if found is MISSING else found)
        hint = f" Arrays found there: {', '.join(arrays)}." if arrays else ""
        raise PermanentError(
            f"{who(ctx)}: {where} should hold an array but holds {got}.{hint} Set "
            "map_source_path to the dotted path of the array (empty = the input itself).",
            code="MAP_SOURCE_NOT_FOUND" if found is MISSING else "MAP_SOURCE_NOT_ARRAY",
            context={"map_source_path": path, "found_type": json_type(found)},
        )

    @staticmethod
    async def _page_items(
        ctx: BlockContext, config: ForEachConfig, payload: Payload
    ) -> list[Payload]:
        ref = _file_of(ctx, payload)
        if ref.mime_type.startswith("image/"):
            return [payload]  # an image is a single page
        assert ctx.files is not None
        data = ctx.files.read_bytes(ref)
        pages = await anyio.to_thread.run_sync(_split_pdf, data, ref.filename)
        if isinstance(pages, str):
            raise PermanentError(
                f"{who(ctx)}: iterate_pages cannot read {ref.filename!r} as a PDF ({pages}). "
                "Feed it a readable PDF (or an image), or use iterate_array on JSON.",
                stage=ErrorStage.DOCUMENT_FETCH,
                code="NOT_A_PDF",
            )
        ForEach._check_count(ctx, config, len(pages))
        stem = PurePath(ref.filename).stem or "document"
        return [
            Payload.file(ctx.files.put_bytes(page, f"{stem}_page_{n}.pdf", "application/pdf"))
            for n, page in enumerate(pages, start=1)
        ]

    @staticmethod
    async def _partition_items(
        ctx: BlockContext, config: ForEachConfig, payload: Payload
    ) -> list[Payload] | BlockResult:
        partition: Partitioner | None = ctx.services.get(SPLIT_BY_KEY_SERVICE)
        if partition is None:
            from blocks.partition import partition_by_key

            partition = partition_by_key
        return await partition(ctx, config, payload)


def _file_of(ctx: BlockContext, payload: Payload) -> FileRef:
    if payload.document is None or ctx.files is None:
        raise PermanentError(
            f"{who(ctx)}: iterate_pages needs a file on 'fe-left-in', got JSON. Connect a "
            "document output (e.g. start_document.output-file-0).",
            stage=ErrorStage.INPUT_COLLECTION,
            code="EXPECTED_FILE",
        )
    return payload.document


def _split_pdf(data: bytes, filename: str) -> list[bytes] | str:
    """One single-page PDF per page, or what is wrong with the file and how to fix it
    (empty, not a PDF, corrupt, encrypted: see :func:`blocks.pdf.open_pdf`)."""
    from blocks.pdf import DocumentProblem, split_pages

    try:
        return split_pages(data)
    except DocumentProblem as problem:
        return f"{problem.problem}; {problem.fix[0].lower()}{problem.fix[1:]}"


# ----------------------------------------------------------------------------- while_loop


class WhileLoopConfig(StrictConfig):
    """``max_iterations`` (required) and a ``termination_condition`` (or ``conditions``)."""

    max_iterations: int = Field(ge=1)
    termination_condition: dict[str, Any] | None = None
    conditions: list[dict[str, Any]] | None = None

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, raw: Any) -> Any:
        if isinstance(raw, Mapping) and raw.get("max_iterations") is None:
            raise ValueError(
                "while_loop needs config.max_iterations (an integer >= 1) to bound the loop; "
                "add e.g. `max_iterations: 10`"
            )
        return raw

    def groups(self) -> list[tuple[str, str, dict[str, Any]]]:
        """``[(condition_id, yaml field, raw group)]``; any match ends the loop."""
        if self.termination_condition is not None:
            return [("termination", "termination_condition", self.termination_condition)]
        return [
            (f"condition_{i}", f"conditions[{i}]", g) for i, g in enumerate(self.conditions or [])
        ]


_TERMINATION_INPUTS = ["loop-termination", "loop-right-in"]


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
        problems: list[Diagnostic] = []
        if config.termination_condition is not None and config.conditions is not None:
            problems.append(
                Diagnostic(
                    code="CONFLICTING_TERMINATION",
                    message="both termination_condition and conditions are set",
                    path=f"{path}.config.conditions",
                    fix="keep one: termination_condition (a group) or conditions (a list)",
                )
            )
        if not config.groups():
            problems.append(
                Diagnostic(
                    code="NO_TERMINATION_CONDITION",
                    severity="warning",
                    message="no termination condition: the loop always runs max_iterations times",
                    path=f"{path}.config.termination_condition",
                    fix="add termination_condition",
                )
            )
        for _, field, raw in config.groups():
            problems += validate_condition_group(
                raw, f"{path}.config.{field}", inputs=_TERMINATION_INPUTS
            )
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
        return BlockResult(control=LoopStart(state=state, max_iterations=config.max_iterations))


# ----------------------------------------------------------------------------- sentinels


class _SentinelStart(BlockType):
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
        return BlockResult(outputs={self.out_handle: inputs[self.in_handle]})


class ForEachSentinelStart(_SentinelStart):
    """Hands one item to the for_each children."""

    type_name = "for_each_sentinel_start"
    config_model = ForEachConfig
    in_handle, out_handle = "fe-left-in", "fe-left-out"

    def _kind(self, config: ForEachConfig) -> HandleKind:
        return config.item_kind


class WhileLoopSentinelStart(_SentinelStart):
    """Hands the iteration's state to the while_loop children."""

    type_name = "while_loop_sentinel_start"
    config_model = WhileLoopConfig
    in_handle, out_handle = "loop-left-in", "loop-left-out"


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
        return BlockResult(
            control=LoopDecision(matched=matched, evaluations=evaluations), artifact=artifact
        )
