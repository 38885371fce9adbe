"""split, split_by_key and iterate_pages on real PDFs (handlers and the real engine)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from blocks.for_each import ForEach
from blocks.providers import MODEL_PROVIDER_SERVICE
from blocks.providers.scripted import ScriptedProvider
from blocks.split import Split
from engine import Engine, Workflow
from engine.contracts.blocks import ExpandItems
from engine.contracts.values import Payload
from engine.definition import BlockDef
from tests.blocks import pdfs
from tests.blocks.conftest import MakeCtx
from tests.blocks.harness import MemoryFileStore, parse, run_block

pytestmark = pytest.mark.anyio
SUBDOCUMENTS = [
    {"name": "invoice", "description": "invoice with invoice number and total due"},
    {"name": "bank statement", "description": "account statement, balance, transactions",
     "handle_key": "statement"},
    {"name": "contract", "description": "agreement between parties, signatures"},
]


def _pages(data: bytes) -> list[str]:
    reader = PdfReader(io.BytesIO(data))
    return [page.extract_text() for page in reader.pages]


def test_split_handles_and_checks() -> None:
    impl = Split()
    cfg = parse(impl, {"subdocuments": SUBDOCUMENTS})
    assert impl.output_handles(cfg) == {"output-file-invoice": "file",
                                        "output-file-statement": "file",
                                        "output-file-contract": "file"}
    assert impl.input_aliases(cfg)["document"] == "input-file-0"
    assert impl.unfired_reason == "subdocument_not_found" and impl.reviewable

    def codes(raw: dict[str, Any]) -> set[str]:
        block = BlockDef(id="cut", type="split", config=raw)
        return {d.code for d in impl.check(block, parse(impl, raw), "spec.blocks.cut")}

    assert codes({"subdocuments": SUBDOCUMENTS}) == set()
    assert codes({}) == {"MISSING_ROUTES"}
    assert codes({"subdocuments": [{"name": "A b"}, {"name": "a-b"}]}) == {
        "DUPLICATE_HANDLE_KEY"}
    assert codes({"subdocuments": [{"name": "x", "handle_key": "a b"}]}) == {
        "INVALID_HANDLE_KEY"}
    assert codes({"subdocuments": SUBDOCUMENTS, "review": {"predicate": {
        "kind": "split_count_neq", "expected": 3}}}) == set()


async def test_split_six_pages_into_three_documents(make_ctx: MakeCtx,
                                                    files: MemoryFileStore) -> None:
    doc = Payload.file(files.put_bytes(pdfs.three_documents(), "bundle.pdf"))
    result = await run_block(Split(), make_ctx("split", "cut"), {"subdocuments": SUBDOCUMENTS},
                             {"input-file-0": doc})
    assert set(result.outputs) == {"output-file-invoice", "output-file-statement",
                                   "output-file-contract"}
    names = {h: p.document.filename for h, p in result.outputs.items() if p.document}
    assert names["output-file-statement"] == "bundle_statement.pdf"
    texts = {h: _pages(files.read_bytes(p.document)) for h, p in result.outputs.items()
             if p.document}
    assert all(len(pages) == 2 for pages in texts.values())
    assert "BANK STATEMENT" in texts["output-file-statement"][0]
    art = result.artifact
    assert art["operation"] == "split" and art["page_count"] == 6
    assert [(o["name"], o["pages"]) for o in art["output"]] == [
        ("invoice", [1, 2]), ("bank statement", [3, 4]), ("contract", [5, 6])]
    assert art["unassigned_pages"] == [] and result.model == "offline"


async def test_unfound_subdocuments_fire_nothing(make_ctx: MakeCtx,
                                                 files: MemoryFileStore) -> None:
    doc = Payload.file(files.put_bytes(pdfs.invoice_colon(), "inv.pdf"))
    result = await run_block(Split(), make_ctx("split", "cut"), {"subdocuments": SUBDOCUMENTS},
                             {"input-file-0": doc})
    assert list(result.outputs) == ["output-file-invoice"]


async def test_multiple_instances_and_review(make_ctx: MakeCtx, files: MemoryFileStore) -> None:
    script = ScriptedProvider({"cut": [[{"name": "invoice", "pages": [1]},
                                        {"name": "contract", "pages": [2], "confidence": 0.4},
                                        {"name": "invoice", "pages": [3, 4]},
                                        {"name": "unknown", "pages": [5]}]] * 2})
    doc = Payload.file(files.put_bytes(pdfs.pages(6), "p.pdf"))
    services = {MODEL_PROVIDER_SERVICE: script}
    subs = [{"name": "invoice", "allow_multiple_instances": True}, {"name": "contract"}]
    review = {"predicate": {"kind": "any_of", "predicates": [
        {"kind": "split_count_neq", "expected": 3},
        {"kind": "boundary_confidence_lt", "threshold": 0.5}]}}
    result = await run_block(Split(), make_ctx("split", "cut", services=services),
                             {"subdocuments": subs, "review": review}, {"input-file-0": doc})
    assert _pages(files.read_bytes(result.outputs["output-file-invoice"].document)) == ["page 1"]
    assert result.artifact["extra_instances"] == [{"name": "invoice", "pages": [3, 4],
                                                   "confidence": 1.0}]
    assert result.artifact["ignored_parts"][0]["name"] == "unknown"
    assert result.artifact["unassigned_pages"] == [5, 6]
    assert result.review is not None and result.review["triggered_by"] == "boundary_confidence_lt"
    merged = await run_block(Split(), make_ctx("split", "cut", services=services),
                             {"subdocuments": [{"name": "invoice"}]}, {"input-file-0": doc})
    invoice = merged.outputs["output-file-invoice"].document
    assert _pages(files.read_bytes(invoice)) == ["page 1", "page 3", "page 4"]


async def test_split_wraps_text_and_votes(make_ctx: MakeCtx, files: MemoryFileStore) -> None:
    doc = Payload.file(files.put_bytes(b"INVOICE\nInvoice number: 1\nTotal due: 3", "a.txt"))
    result = await run_block(Split(), make_ctx("split", "cut"),
                             {"subdocuments": SUBDOCUMENTS, "n_consensus": 3},
                             {"input-file-0": doc})
    out = result.outputs["output-file-invoice"].document
    assert out is not None and "Invoice number: 1" in _pages(files.read_bytes(out))[0]
    assert result.artifact["consensus"]["likelihoods"] == [
        {"name": "invoice", "pages": [1], "confidence": 1.0}]


# ----------------------------------------------------------------------------- split_by_key


async def test_split_by_key_partitions_through_the_provider(make_ctx: MakeCtx,
                                                            files: MemoryFileStore) -> None:
    doc = Payload.file(files.put_bytes(pdfs.invoices_by_number(), "batch.pdf"))
    cfg = {"map_method": "split_by_key", "key": "invoice number",
           "review": {"predicate": {"kind": "split_count_neq", "expected": 2}}}
    result = await run_block(ForEach(), make_ctx("for_each", "each"), cfg, {"fe-left-in": doc})
    assert isinstance(result.control, ExpandItems)
    items = [i.document for i in result.control.items]
    assert [d.filename for d in items if d] == ["batch_a-100.pdf", "batch_b-200.pdf",
                                                "batch_c-300.pdf"]
    assert [len(_pages(files.read_bytes(d))) for d in items if d] == [2, 1, 2]
    art = result.artifact
    assert art is not None and art["operation"] == "partition"
    assert [(p["key"], p["pages"]) for p in art["output"]["partitions"]] == [
        ("A-100", [1, 2]), ("B-200", [3]), ("C-300", [4, 5])]
    assert result.review is not None and result.review["triggered_by"] == "split_count_neq"


async def test_split_by_key_unassigned_pages_and_overlap(make_ctx: MakeCtx,
                                                         files: MemoryFileStore) -> None:
    provider = ScriptedProvider({"each": {"partitions": [{"key": "X", "pages": [1, 2]},
                                                         {"key": "Y", "pages": [2, 3]}],
                                          "unassigned_pages": [4]}})
    doc = Payload.file(files.put_bytes(pdfs.pages(4), "p.pdf"))
    cfg = {"map_method": "split_by_key", "key": "id", "allow_overlap": False,
           "review": {"predicate": {"kind": "any_pages_unassigned"}}}
    ctx = make_ctx("for_each", "each", services={MODEL_PROVIDER_SERVICE: provider})
    result = await run_block(ForEach(), ctx, cfg, {"fe-left-in": doc})
    assert [(p["key"], p["pages"]) for p in result.artifact["output"]["partitions"]] == [
        ("X", [1, 2]), ("Y", [3])]
    assert result.review["evaluations"][0]["unassigned_pages"] == [4]


# ----------------------------------------------------------------------------- engine


def _write(tmp_path: Path, data: bytes, name: str = "bundle.pdf") -> Path:
    target = tmp_path / name
    target.write_bytes(data)
    return target


def test_split_merge_then_iterate_pages_through_the_engine(tmp_path: Path) -> None:
    """6 pages -> split into 3 PDFs -> merge_pdf back to 6 pages -> 6 iterations."""
    wf = (Workflow.builder("split, merge, iterate")
          .block("upload", "start_document")
          .block("cut", "split", config={"subdocuments": SUBDOCUMENTS + [
              {"name": "receipt", "description": "till receipt"}]})
          .block("join", "merge_pdf", config={"inputs": [{"name": "a"}, {"name": "b"},
                                                         {"name": "c"}]})
          .block("after_receipt", "parse")
          .block("each", "for_each", config={"map_method": "iterate_pages"})
          .block("read", "parse", parent="each")
          .block("done", "end")
          .edge("upload", "cut", source_handle="output-file-0", target_handle="document")
          .edge("cut", "join", source_handle="output-file-invoice", target_handle="input-file-a")
          .edge("cut", "join", source_handle="output-file-statement",
                target_handle="input-file-b")
          .edge("cut", "join", source_handle="output-file-contract",
                target_handle="input-file-c")
          .edge("cut", "after_receipt", source_handle="output-file-receipt",
                target_handle="input-file-0")
          .edge("join", "each", source_handle="output-file-0", target_handle="fe-left-in")
          .edge("each", "done", source_handle="fe-right-out", target_handle="input-json-0")
          .build())
    with Engine(tmp_path / "run.db") as engine:
        result = engine.run(wf, {"upload": _write(tmp_path, pdfs.three_documents())})
        steps = {s.step_id: s for s in engine.client.workflows.steps.list(
            result.run_id, limit=200).data}
        parts = {h: engine.store.files.read_bytes(p.document.id)
                 for h, p in steps["cut"].handle_outputs.items()}
        merged = engine.store.files.read_bytes(
            steps["join"].handle_outputs["output-file-0"].document.id)
    assert result.ok, result.error
    assert steps["after_receipt"].lifecycle.reason == (
        "subdocument_not_found: cut.output-file-receipt")
    assert {h: len(_pages(data)) for h, data in parts.items()} == {
        "output-file-invoice": 2, "output-file-statement": 2, "output-file-contract": 2}
    assert _pages(merged) == _pages(pdfs.three_documents())  # 6 pages, in order
    assert steps["join"].artifact.operation == "merge_pdf"
    iterations = sorted(s for s in steps if s.startswith("each_iter_") and s.endswith("_read"))
    assert iterations == [f"each_iter_{i}_read" for i in range(6)]
    collected = result.outputs["done"]["input-json-0"]["data"]
    assert [item["pages"] for item in collected] == [[p] for p in _pages(merged)]


def test_iterate_pages_runs_one_iteration_per_page(tmp_path: Path) -> None:
    wf = (Workflow.builder("pages")
          .block("upload", "start_document")
          .block("each", "for_each", config={"map_method": "iterate_pages"})
          .block("read", "parse", parent="each")
          .block("done", "end")
          .edge("upload", "each", source_handle="output-file-0", target_handle="fe-left-in")
          .edge("each", "done", source_handle="fe-right-out", target_handle="input-json-0")
          .build())
    with Engine(tmp_path / "run.db") as engine:
        result = engine.run(wf, {"upload": _write(tmp_path, pdfs.three_documents())})
        steps = {s.step_id for s in engine.client.workflows.steps.list(
            result.run_id, limit=100).data}
    assert result.ok, result.error
    assert {f"each_iter_{i}_read" for i in range(6)} <= steps
    collected = result.outputs["done"]["input-json-0"]["data"]
    assert len(collected) == 6 and "BANK STATEMENT" in collected[2]["pages"][0]


def test_split_by_key_through_the_engine(tmp_path: Path) -> None:
    wf = (Workflow.builder("per invoice")
          .block("upload", "start_document")
          .block("each", "for_each", config={"map_method": "split_by_key",
                                             "key": "invoice number"})
          .block("read", "extract", parent="each", config={"json_schema": {
              "type": "object", "properties": {"invoice_number": {"type": "string"},
                                               "total": {"type": "number"}}}})
          .block("done", "end")
          .edge("upload", "each", source_handle="output-file-0", target_handle="fe-left-in")
          .edge("each", "done", source_handle="fe-right-out", target_handle="input-json-0")
          .build())
    with Engine(tmp_path / "run.db") as engine:
        result = engine.run(wf, {"upload": _write(tmp_path, pdfs.invoices_by_number())})
        steps = {s.step_id for s in engine.client.workflows.steps.list(result.run_id).data}
    assert result.ok, result.error
    assert result.outputs["done"]["input-json-0"]["data"] == [
        {"invoice_number": "A-100", "total": 10}, {"invoice_number": "B-200", "total": 20},
        {"invoice_number": "C-300", "total": 30}]
    assert {"each_iter_0_read", "each_iter_2_read"} <= steps


def test_split_by_key_container_keeps_its_partition_artifact(tmp_path: Path) -> None:
    wf = (Workflow.builder("per invoice")
          .block("upload", "start_document")
          .block("each", "for_each", config={"map_method": "split_by_key",
                                             "key": "invoice number"})
          .block("read", "parse", parent="each")
          .edge("upload", "each", source_handle="output-file-0", target_handle="fe-left-in")
          .build())
    with Engine(tmp_path / "run.db") as engine:
        result = engine.run(wf, {"upload": _write(tmp_path, pdfs.invoices_by_number())})
        container = engine.client.workflows.steps.get("each", run_id=result.run_id)
        assert container.artifact is not None
        record = engine.client.api.get_artifact(container.artifact.id)
    assert result.ok, result.error
    assert container.artifact.operation == "partition"
    assert container.model == "offline"
    assert [(p["key"], p["pages"]) for p in record["output"]["partitions"]] == [
        ("A-100", [1, 2]), ("B-200", [3]), ("C-300", [4, 5])]
    assert len(container.handle_outputs["fe-right-out"].data) == 3
