"""The ``for_each`` container: one iteration per item of an array, page or partition.

``for_each.run`` lists the items and returns them as
:class:`~engine.contracts.blocks.ExpandItems`, with the loop's policy
(``max_concurrency``, ``on_item_error``) from its config; the scheduler owns iteration,
concurrency and collection. Items are, by ``map_method``:

* ``iterate_array``: the elements of the array at ``map_source_path`` in the JSON input;
* ``iterate_pages``: single-page PDFs cut from the input document (an image is one page);
* ``split_by_key``: partition PDFs, through :func:`blocks.partition.partition_by_key` and
  the model provider (or a partitioner given as a service), with a ``partition``
  artifact and an optional review.

A split_by_key step held for review has no iterations yet: the review hooks
(:meth:`ForEach.validate_decision`, :meth:`ForEach.result_after_review`) check a
reviewer's corrected partitions and start the iterations once the review is approved.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Literal

import anyio
from pydantic import Field

from blocks.base import BlockType, StrictConfig
from blocks.condition_paths import MISSING, PathSyntaxError, json_type, lookup, parse_path
from blocks.control import who
from engine.contracts.blocks import (
    BlockContext,
    BlockResult,
    ExpandItems,
    HandleKind,
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
