"""The ``split`` block: cuts a document into its subdocuments.

``input-file-0 -> output-file-<handle_key>`` per configured subdocument. The model says
which pages belong to which subdocument; each found one goes out as a new PDF with just
those pages (pypdf), named ``<stem>_<handle_key>.pdf``. A subdocument that is not found
fires nothing, so what hangs off its handle is skipped with ``subdocument_not_found``.

Several instances of one subdocument: with ``allow_multiple_instances: true`` the first
goes out and the others are recorded in the artifact (``extra_instances``); without it
their pages are merged into one document. Images and text files are wrapped as PDFs
first. ``n_consensus`` > 1 votes page by page and regroups consecutive pages.

Artifact ``split``: subdocuments, ``output[{name, pages, handle, file}]``,
``extra_instances``, ``unassigned_pages``, consensus, usage, review evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import Field

from blocks.base import BlockType, StrictConfig
from blocks.documents import (
    Document,
    Route,
    add_usage,
    call_model,
    load_document,
    pdf_job,
    pdf_pages,
    route_diagnostics,
    store_pdf,
)
from blocks.pdf import page_subset
from blocks.providers import (
    CallContext,
    Label,
    SplitPart,
    SplitResult,
    gather,
    provider_for,
    step_usage,
    total_usage,
)
from blocks.providers.consensus import vote_pages
from blocks.review import evaluate_review, review_diagnostics, review_record
from engine.contracts.blocks import BlockContext, BlockResult, HandleKind
from engine.contracts.errors import Diagnostic
from engine.contracts.values import Payload

if TYPE_CHECKING:
    from engine.contracts.definition import BlockDef


class Subdocument(Route):
    """A subdocument type; ``allow_multiple_instances`` if it may occur several times."""

    allow_multiple_instances: bool = False


class SplitConfig(StrictConfig):
    """``subdocuments``, ``model``, ``n_consensus``, ``instructions``, ``review``."""

    subdocuments: list[Subdocument] = Field(default_factory=list)
    model: str | None = None
    n_consensus: int = Field(1, ge=1, le=16)
    instructions: str | None = None
    review: dict[str, Any] | None = None


def regroup(chosen: Mapping[int, str | None], shares: Mapping[int, float]) -> list[SplitPart]:
    """Consecutive pages with the same voted subdocument form one part."""
    parts: list[SplitPart] = []
    for page in sorted(chosen):
        name = chosen[page]
        if name is None:
            continue
        if parts and parts[-1].name == name and parts[-1].pages[-1] == page - 1:
            parts[-1].pages.append(page)
        else:
            parts.append(SplitPart(name=name, pages=[page], confidence=0.0))
    return [SplitPart(name=p.name, pages=p.pages,
                      confidence=round(sum(shares[n] for n in p.pages) / len(p.pages), 4))
            for p in parts]


def _voted(results: list[SplitResult], page_count: int) -> list[SplitPart]:
    if len(results) == 1:
        return results[0].parts
    answers = [{n: p.name for p in r.parts for n in p.pages} for r in results]
    chosen, shares = vote_pages(answers, page_count)
    return regroup(chosen, shares)


def assign(parts: list[SplitPart], config: SplitConfig
           ) -> tuple[dict[str, SplitPart], list[SplitPart], list[SplitPart]]:
    """``({name: emitted part}, extra instances, parts with unknown names)``."""
    known = {s.name: s for s in config.subdocuments}
    emitted: dict[str, SplitPart] = {}
    extra: list[SplitPart] = []
    unknown: list[SplitPart] = []
    for part in parts:
        sub = known.get(part.name)
        if sub is None:
            unknown.append(part)
        elif part.name not in emitted:
            emitted[part.name] = part
        elif sub.allow_multiple_instances:
            extra.append(part)
        else:
            first = emitted[part.name]
            emitted[part.name] = SplitPart(name=part.name,
                                           pages=sorted({*first.pages, *part.pages}),
                                           confidence=min(first.confidence, part.confidence))
    return emitted, extra, unknown


def _part(p: SplitPart) -> dict[str, Any]:
    return {"name": p.name, "pages": p.pages, "confidence": p.confidence}


class Split(BlockType):
    """Cuts its document into subdocuments (see the module docstring)."""

    type_name = "split"
    config_model = SplitConfig
    operation = "split"
    unfired_reason = "subdocument_not_found"
    reviewable = True

    def input_handles(self, config: SplitConfig) -> dict[str, HandleKind]:
        return {"input-file-0": "file"}

    def output_handles(self, config: SplitConfig) -> dict[str, HandleKind]:
        return {f"output-file-{s.key}": "file" for s in config.subdocuments}

    def input_aliases(self, config: SplitConfig) -> dict[str, str]:
        return {"0": "input-file-0", "document": "input-file-0"}

    def check(self, block: BlockDef, config: SplitConfig, path: str) -> list[Diagnostic]:
        return route_diagnostics(config.subdocuments, path, "subdocuments") + \
            review_diagnostics(config.review, "split", f"{path}.config.review",
                               owner=f"split block {block.id!r}")

    async def _ask(self, ctx: BlockContext, config: SplitConfig, provider: Any,
                   model: str | None, pages: list[str]) -> list[SplitResult]:
        labels = [Label(name=s.name, description=s.description) for s in config.subdocuments]
        multiple = any(s.allow_multiple_instances for s in config.subdocuments)
        context = CallContext.of(ctx, config.instructions)

        def ask() -> Any:
            return call_model(ctx, provider.split(pages, labels, model=model,
                                                  allow_multiple=multiple, context=context))

        return await gather([ask] * config.n_consensus)

    @staticmethod
    async def _emit(ctx: BlockContext, config: SplitConfig, doc: Document, pdf: bytes,
                    emitted: Mapping[str, SplitPart]
                    ) -> tuple[dict[str, Payload], list[dict[str, Any]]]:
        """One PDF per found subdocument: outputs by handle, and their records."""
        outputs: dict[str, Payload] = {}
        produced: list[dict[str, Any]] = []
        for sub in config.subdocuments:
            part = emitted.get(sub.name)
            if part is None:
                continue
            data = await pdf_job(ctx, doc, page_subset, pdf, part.pages)
            ref = store_pdf(ctx, data, f"{doc.stem}_{sub.key}.pdf")
            outputs[f"output-file-{sub.key}"] = Payload.file(ref)
            produced.append({**_part(part), "handle": f"output-file-{sub.key}",
                             "file": ref.to_dict()})
        return outputs, produced

    async def run(
        self, ctx: BlockContext, config: SplitConfig, inputs: Mapping[str, Payload]
    ) -> BlockResult:
        """Find the subdocuments and emit one PDF per found one.

        Raises:
            PermanentError: no or unreadable document (stage ``document_fetch``), or an
                image without a vision-capable provider.
            TransientError, QuotaError: the model endpoint failed (retried).
        """
        doc = load_document(ctx, inputs, "input-file-0")
        provider, model = provider_for(ctx, config.model)
        pdf, pages, read_usage = await pdf_pages(ctx, doc, provider, model, config.instructions)
        results = await self._ask(ctx, config, provider, model, pages)
        parts = _voted(results, len(pages))
        emitted, extra, unknown = assign(parts, config)
        outputs, produced = await self._emit(ctx, config, doc, pdf, emitted)
        claimed = {n for p in [*emitted.values(), *extra] for n in p.pages}
        unassigned = [n for n in range(1, len(pages) + 1) if n not in claimed]
        usage = add_usage(total_usage([r.usage for r in results]), read_usage)
        found = [_part(p) for p in [*emitted.values(), *extra]]
        review_args: dict[str, Any] = {
            "output": {"documents": [{"name": p["name"], "pages": p["pages"]} for p in found]},
            "kind": "split", "extra": {"parts": found, "unassigned_pages": unassigned}}
        review = evaluate_review(config.review, **review_args)
        artifact = {
            "operation": self.operation, "file": doc.ref.to_dict(), "model": usage.model,
            "subdocuments": [s.model_dump(exclude_none=True) for s in config.subdocuments],
            "page_count": len(pages), "output": produced,
            "extra_instances": [_part(p) for p in extra],
            "ignored_parts": [_part(p) for p in unknown], "unassigned_pages": unassigned,
            "consensus": {"likelihoods": [_part(p) for p in parts],
                          "choices": [[_part(p) for p in r.parts] for r in results]},
            "usage": usage.to_dict(), "review": review_record(config.review, **review_args),
        }
        return BlockResult(outputs=outputs, artifact=artifact, review=review, **step_usage(usage))
