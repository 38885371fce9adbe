"""``split_by_key`` for ``for_each``: one iteration per value of a key.

The container's ``fe-left-in`` document is read page by page and the model provider
groups its pages by the value of ``config.key`` (e.g. "invoice number"; offline: the
value labelled that way on each page, continuation pages following the previous one).
Each partition becomes a PDF of its pages, ``<stem>_<key value>.pdf``, and one
iteration's item, in order of first page.

``allow_overlap: false`` keeps a page in its first partition only. ``config.review``
(``any_pages_unassigned``, ``split_count_neq``, ``any_split_pages_lt``, ...) can hold the
container step for a human before any iteration starts. The container's artifact is
``partition``: ``{key, output{partitions[{key, pages, file}]}, unassigned_pages, usage,
review}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blocks.base import BlockContext, BlockResult, ExpandItems
from blocks.control import slugify
from blocks.documents import (
    add_usage,
    call_model,
    in_thread,
    load_document,
    read_pages,
    store_pdf,
    to_pdf,
)
from blocks.pdf import page_subset, page_texts
from blocks.providers import CallContext, Partition, provider_for, step_usage
from blocks.review import evaluate_review, review_record
from engine.values import Payload

if TYPE_CHECKING:
    from blocks.loops import ForEachConfig


def without_overlap(partitions: list[Partition]) -> list[Partition]:
    """Each page kept in its first partition only; emptied partitions dropped."""
    seen: set[int] = set()
    out = []
    for part in partitions:
        pages = [p for p in part.pages if p not in seen]
        seen.update(pages)
        if pages:
            out.append(Partition(key=part.key, pages=pages, confidence=part.confidence))
    return out


async def partition_by_key(ctx: BlockContext, config: ForEachConfig,
                           payload: Payload) -> BlockResult:
    """The for_each items of a split_by_key container (see the module docstring).

    Returns:
        ``BlockResult(control=ExpandItems(items), artifact=partition record, review=...)``
        with the model usage.

    Raises:
        PermanentError: no or unreadable document, an image without vision.
        TransientError, QuotaError: the model endpoint failed (retried).
    """
    doc = load_document(ctx, {"fe-left-in": payload}, "fe-left-in")
    provider, model = provider_for(ctx, config.model)
    pdf = await to_pdf(ctx, doc)
    read_usage = None
    if doc.mime.startswith("image/"):
        pages, read_usage = await read_pages(ctx, doc, provider, model, config.instructions)
    else:
        pages = await in_thread(ctx, doc, page_texts, pdf)
    result = await call_model(ctx, provider.partition(
        pages, str(config.key), model=model, allow_overlap=config.allow_overlap,
        context=CallContext.of(ctx, config.instructions)))
    parts = result.partitions if config.allow_overlap else without_overlap(result.partitions)
    parts = sorted(parts, key=lambda p: min(p.pages, default=0))
    items, recorded = [], []
    for part in parts:
        data = await in_thread(ctx, doc, page_subset, pdf, part.pages)
        ref = store_pdf(ctx, data, f"{doc.stem}_{slugify(part.key) or 'partition'}.pdf")
        items.append(Payload.file(ref))
        recorded.append({"key": part.key, "pages": part.pages, "confidence": part.confidence,
                         "file": ref.to_dict()})
    usage = add_usage(result.usage, read_usage)
    facts: dict[str, Any] = {
        "parts": [{"name": p.key, "pages": p.pages, "confidence": p.confidence} for p in parts],
        "unassigned_pages": result.unassigned_pages}
    review_args: dict[str, Any] = {
        "output": {"partitions": [{"key": p.key, "pages": p.pages} for p in parts]},
        "kind": "split_by_key", "extra": facts}
    artifact = {
        "operation": "partition", "file": doc.ref.to_dict(), "key": config.key,
        "model": usage.model, "allow_overlap": config.allow_overlap, "page_count": len(pages),
        "output": {"partitions": recorded}, "unassigned_pages": result.unassigned_pages,
        "usage": usage.to_dict(), "review": review_record(config.review, **review_args),
    }
    return BlockResult(control=ExpandItems(items=items), artifact=artifact,
                       review=evaluate_review(config.review, **review_args), **step_usage(usage))
