"""The ``classifier`` block: routes a document to one category's output handle.

``input-file-document -> output-file-<handle_key>`` per category. The input file goes
out unchanged on the chosen category's handle only; the other handles stay silent, so
what hangs off them is skipped with ``category_not_selected: <block>.<handle>``.

``first_n_pages`` limits what the model reads. ``n_consensus`` > 1 asks that many times;
the most common category wins and its share is the likelihood. ``config.review``
predicates (``category_in``, ``top_margin_lt``, ``confidence_lt``, ...) can hold the
step for a human. Artifact ``classification``: categories, ``output{category,
reasoning}``, ``scores``, ``consensus{choices, likelihoods}``, usage, review evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import Field

from blocks.base import BlockType, StrictConfig
from blocks.control import who
from blocks.documents import (
    Route,
    add_usage,
    call_model,
    load_document,
    read_pages,
    route_diagnostics,
)
from blocks.providers import (
    CallContext,
    Classification,
    Label,
    gather,
    provider_for,
    step_usage,
    total_usage,
)
from blocks.providers.consensus import vote_label
from blocks.review import evaluate_review, review_diagnostics, review_record
from engine.contracts.blocks import BlockContext, BlockResult, HandleKind
from engine.contracts.errors import Diagnostic, PermanentError
from engine.contracts.values import Payload

if TYPE_CHECKING:
    from engine.contracts.definition import BlockDef


class ClassifierConfig(StrictConfig):
    """``categories``, ``model``, ``first_n_pages``, ``n_consensus``, ``instructions``,
    ``review``."""

    categories: list[Route] = Field(default_factory=list)
    model: str | None = None
    first_n_pages: int | None = Field(None, ge=1)
    n_consensus: int = Field(1, ge=1, le=16)
    instructions: str | None = None
    review: dict[str, Any] | None = None


def margin(scores: Mapping[str, float]) -> float:
    """Top score minus the runner-up (the top score when there is one category)."""
    ranked = sorted(scores.values(), reverse=True) + [0.0]
    return round(ranked[0] - ranked[1], 4)


class Classifier(BlockType):
    """Sends its document to the chosen category's handle (see the module docstring)."""

    type_name = "classifier"
    config_model = ClassifierConfig
    operation = "classification"
    unfired_reason = "category_not_selected"
    reviewable = True

    def input_handles(self, config: ClassifierConfig) -> dict[str, HandleKind]:
        return {"input-file-document": "file"}

    def output_handles(self, config: ClassifierConfig) -> dict[str, HandleKind]:
        return {f"output-file-{c.key}": "file" for c in config.categories}

    def check(self, block: BlockDef, config: ClassifierConfig, path: str) -> list[Diagnostic]:
        return route_diagnostics(config.categories, path, "categories") + review_diagnostics(
            config.review, "classifier", f"{path}.config.review",
            owner=f"classifier block {block.id!r}",
            categories={c.name: c.key for c in config.categories})

    async def _classify(self, ctx: BlockContext, config: ClassifierConfig, provider: Any,
                        model: str | None, pages: list[str]) -> list[Classification]:
        labels = [Label(name=c.name, description=c.description) for c in config.categories]
        context = CallContext.of(ctx, config.instructions)

        def ask() -> Any:
            return call_model(ctx, provider.classify(
                pages, labels, model=model, first_n_pages=config.first_n_pages,
                context=context))

        return await gather([ask] * config.n_consensus)

    async def run(
        self, ctx: BlockContext, config: ClassifierConfig, inputs: Mapping[str, Payload]
    ) -> BlockResult:
        """Classify and fire the chosen category's handle.

        Raises:
            PermanentError: no or unreadable document, an image without vision, or a
                category the configuration does not have.
            TransientError, QuotaError: the model endpoint failed (retried).
        """
        doc = load_document(ctx, inputs, "input-file-document")
        provider, model = provider_for(ctx, config.model)
        pages, read_usage = await read_pages(ctx, doc, provider, model, config.instructions)
        if config.first_n_pages:
            pages = pages[:config.first_n_pages]
        answers = await self._classify(ctx, config, provider, model, pages)
        winner, share = vote_label([a.category for a in answers])
        first = next(a for a in answers if a.category == winner)
        likelihood = share if len(answers) > 1 else first.likelihood
        route = next((c for c in config.categories if c.name == winner), None)
        if route is None:
            raise PermanentError(
                f"{who(ctx)}: the model chose {winner!r}, which is not one of the configured "
                f"categories ({', '.join(c.name for c in config.categories)}).",
                code="UNKNOWN_CATEGORY")
        usage = add_usage(total_usage([a.usage for a in answers]), read_usage)
        facts = {"category": winner, "confidence": likelihood, "top_margin": margin(first.scores)}
        summary = {"category": winner, "reasoning": first.reasoning}
        review_args: dict[str, Any] = {"output": summary, "kind": "classifier", "extra": facts}
        review = evaluate_review(config.review, **review_args)
        handle = f"output-file-{route.key}"
        artifact = {
            "operation": self.operation, "file": doc.ref.to_dict(), "model": usage.model,
            "categories": [c.model_dump(exclude_none=True) for c in config.categories],
            "first_n_pages": config.first_n_pages, "output": summary, "scores": first.scores,
            "selected_handle": handle, "top_margin": facts["top_margin"],
            "consensus": {"choices": [{"category": a.category, "reasoning": a.reasoning}
                                      for a in answers], "likelihoods": likelihood},
            "usage": usage.to_dict(), "review": review_record(config.review, **review_args),
        }
        return BlockResult(outputs={handle: inputs["input-file-document"]}, artifact=artifact,
                           review=review, **step_usage(usage))
