"""The classifier block: routing, scores, consensus, review, and skips downstream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from blocks.classifier import Classifier, margin
from blocks.providers import MODEL_PROVIDER_SERVICE
from blocks.providers.scripted import ScriptedProvider
from engine import Engine, Workflow
from engine.contracts.errors import PermanentError
from engine.contracts.values import Payload
from engine.definition import BlockDef
from tests.blocks import pdfs
from tests.blocks.conftest import MakeCtx
from tests.blocks.harness import MemoryFileStore, parse, run_block

pytestmark = pytest.mark.anyio
CATEGORIES = [
    {"name": "invoice", "description": "a bill with invoice number and total due"},
    {"name": "receipt", "description": "proof of payment from a shop or till"},
    {"name": "Other Stuff", "description": "anything else"},
]


def test_handles_and_checks() -> None:
    impl = Classifier()
    cfg = parse(impl, {"categories": CATEGORIES, "first_n_pages": 1})
    assert impl.input_handles(cfg) == {"input-file-document": "file"}
    assert impl.output_handles(cfg) == {"output-file-invoice": "file",
                                        "output-file-receipt": "file",
                                        "output-file-other-stuff": "file"}
    assert impl.unfired_reason == "category_not_selected"

    def codes(raw: dict[str, Any]) -> set[str]:
        block = BlockDef(id="sort", type="classifier", config=raw)
        return {d.code for d in impl.check(block, parse(impl, raw), "spec.blocks.sort")}

    assert codes({"categories": CATEGORIES}) == set()
    assert codes({"categories": [{"name": "a"}, {"name": "a"}]}) == {
        "DUPLICATE_HANDLE_KEY", "DUPLICATE_ROUTE_NAME"}
    assert codes({"categories": CATEGORIES, "review": {"predicate": {
        "kind": "any_pages_unassigned"}}}) == {"REVIEW_PREDICATE_NOT_APPLICABLE"}
    with pytest.raises(ValueError):
        parse(impl, {"categories": CATEGORIES, "first_n_pages": 0})


def test_review_category_in_is_checked_against_the_categories() -> None:
    impl = Classifier()
    raw = {"categories": CATEGORIES, "review": {"predicate": {"kind": "any_of", "predicates": [
        {"kind": "category_in", "categories": ["receipt", "other-stuff"]},
        {"kind": "confidence_lt", "threshold": 0.7}]}}}
    [warning] = impl.check(BlockDef(id="sort", type="classifier", config=raw),
                           parse(impl, raw), "spec.blocks.sort")
    assert (warning.code, warning.severity) == ("UNKNOWN_REVIEW_CATEGORY", "warning")
    assert warning.path == ("spec.blocks.sort.config.review.predicate.predicates[0]"
                            ".categories[1]")
    assert warning.message.startswith("classifier block 'sort': category_in lists "
                                      "'other-stuff'")
    assert warning.fix == "write the category's name, 'Other Stuff', not its handle_key"


@pytest.mark.parametrize(("document", "handle"), [
    (pdfs.invoice_colon(), "output-file-invoice"),
    (pdfs.invoice_above(), "output-file-invoice"),
    (pdfs.receipt(), "output-file-receipt"),
    (pdfs.pages(2, "minutes of the meeting"), "output-file-other-stuff"),
])
async def test_offline_routes_the_input_file(make_ctx: MakeCtx, files: MemoryFileStore,
                                             document: bytes, handle: str) -> None:
    doc = Payload.file(files.put_bytes(document, "doc.pdf"))
    result = await run_block(Classifier(), make_ctx("classifier", "sort"),
                             {"categories": CATEGORIES}, {"input-file-document": doc})
    assert result.outputs == {handle: doc}  # the same file, on one handle only
    art = result.artifact
    assert art["operation"] == "classification" and art["selected_handle"] == handle
    assert set(art["scores"]) == {"invoice", "receipt", "Other Stuff"}
    assert art["output"]["reasoning"]


async def test_first_n_pages_limits_what_is_read(make_ctx: MakeCtx,
                                                 files: MemoryFileStore) -> None:
    provider = ScriptedProvider({"sort": "receipt"})
    doc = Payload.file(files.put_bytes(pdfs.three_documents(), "bundle.pdf"))
    await run_block(Classifier(), make_ctx("classifier", "sort",
                                           services={MODEL_PROVIDER_SERVICE: provider}),
                    {"categories": CATEGORIES, "first_n_pages": 2}, {"input-file-document": doc})
    assert len(provider.calls[0].arguments["pages"]) == 2
    assert provider.calls[0].arguments["first_n_pages"] == 2


async def test_consensus_and_review(make_ctx: MakeCtx, files: MemoryFileStore) -> None:
    provider = ScriptedProvider({"sort": [
        {"category": "receipt", "scores": {"invoice": 0.45, "receipt": 0.55}},
        "invoice", {"category": "receipt", "scores": {"invoice": 0.45, "receipt": 0.55}}]})
    doc = Payload.file(files.put_bytes(b"text", "a.txt"))
    review = {"predicate": {"kind": "all_of", "predicates": [
        {"kind": "category_in", "categories": ["receipt"]},
        {"kind": "top_margin_lt", "margin": 0.2}]}}
    result = await run_block(
        Classifier(), make_ctx("classifier", "sort", services={MODEL_PROVIDER_SERVICE: provider}),
        {"categories": CATEGORIES, "n_consensus": 3, "review": review},
        {"input-file-document": doc})
    assert list(result.outputs) == ["output-file-receipt"]
    assert result.artifact["consensus"]["likelihoods"] == 0.6667
    assert result.artifact["top_margin"] == 0.1
    assert result.review is not None and result.review["triggered_by"] == "all_of"
    assert margin({"a": 1.0}) == 1.0


async def test_unknown_category_is_permanent(make_ctx: MakeCtx, files: MemoryFileStore) -> None:
    provider = ScriptedProvider({"sort": "spam"})
    doc = Payload.file(files.put_bytes(b"text", "a.txt"))
    with pytest.raises(PermanentError, match="not one of the configured categories"):
        await run_block(Classifier(), make_ctx("classifier", "sort",
                                               services={MODEL_PROVIDER_SERVICE: provider}),
                        {"categories": CATEGORIES}, {"input-file-document": doc})


def test_unselected_categories_skip_downstream(tmp_path: Path) -> None:
    document = tmp_path / "receipt.pdf"
    document.write_bytes(pdfs.receipt())
    wf = (Workflow.builder("route")
          .block("upload", "start_document")
          .block("sort", "classifier", config={"categories": CATEGORIES})
          .block("read_invoice", "parse")
          .block("read_receipt", "parse")
          .edge("upload", "sort", source_handle="output-file-0", target_handle="document")
          .edge("sort", "read_invoice", source_handle="output-file-invoice",
                target_handle="input-file-0")
          .edge("sort", "read_receipt", source_handle="output-file-receipt",
                target_handle="input-file-0")
          .build())
    with Engine(tmp_path / "run.db") as engine:
        result = engine.run(wf, {"upload": document})
        steps = {s.step_id: s for s in engine.client.workflows.steps.list(result.run_id).data}
    assert result.ok, result.error
    assert steps["read_invoice"].lifecycle.reason == (
        "category_not_selected: sort.output-file-invoice")
    assert steps["read_receipt"].lifecycle.status == "completed"
    assert steps["sort"].model == "offline" and steps["sort"].artifact.operation == (
        "classification")
