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

Review. When the predicate fires, the review record carries a ``proposal``
(:func:`review_proposal`: the source PDF, its page count and the proposed partitions with
their PDFs), so a decision taken later, by another process, can start the iterations
without calling the model again (:func:`items_after_review`). Approval without data
iterates over the proposed partitions; approval with data ``{"partitions": [{"key",
"pages"}]}`` (or just the list) iterates over PDFs cut from the source to those pages,
and the container's artifact then records both (``output`` and ``proposed_output``).
That cut runs in the budgeted, killable PDF subprocess, confined
(:func:`blocks.document_worker.run_pdf_job_blocking`), like every other PDF operation.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from blocks.conditional import slugify
from blocks.documents import (
    add_usage,
    call_model,
    load_document,
    pdf_job,
    pdf_pages,
    store_pdf,
)
from blocks.pdf import DocumentProblem, page_subset
from blocks.providers import CallContext, Partition, provider_for, step_usage
from blocks.review import evaluate_review, review_record
from engine.contracts.blocks import BlockContext, BlockResult
from engine.contracts.errors import InputError, UsageError
from engine.contracts.files import FileStore
from engine.contracts.policy import DocumentLimits
from engine.contracts.values import FileRef, Payload

if TYPE_CHECKING:
    from blocks.for_each import ForEachConfig


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
    pdf, pages, read_usage = await pdf_pages(ctx, doc, provider, model, config.instructions)
    result = await call_model(ctx, provider.partition(
        pages, str(config.key), model=model, allow_overlap=config.allow_overlap,
        context=CallContext.of(ctx, config.instructions)))
    parts = result.partitions if config.allow_overlap else without_overlap(result.partitions)
    parts = sorted(parts, key=lambda p: min(p.pages, default=0))
    items, recorded = [], []
    for part in parts:
        data = await pdf_job(ctx, doc, page_subset, pdf, part.pages)
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
    review = evaluate_review(config.review, **review_args)
    if review is not None:
        source = doc.ref if doc.mime == "application/pdf" else store_pdf(
            ctx, pdf, f"{doc.stem}.pdf")
        review = {**review, "proposal": review_proposal(
            key=str(config.key), source=source, page_count=len(pages), partitions=recorded,
            model=usage.model, usage=usage.to_dict())}
    return BlockResult(control=config.expand(items), artifact=artifact, review=review,
                       **step_usage(usage))


# ----------------------------------------------------------------------------- review


def review_proposal(*, key: str, source: FileRef, page_count: int,
                    partitions: list[dict[str, Any]], model: str | None = None,
                    usage: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``proposal`` a split_by_key review record carries (see the module docstring).

    Args:
        key: ``config.key``.
        source: the PDF the partitions were cut from (kept in the file store).
        page_count: its number of pages.
        partitions: ``[{key, pages, confidence, file}]`` in iteration order.
        model, usage: what the partitioning cost, kept for the corrected artifact.
    """
    return {"operation": "partition", "key": key, "file": source.to_dict(),
            "page_count": page_count, "partitions": partitions, "model": model,
            "usage": usage}


def corrected_partitions(proposal: Mapping[str, Any], data: Any) -> list[dict[str, Any]]:
    """The reviewer's partitions ``[{key, pages}]``, checked against the source document.

    Args:
        proposal: the review record's ``proposal``.
        data: ``{"partitions": [{"key": str, "pages": [int, ...]}, ...]}`` or the list.

    Raises:
        InputError: the data is not that shape, or names a page the document lacks.
    """
    total = int(proposal.get("page_count") or 0)
    example = ('{"partitions": [{"key": "A-100", "pages": [1, 2]}, '
               '{"key": "B-200", "pages": [3]}]}')
    parts = data.get("partitions") if isinstance(data, Mapping) else data
    if not isinstance(parts, list):
        raise InputError(
            "Corrected data for a split_by_key review must be the partitions to iterate "
            f"over, like {example}. Pass that (or approve without data to keep the proposal).")
    out: list[dict[str, Any]] = []
    for i, part in enumerate(parts):
        key = part.get("key") if isinstance(part, Mapping) else None
        pages = part.get("pages") if isinstance(part, Mapping) else None
        if not isinstance(key, str) or not isinstance(pages, list) or not pages or not all(
                isinstance(n, int) and not isinstance(n, bool) for n in pages):
            raise InputError(
                f"Corrected partition {i} must be {{\"key\": str, \"pages\": [int, ...]}} "
                f"with at least one page (got {part!r}). Example: {example}.")
        outside = sorted({n for n in pages if not 1 <= n <= total})
        if outside:
            raise InputError(
                f"Corrected partition {i} ({key!r}) names page(s) {outside}, but the document "
                f"has {total} page(s). Use 1-based page numbers from 1 to {total}.")
        out.append({"key": key, "pages": list(pages)})
    return out


def items_after_review(files: FileStore, proposal: Mapping[str, Any], *,
                       corrected: bool, data: Any = None,
                       evaluation: Mapping[str, Any] | None = None,
                       limits: DocumentLimits | None = None
                       ) -> tuple[list[Payload], dict[str, Any] | None]:
    """The iterations an approved split_by_key review starts, and the corrected artifact.

    Args:
        files: the run's file store.
        proposal: the review record's ``proposal``.
        corrected: the reviewer gave data; ``data`` is the corrected partitions.
        evaluation: the review trigger evaluation, repeated in the corrected artifact.
        limits: the budgets of the subprocess that cuts (default: a personal machine's;
            the document already passed its run's own budgets when it was read).

    Returns:
        ``(items, artifact)``: without correction the proposed partition PDFs and None
        (the recorded artifact stands); with it, PDFs cut from the source to the
        reviewer's pages and a ``partition`` artifact recording both versions.

    Raises:
        UsageError: the corrected data is malformed (see :func:`corrected_partitions`),
            or the source document can no longer be read or cut within the budgets.
    """
    from blocks.document_worker import run_pdf_job_blocking

    proposed = list(proposal.get("partitions") or [])
    if not corrected:
        return [Payload.file(FileRef(**p["file"])) for p in proposed], None
    parts = corrected_partitions(proposal, data)
    source = FileRef(**proposal["file"])
    try:
        pdf = files.read_bytes(source)
        stem = PurePath(source.filename).stem or "document"
        recorded = []
        for part in parts:
            cut = run_pdf_job_blocking("page_subset", pdf, part["pages"],
                                       limits=limits or DocumentLimits(), confine=True)
            ref = files.put_bytes(cut, f"{stem}_{slugify(part['key']) or 'partition'}.pdf",
                                  "application/pdf")
            recorded.append({**part, "confidence": 1.0, "file": ref.to_dict()})
    except (DocumentProblem, OSError) as exc:
        raise UsageError(
            f"Cannot cut the corrected partitions from {source.filename!r} ({exc}). "
            "Check the file store beside the database is intact, or reject the review "
            "and rerun the workflow.") from exc
    used = {n for part in parts for n in part["pages"]}
    artifact = {
        "operation": "partition", "file": source.to_dict(), "key": proposal.get("key"),
        "model": proposal.get("model"), "page_count": proposal.get("page_count"),
        "output": {"partitions": recorded},
        "unassigned_pages": [n for n in range(1, int(proposal.get("page_count") or 0) + 1)
                             if n not in used],
        "proposed_output": {"partitions": proposed}, "corrected_by_review": True,
        "usage": proposal.get("usage"), "review": dict(evaluation) if evaluation else None,
    }
    return [Payload.file(FileRef(**p["file"])) for p in recorded], artifact
