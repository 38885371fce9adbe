"""The extract block: inputs, offline extraction, consensus, validation, review."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from blocks.extract import Extract, allow_null
from blocks.providers import MODEL_PROVIDER_SERVICE, Usage
from blocks.providers.scripted import ScriptedProvider
from blocks.registry import default_registry
from engine import Engine, Workflow
from engine.contracts.errors import PermanentError, TransientError
from engine.contracts.values import Payload
from engine.definition import BlockDef
from engine.graph import validate_workflow
from tests.blocks import pdfs
from tests.blocks.conftest import MakeCtx
from tests.blocks.harness import MemoryFileStore, parse, run_block

pytestmark = pytest.mark.anyio
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "invoice_number": {"type": "string"},
        "issue_date": {"type": "string", "format": "date"},
        "total_amount": {"type": "number"},
        "po_number": {"type": "string"},
    },
    "required": ["invoice_number", "total_amount"],
}


def _codes(raw: dict[str, Any]) -> set[str]:
    impl = Extract()
    block = BlockDef(id="read", type="extract", config=raw)
    return {d.code for d in impl.check(block, parse(impl, raw), "spec.blocks.read")}


def test_config_handles_and_checks() -> None:
    impl = Extract()
    cfg = parse(impl, {"json_schema": SCHEMA})
    assert impl.input_handles(cfg) == {"input-file-document": "file"}
    assert impl.input_aliases(cfg)["document"] == "input-file-document"
    assert impl.output_schema(cfg, "output-json-0") == SCHEMA
    multi = parse(impl, {"json_schema": SCHEMA, "inputs": [
        {"name": "context", "type": "json"}, {"name": "doc", "type": "file", "is_primary": True}]})
    assert list(impl.input_handles(multi)) == ["input-file-doc", "input-json-context"]
    assert _codes({"json_schema": SCHEMA}) == set()
    assert _codes({"json_schema": {"type": "objekt"}}) == {"INVALID_JSON_SCHEMA"}
    assert _codes({"json_schema": {"type": "array"}}) == {"INVALID_JSON_SCHEMA"}
    assert _codes({"json_schema": SCHEMA, "review": {"predicate": {"kind": "category_in",
                                                                   "categories": ["a"]}}}) == {
        "REVIEW_PREDICATE_NOT_APPLICABLE"}
    for bad in ({"json_schema": SCHEMA, "prompt": "x"}, {"json_schema": SCHEMA,
                                                         "n_consensus": 0}):
        with pytest.raises(ValueError):
            parse(impl, bad)
    assert parse(impl, {}).json_schema == {"type": "object"}
    assert _codes({}) == {"MISSING_JSON_SCHEMA"}
    assert impl.input_aliases(cfg)["input-file-0"] == "input-file-document"
    assert impl.input_aliases(multi)["input-file-0"] == "input-file-doc"


def test_an_invalid_schema_is_a_validation_diagnostic() -> None:
    wf = (Workflow.builder("bad schema")
          .block("upload", "start_document")
          .block("read", "extract", config={"json_schema": {"type": "object", "properties": {
              "total": {"type": "money"}}}, "review": {"predicate": {"kind": "sometimes"}}})
          .edge("upload", "read", source_handle="output-file-0", target_handle="document")
          .build())
    found = {(d.code, d.path) for d in validate_workflow(wf, default_registry())}
    assert ("INVALID_JSON_SCHEMA", "blocks[1](read).config.json_schema.properties.total.type") \
        in found
    assert ("UNKNOWN_REVIEW_PREDICATE", "blocks[1](read).config.review.predicate.kind") in found


def test_empty_inputs_is_a_diagnostic_not_a_crash() -> None:
    wf = (Workflow.builder("no inputs")
          .block("upload", "start_document")
          .block("read", "extract", config={"json_schema": SCHEMA, "inputs": []})
          .edge("upload", "read", source_handle="output-file-0", target_handle="document")
          .build())
    found = {(d.code, d.path) for d in validate_workflow(wf, default_registry())}
    assert ("MISSING_INPUTS", "blocks[1](read).config.inputs") in found


async def _extract(make_ctx: MakeCtx, config: dict[str, Any], inputs: dict[str, Any],
                   **ctx: Any) -> Any:
    return await run_block(Extract(), make_ctx("extract", "read", **ctx), config, inputs)


async def test_offline_extraction_from_a_pdf(make_ctx: MakeCtx, files: MemoryFileStore) -> None:
    doc = Payload.file(files.put_bytes(pdfs.invoice_colon(date="2026-03-12"), "inv.pdf"))
    result = await _extract(make_ctx, {"json_schema": SCHEMA}, {"input-file-document": doc})
    out = result.outputs["output-json-0"].data
    assert out == {"invoice_number": "INV-2026-0042", "issue_date": "2026-03-12",
                   "total_amount": 2125.0, "po_number": None}
    art = result.artifact
    assert art["operation"] == "extraction" and art["file"]["filename"] == "inv.pdf"
    assert art["consensus"]["likelihoods"] == {"invoice_number": 1.0, "issue_date": 1.0,
                                               "total_amount": 1.0, "po_number": 0.0}
    assert art["n_consensus"] == 1 and art["json_schema"] == SCHEMA
    assert result.model == "offline" and result.cost == {"total": 0.0, "currency": "USD"}
    assert result.review is None and art["review"] is None


async def test_json_inputs_as_source_and_context(make_ctx: MakeCtx,
                                                 files: MemoryFileStore) -> None:
    cfg = {"json_schema": SCHEMA, "inputs": [{"name": "record", "type": "json",
                                              "is_primary": True}]}
    result = await _extract(make_ctx, cfg, {"input-json-record": {
        "invoice": {"number": "Z-9"}, "total_amount": "1.200,50"}})
    assert result.outputs["output-json-0"].data["invoice_number"] == "Z-9"
    assert result.outputs["output-json-0"].data["total_amount"] == 1200.5
    scripted = ScriptedProvider({"read": {"invoice_number": "A", "total_amount": 1}})
    cfg = {"json_schema": SCHEMA, "inputs": [{"name": "doc", "type": "file"},
                                             {"name": "hints", "type": "json"}]}
    doc = Payload.file(files.put_bytes(b"Invoice number: A", "a.txt"))
    await _extract(make_ctx, cfg, {"input-file-doc": doc, "input-json-hints": {"k": 1}},
                   services={MODEL_PROVIDER_SERVICE: scripted})
    call = scripted.calls[0]
    assert call.arguments["pages"] == ["Invoice number: A"]
    assert call.arguments["extra"] == {"hints": {"k": 1}}
    assert call.context.step_id == "read" and call.context.run_id == "run_1"


async def test_consensus_likelihoods_and_confidence_review(make_ctx: MakeCtx,
                                                           files: MemoryFileStore) -> None:
    votes = [{"invoice_number": "A", "total_amount": 10},
             {"invoice_number": "A", "total_amount": 10},
             {"invoice_number": "A", "total_amount": 12}]
    usage = Usage(model="m", prompt_tokens=100, completion_tokens=10, cost=0.5)
    provider = ScriptedProvider({"read": votes}, usage=usage)
    cfg = {"json_schema": SCHEMA, "n_consensus": 3,
           "review": {"predicate": {"kind": "confidence_lt", "threshold": 0.9}}}
    doc = Payload.file(files.put_bytes(b"text", "a.txt"))
    result = await _extract(make_ctx, cfg, {"input-file-document": doc},
                            services={MODEL_PROVIDER_SERVICE: provider})
    assert result.outputs["output-json-0"].data == {"invoice_number": "A", "total_amount": 10}
    assert result.artifact["consensus"]["likelihoods"] == {"invoice_number": 1.0,
                                                           "total_amount": 0.6667}
    assert len(result.artifact["consensus"]["choices"]) == 3
    assert result.review is not None and result.review["triggered_by"] == "confidence_lt"
    assert result.review["evaluations"][0]["actual"] == 0.6667
    assert result.tokens == {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}


async def test_required_null_review(make_ctx: MakeCtx, files: MemoryFileStore) -> None:
    cfg = {"json_schema": SCHEMA, "review": {"predicate": {"kind": "any_required_field_null"}}}
    doc = Payload.file(files.put_bytes(b"Invoice number: A-1\nNothing else", "a.txt"))
    result = await _extract(make_ctx, cfg, {"input-file-document": doc})
    assert result.review == {"triggered_by": "any_required_field_null",
                             "requires_human_review": True,
                             "evaluations": [{"kind": "any_required_field_null",
                                              "triggered": True, "fields": ["total_amount"]}]}


async def test_schema_violations_fail_unless_reviewed(make_ctx: MakeCtx,
                                                      files: MemoryFileStore) -> None:
    doc = Payload.file(files.put_bytes(b"x", "a.txt"))
    bad = {"invoice_number": "A", "total_amount": "twelve"}
    provider = ScriptedProvider({"read": bad})
    services = {MODEL_PROVIDER_SERVICE: provider}
    with pytest.raises(PermanentError, match=r"at total_amount") as info:
        await _extract(make_ctx, {"json_schema": SCHEMA}, {"input-file-document": doc},
                       services=services)
    assert info.value.code == "OUTPUT_SCHEMA_MISMATCH"
    cfg = {"json_schema": SCHEMA, "review": {"predicate": {"kind": "validation_failed"}}}
    result = await _extract(make_ctx, cfg, {"input-file-document": doc}, services=services)
    assert result.review is not None and result.artifact["validation_errors"]
    nulls = ScriptedProvider({"read": {"invoice_number": None, "total_amount": None}})
    ok = await _extract(make_ctx, {"json_schema": SCHEMA}, {"input-file-document": doc},
                        services={MODEL_PROVIDER_SERVICE: nulls})
    assert ok.outputs["output-json-0"].data["total_amount"] is None  # nulls are allowed
    listed = ScriptedProvider({"read": [[1, 2]]})
    with pytest.raises(PermanentError, match="not an object"):
        await _extract(make_ctx, {"json_schema": SCHEMA}, {"input-file-document": doc},
                       services={MODEL_PROVIDER_SERVICE: listed})


async def test_provider_errors_name_the_block(make_ctx: MakeCtx, files: MemoryFileStore) -> None:
    doc = Payload.file(files.put_bytes(b"x", "a.txt"))
    provider = ScriptedProvider({"read": TransientError("endpoint down", code="X")})
    with pytest.raises(TransientError, match="extract block 'read': endpoint down"):
        await _extract(make_ctx, {"json_schema": SCHEMA}, {"input-file-document": doc},
                       services={MODEL_PROVIDER_SERVICE: provider})


@pytest.mark.parametrize(("data", "name"), [
    (b'{"invoice": {"number": "J-1"}, "total_amount": 5}', "data.json"),
    (b"invoice number,total amount\nJ-1,5\n", "rows.csv"),
])
async def test_json_and_csv_files(make_ctx: MakeCtx, files: MemoryFileStore, data: bytes,
                                  name: str) -> None:
    doc = Payload.file(files.put_bytes(data, name))
    result = await _extract(make_ctx, {"json_schema": SCHEMA}, {"input-file-document": doc})
    out = result.outputs["output-json-0"].data
    assert (out["invoice_number"], out["total_amount"]) == ("J-1", 5)


def test_allow_null() -> None:
    schema = allow_null({"type": "object", "properties": {"a": {"type": "string"}},
                         "required": ["a"]})
    assert schema["properties"]["a"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert schema["required"] == ["a"]


def test_review_pauses_the_run(tmp_path: Path) -> None:
    document = tmp_path / "letter.txt"
    document.write_text("Dear customer,\ninvoice number: Q-1\nKind regards")
    wf = (Workflow.builder("review")
          .block("upload", "start_document")
          .block("read", "extract", config={
              "json_schema": SCHEMA,
              "review": {"predicate": {"kind": "any_required_field_null"}}})
          .edge("upload", "read", source_handle="output-file-0", target_handle="document")
          .build())
    with Engine(tmp_path / "run.db") as engine:
        result = engine.run(wf, {"upload": document})
        step = engine.client.workflows.steps.get("read", run_id=result.run_id)
    assert result.status == "awaiting_review"
    assert step.lifecycle.status == "awaiting_review"
    assert step.handle_outputs["output-json-0"].data["invoice_number"] == "Q-1"
