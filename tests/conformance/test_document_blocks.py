"""The Blocks page's document blocks, run offline as documented (Extract, Parse, Split,
Classifier, Edit, Review Gates, For Each over pages and keys, API Call), plus the CLI's
minimum spec. Each workflow names its source."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fpdf import FPDF
from pypdf import PdfReader

from engine.contracts.values import FileRef
from tests.blocks import pdfs
from tests.blocks.loopback import LoopbackServer, Reply
from tests.conformance.runner import (
    artifact,
    close,
    diagnostics,
    edited,
    errors,
    fired,
    output,
    pdf_document,
    reason,
    run,
    status,
    text_document,
)

INVOICE_TEXT = """INVOICE
Invoice Number: INV-2026-0042
Invoice Date: 2026-03-12

Vendor
Name: Acme Corp
Address: 12 Main St, Springfield

Total Amount: 1,250.00
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def results() -> Iterator[list[Any]]:
    opened: list[Any] = []
    yield opened
    for result in opened:
        close(result)


def _run(results: list[Any], folder: Path, workflow: Any, inputs: dict[str, Any],
         **options: Any) -> Any:
    result = run(folder / "stepwell.db", workflow, inputs, **options)
    results.append(result)
    return result


def _pdf(pages: list[list[str]]) -> bytes:
    pdf = FPDF()
    pdf.set_auto_page_break(False)
    pdf.set_font("helvetica", size=11)
    for lines in pages:
        pdf.add_page()
        for line in lines:
            pdf.cell(text=line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _file_bytes(result: Any, step_id: str, handle: str) -> bytes:
    doc = result.step(step_id).handle_outputs[handle].document
    ref = FileRef(id=doc.id, filename=doc.filename, mime_type=doc.mime_type)
    return bytes(result.engine.store.files.read_bytes(ref))


# ----------------------------------------------------------------------------- extract


def test_extract_schema_example(results: list[Any], folder: Path) -> None:
    assert errors("extract") == []
    doc = text_document(folder, "invoice.txt", INVOICE_TEXT)
    result = _run(results, folder, "extract", {"start": doc})
    assert result.ok, result.error
    assert output(result, "extract") == {
        "invoice_number": "INV-2026-0042", "total_amount": 1250.0,
        "vendor": {"name": "Acme Corp", "address": "12 Main St, Springfield"}}
    record = artifact(result, "extract")
    assert record["operation"] == "extraction"


def test_extract_consensus_and_additional_inputs(results: list[Any], folder: Path) -> None:
    assert errors("extract_consensus_inputs") == []
    doc = text_document(folder, "invoice.txt", INVOICE_TEXT)
    result = _run(results, folder, "extract_consensus_inputs",
                  {"start": doc, "customer": {"customer_id": "cust_123"}})
    assert result.ok, result.error
    assert output(result, "extract") == {"invoice_number": "INV-2026-0042",
                                         "total_amount": 1250.0}
    record = artifact(result, "extract")
    assert record["n_consensus"] == 3
    assert record["consensus"]["likelihoods"] == {"invoice_number": 1.0, "total_amount": 1.0}


def test_cli_minimum_spec_validates_with_a_warning(results: list[Any], folder: Path) -> None:
    found = diagnostics("cli_minimum")
    assert [d for d in found if d.severity == "error"] == []
    (warning,) = [d for d in found if d.code == "MISSING_JSON_SCHEMA"]
    assert warning.severity == "warning"
    assert warning.path == "spec.blocks.extract.config.json_schema"
    doc = text_document(folder, "invoice.txt", INVOICE_TEXT)
    result = _run(results, folder, "cli_minimum", {"start": doc})
    assert result.ok, result.error
    assert output(result, "extract") == {}


def test_review_gate_pauses_on_a_missing_required_field(results: list[Any],
                                                       folder: Path) -> None:
    assert errors("review_gate") == []
    complete = text_document(folder, "full.txt", "Invoice Number: INV-9\nTotal: 12.50\n")
    done = _run(results, folder, "review_gate", {"start": complete})
    assert done.ok, done.error
    assert output(done, "extract") == {"invoice_number": "INV-9", "total": 12.5}
    partial = text_document(folder, "partial.txt", "Invoice Number: INV-9\n")
    waiting = _run(results, folder, "review_gate", {"start": partial})
    assert waiting.status == "awaiting_review"
    assert waiting.waiting_for == ["extract"]


# ----------------------------------------------------------------------------- parse, split


def test_parse_gives_one_entry_per_page(results: list[Any], folder: Path) -> None:
    doc = text_document(folder, "two.txt", "Page one\fPage two")
    result = _run(results, folder, "parse", {"start": doc})
    assert result.ok, result.error
    assert output(result, "parse") == {"pages": ["Page one", "Page two"],
                                       "text": "Page one\n\nPage two"}


BUNDLE = [["INVOICE", "Invoice Number: INV-7", "Line items: 3", "Total: 300.00"],
          ["SERVICE AGREEMENT", "Terms and conditions of this legal agreement",
           "Signatures of both parties"],
          ["RECEIPT", "Payment receipt", "Certificate of origin attached"]]


def test_split_subdocument_example(results: list[Any], folder: Path) -> None:
    assert errors("split") == []
    doc = pdf_document(folder, "bundle.pdf", _pdf(BUNDLE))
    result = _run(results, folder, "split", {"start": doc})
    assert result.ok, result.error
    assert fired(result, "split") == ["output-file-contract", "output-file-invoice",
                                      "output-file-supporting-documents"]
    assert output(result, "read_invoice")["pages"] == ["\n".join(BUNDLE[0])]
    assert output(result, "read_contract")["pages"] == ["\n".join(BUNDLE[1])]
    assert output(result, "read_supporting")["pages"] == ["\n".join(BUNDLE[2])]


def test_split_skips_a_subdocument_that_is_not_there(results: list[Any],
                                                     folder: Path) -> None:
    doc = pdf_document(folder, "bundle.pdf", _pdf(BUNDLE[:2]))
    result = _run(results, folder, "split", {"start": doc})
    assert result.ok, result.error
    assert status(result, "read_supporting") == "skipped"
    assert reason(result, "read_supporting") == (
        "subdocument_not_found: split.output-file-supporting-documents")


# ----------------------------------------------------------------------------- classifier


@pytest.mark.parametrize(("document", "chosen"), [
    (pdfs.receipt(), "receipt"),
    (pdfs.invoice_colon(), "invoice"),
])
def test_classifier_routes_to_exactly_one_category(results: list[Any], folder: Path,
                                                   document: bytes, chosen: str) -> None:
    assert errors("classifier") == []
    result = _run(results, folder, "classifier",
                  {"start": pdf_document(folder, "doc.pdf", document)})
    assert result.ok, result.error
    assert fired(result, "classify") == [f"output-file-{chosen}"]
    for other in {"invoice", "receipt", "contract"} - {chosen}:
        assert reason(result, f"{other}_fields") == (
            f"category_not_selected: classify.output-file-{other}")


# ----------------------------------------------------------------------------- edit


def test_edit_document_mode_fills_the_form(results: list[Any], folder: Path) -> None:
    assert errors("edit") == []
    form = pdf_document(folder, "form.pdf", pdfs.form([("name", "text"), ("address", "text")]))
    instructions = {"name": "Acme Corp", "address": "12 Main St",
                    "notes": "Leave signature fields blank"}
    result = _run(results, folder, "edit", {"form": form, "instructions": instructions})
    assert result.ok, result.error
    filled = PdfReader(io.BytesIO(_file_bytes(result, "fill", "output-file-0")))
    values = {k: v.get("/V") for k, v in (filled.get_fields() or {}).items()}
    assert values == {"name": "Acme Corp", "address": "12 Main St"}


# ----------------------------------------------------------------------------- for each


def test_for_each_split_by_page_example(results: list[Any], folder: Path) -> None:
    assert errors("for_each_pages") == []
    doc = pdf_document(folder, "three.pdf", pdfs.pages(3))
    result = _run(results, folder, "for_each_pages", {"upload": doc})
    assert result.ok, result.error
    parsed = output(result, "each_page", "fe-right-out")
    assert [p["pages"] for p in parsed] == [["page 1"], ["page 2"], ["page 3"]]


def test_for_each_split_page_range_makes_chunks(results: list[Any], folder: Path) -> None:
    wf = edited("for_each_pages", "each_page", split_page_range=2,
                reduce_concat_item_key="pages")
    doc = pdf_document(folder, "five.pdf", pdfs.pages(5))
    result = _run(results, folder, wf, {"upload": doc})
    assert result.ok, result.error
    chunks = output(result, "each_page", "fe-right-out")
    assert [(c["pages"], len(c["text"].split("\n\n"))) for c in chunks] == [
        ("1-2", 2), ("3-4", 2), ("5", 1)]


def test_for_each_split_by_key_example(results: list[Any], folder: Path) -> None:
    assert errors("for_each_by_key") == []
    doc = pdf_document(folder, "invoices.pdf", pdfs.invoices_by_number())
    result = _run(results, folder, "for_each_by_key", {"bundle": doc})
    assert result.ok, result.error
    assert output(result, "per_invoice", "fe-right-out") == [
        {"invoice_id": "A-100", "total": 10.0},
        {"invoice_id": "B-200", "total": 20.0},
        {"invoice_id": "C-300", "total": 30.0}]


def test_for_each_map_phase_review_example_validates(results: list[Any],
                                                     folder: Path) -> None:
    assert errors("for_each_review") == []
    doc = pdf_document(folder, "invoices.pdf", pdfs.invoices_by_number())
    result = _run(results, folder, "for_each_review", {"bundle": doc})
    record = artifact(result, "per_invoice")
    fires = record["review"]["requires_human_review"]
    assert result.status == ("awaiting_review" if fires else "completed")


# ----------------------------------------------------------------------------- API call


def test_api_call_example_runs(results: list[Any], folder: Path) -> None:
    assert errors("api_call") == []
    with LoopbackServer([Reply(200, {"valid": True})]) as server:
        result = _run(results, folder, "api_call",
                      {"invoice": {"invoice_number": "INV-1", "total_amount": 99.5}},
                      env={"VALIDATION_API": server.url.rstrip("/"), "API_KEY": "k"})
        assert result.ok, result.error
        assert output(result, "validate") == {"valid": True}
        assert server.requests[0].path == "/validate"


@pytest.mark.xfail(strict=True, reason=(
    "blocks/api_call.py maps field_mappings {source_key: target_key} as Retab's CLI runner "
    "does; the Blocks page describes {target: 'data.source.path'} (docs/compatibility.md)"))
def test_api_call_body_follows_the_docs_field_mappings(results: list[Any],
                                                       folder: Path) -> None:
    with LoopbackServer([Reply(200, {"valid": True})]) as server:
        _run(results, folder, "api_call",
             {"invoice": {"invoice_number": "INV-1", "total_amount": 99.5}},
             env={"VALIDATION_API": server.url.rstrip("/"), "API_KEY": "k"})
        assert server.requests[0].json == {"invoice_number": "INV-1", "amount": 99.5}


# ----------------------------------------------------------------------------- schemas


def test_required_keys_without_properties_are_extracted_untyped(results: list[Any],
                                                                folder: Path) -> None:
    wf = edited("extract", "extract", json_schema={
        "type": "object", "required": ["invoice_number", "total", "po_number"]})
    doc = text_document(folder, "invoice.txt", "Invoice Number: INV-9\nTotal: 12.50\n")
    result = _run(results, folder, wf, {"start": doc})
    assert result.ok, result.error
    assert output(result, "extract") == {"invoice_number": "INV-9", "total": 12.5,
                                         "po_number": None}


def test_schema_mismatch_names_the_key_path(results: list[Any], folder: Path) -> None:
    wf = edited("extract", "extract", json_schema={"type": "object", "properties": {
        "vendor": {"type": "object", "properties": {
            "name": {"type": "string", "pattern": "^[a-z]+$"}}}}})
    doc = text_document(folder, "invoice.txt", INVOICE_TEXT)
    result = _run(results, folder, wf, {"start": doc})
    assert result.status == "error"
    error = result.error or ""
    assert "at vendor.name: 'Acme Corp' does not match" in error
    assert "any of the given schemas" not in error
