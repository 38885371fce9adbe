"""The ``for_each`` container: one iteration per item of an array, page or partition.

``for_each.run`` lists the items and returns them as
:class:`~engine.contracts.blocks.ExpandItems`, with the loop's policy
(``max_concurrency``, ``on_item_error``) from its config; the scheduler owns iteration,
concurrency and collection. Items are, by ``map_method``:

* ``iterate_array``: the elements of the array at ``map_source_path`` in the JSON input;
* ``split_by_page``: PDFs of ``split_page_range`` pages each (default 1; the last may be
  shorter), cut from the input document (an image is one page); ``iterate_pages`` is the
  ``split_page_range: 1`` spelling;
* ``split_by_key``: partition PDFs, through :func:`blocks.partition.partition_by_key` and
  the model provider (or a partitioner given as a service), with a ``partition``
  artifact and an optional review.

``max_iterations`` keeps the first that many items (the rest are not processed, and the
container's ``max_iterations`` trace span says how many were left). The reduce policy
(``reduce_strategy``, ``reduce_concat_data_key``, ``reduce_concat_item_key``) travels on
the control value with each item's key (the index, the page range such as ``"1-2"``, or
the partition key); the engine reduces the results (:mod:`engine.reduce`).

A split_by_key step held for review has no iterations yet: the review hooks
(:meth:`ForEach.validate_decision`, :meth:`ForEach.result_after_review`) check a
reviewer's corrected partitions and start the iterations once the review is approved.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import Field

from blocks.base import BlockType, StrictConfig
from blocks.condition_paths import (
    PathSyntaxError,
    parse_path,
)
from blocks.control import who
from blocks.for_each_items import (
    array_items,
    check_count,
    page_items,
    partition_keys,
)
from engine.contracts.blocks import (
    BlockContext,
    BlockResult,
    ExpandItems,
    HandleKind,
    ReviewDecision,
)
from engine.contracts.errors import Diagnostic, ErrorStage, PermanentError
from engine.contracts.files import FileStore
from engine.contracts.values import Payload

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

ReduceStrategy = Literal["concat_array", "first", "last", "none"]
REDUCE_STRATEGIES = ("concat_array", "first", "last", "none")
PAGE_METHODS = frozenset({"split_by_page", "iterate_pages"})


class ForEachConfig(StrictConfig):
    """Config of ``for_each`` (and, as passed by the engine, of its sentinels)."""

    map_method: Literal[
        "iterate_array", "split_by_page", "iterate_pages", "split_by_key"] = "iterate_array"
    map_source_path: str = ""
    split_page_range: int = 1  # checked in check(): a whole number of pages, 1 or more
    max_iterations: int | None = Field(None, ge=1)  # keeps the first that many items
    reduce_strategy: str = "concat_array"  # checked in check(): one of REDUCE_STRATEGIES
    reduce_concat_data_key: str | None = None
    reduce_concat_item_key: str | None = None
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

    @property
    def pages_per_item(self) -> int:
        """Pages per iteration of a page method (``iterate_pages`` is always 1)."""
        return 1 if self.map_method == "iterate_pages" else max(1, self.split_page_range)

    def expand(self, items: list[Payload], keys: list[Any] | None = None) -> ExpandItems:
        """The control value that starts one iteration per item, with this loop's policy.

        Args:
            items: one payload per iteration, in order.
            keys: each item's key for ``reduce_concat_item_key`` (default: the index).

        Returns:
            ``ExpandItems`` carrying ``max_concurrency``, ``on_item_error`` and the reduce
            policy.
        """
        strategy = self.reduce_strategy if self.reduce_strategy in REDUCE_STRATEGIES else (
            "concat_array")  # validation refuses others before a run
        return ExpandItems(
            items=items, max_concurrency=self.max_concurrency, on_item_error=self.on_item_error,
            reduce_strategy=cast(ReduceStrategy, strategy),
            reduce_data_key=self.reduce_concat_data_key,
            reduce_item_key=self.reduce_concat_item_key, item_keys=keys)


#: split_by_key settings and their defaults: another map_method ignores a value other
#: than the default (``review`` elsewhere is an error: INVALID_REVIEW_CONFIG).
_SPLIT_BY_KEY_SETTINGS: dict[str, Any] = {
    "key": None, "allow_overlap": True, "instructions": None, "model": None, "n_consensus": 1}


def _ignored_by_map_method(config: ForEachConfig, path: str, owner: str) -> list[Diagnostic]:
    """Warnings for settings written for another map_method than the one in use."""
    method = config.map_method
    problems: list[Diagnostic] = []
    if config.map_source_path and method != "iterate_array":
        problems.append(Diagnostic(
            code="IGNORED_MAP_SETTING", severity="warning",
            path=f"{path}.config.map_source_path",
            message=f"{owner}: map_source_path only applies to map_method iterate_array; "
            f"{method} reads the document on fe-left-in and ignores it",
            fix="remove it, or use `map_method: iterate_array` to loop over the array at "
            "that path"))
    if method != "split_by_key":
        for key, default in _SPLIT_BY_KEY_SETTINGS.items():
            value = getattr(config, key)
            if value is None or value == "" or value == default:
                continue
            fix = ("add `map_method: split_by_key` to loop over the document's records by "
                   f"{value!r}, or remove it" if key == "key" else
                   "remove it, or use `map_method: split_by_key` with a key")
            problems.append(Diagnostic(
                code="IGNORED_MAP_SETTING", severity="warning", path=f"{path}.config.{key}",
                message=f"{owner}: {key} only applies to map_method split_by_key; {method} "
                "ignores it", fix=fix))
    if config.split_page_range > 1 and method in ("iterate_array", "split_by_key"):
        problems.append(Diagnostic(
            code="IGNORED_SPLIT_PAGE_RANGE", severity="warning",
            path=f"{path}.config.split_page_range",
            message=f"{owner}: split_page_range only applies to map_method split_by_page; "
            f"{method} ignores it",
            fix="use `map_method: split_by_page` to cut several pages per iteration, or "
            "remove it"))
    return problems


def _for_each_diagnostics(config: ForEachConfig, path: str, owner: str) -> list[Diagnostic]:
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
    if config.split_page_range < 1:
        problems.append(Diagnostic(
            code="INVALID_CONFIG", path=f"{path}.config.split_page_range",
            message=f"{owner}: split_page_range is {config.split_page_range}; an iteration "
            "needs at least one page",
            fix="write the pages per iteration as a whole number of 1 or more "
            "(`split_page_range: 1` is one page at a time)"))
    if config.reduce_strategy not in REDUCE_STRATEGIES:
        problems.append(Diagnostic(
            code="INVALID_CONFIG", path=f"{path}.config.reduce_strategy",
            message=f"{owner}: reduce_strategy {config.reduce_strategy!r} is not one of "
            f"{', '.join(REDUCE_STRATEGIES)}",
            fix="use concat_array (a list of every result), first, last or none "
            "(no output)"))
    if config.map_method == "iterate_pages" and config.split_page_range != 1:
        problems.append(Diagnostic(
            code="IGNORED_SPLIT_PAGE_RANGE", severity="warning",
            path=f"{path}.config.split_page_range",
            message=f"{owner}: iterate_pages is one page per iteration; split_page_range "
            "is ignored",
            fix="use `map_method: split_by_page` to cut several pages per iteration"))
    problems += _ignored_by_map_method(config, path, owner)
    if config.map_method == "split_by_key" and config.n_consensus > 1:
        problems.append(Diagnostic(
            code="IGNORED_CONSENSUS", severity="warning", path=f"{path}.config.n_consensus",
            message=f"{owner}: n_consensus {config.n_consensus} is not applied to "
            "split_by_key: the partition is asked once and its answer used as it is",
            fix="remove n_consensus, or check the partition with a review predicate "
            "(e.g. `review: {predicate: {kind: any_pages_unassigned}}`)"))
    for key in ("reduce_concat_data_key", "reduce_concat_item_key"):
        if getattr(config, key) and config.reduce_strategy != "concat_array":
            problems.append(Diagnostic(
                code="IGNORED_REDUCE_KEY", severity="warning", path=f"{path}.config.{key}",
                message=f"{owner}: {key} only applies to reduce_strategy concat_array",
                fix="remove it, or use reduce_strategy: concat_array"))
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

        problems += review_diagnostics(config.review, "split_by_key", f"{path}.config.review",
                                       owner=owner)
    return problems


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
        if handle != "fe-right-out" or config.reduce_strategy != "concat_array":
            return None
        if config.reduce_concat_data_key:
            return {"type": "object", "properties": {config.reduce_concat_data_key: {
                "type": "array"}}, "required": [config.reduce_concat_data_key]}
        return {"type": "array"}

    def check(self, block: BlockDef, config: ForEachConfig, path: str) -> list[Diagnostic]:
        return _for_each_diagnostics(config, path, f"for_each block {block.id!r}")

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
        keys = partition_keys(artifact) if artifact else [
            p.get("key") for p in proposal.get("partitions") or []]
        items, keys, _ = self._capped(config, items, keys)
        return BlockResult(control=config.expand(items, keys), artifact=artifact,
                           review=dict(review))

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
        keys: list[Any] | None = None
        if config.map_method == "iterate_array":
            items = array_items(ctx, config.map_source_path, payload.data)
        elif config.map_method in PAGE_METHODS:
            items, keys = await page_items(ctx, payload, config.pages_per_item,
                                           config.map_method, config.max_items)
        else:
            result = await self._partition_items(ctx, config, payload)
            if isinstance(result, BlockResult):
                assert isinstance(result.control, ExpandItems)
                check_count(ctx, len(result.control.items), config.max_items)
                keys = partition_keys(result.artifact)
                items, keys, spans = self._capped(config, list(result.control.items), keys)
                return replace(result, control=config.expand(items, keys),
                               trace_spans=(result.trace_spans or []) + spans or None)
            items = result
        check_count(ctx, len(items), config.max_items)
        items, keys, spans = self._capped(config, items, keys)
        return BlockResult(control=config.expand(items, keys), trace_spans=spans or None)

    @staticmethod
    def _capped(config: ForEachConfig, items: list[Payload], keys: list[Any] | None
                ) -> tuple[list[Payload], list[Any] | None, list[dict[str, Any]]]:
        """The first ``max_iterations`` items (and keys), and a span saying what was left."""
        cap = config.max_iterations
        if cap is None or len(items) <= cap:
            return items, keys, []
        now = time.time()
        span = {"name": "max_iterations", "start": now, "end": now, "attributes": {
            "max_iterations": cap, "items": len(items), "not_processed": len(items) - cap}}
        return items[:cap], None if keys is None else keys[:cap], [span]

    @staticmethod
    async def _partition_items(
        ctx: BlockContext, config: ForEachConfig, payload: Payload
    ) -> list[Payload] | BlockResult:
        partition: Partitioner | None = ctx.services.get(SPLIT_BY_KEY_SERVICE)
        if partition is None:
            from blocks.partition import partition_by_key

            partition = partition_by_key
        return await partition(ctx, config, payload)
