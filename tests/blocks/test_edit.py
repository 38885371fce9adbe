"""The edit block: filling AcroForm fields from JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from blocks.edit import Edit
from blocks.pdf import form_fields
from blocks.providers import MODEL_PROVIDER_SERVICE
from blocks.providers.scripted import ScriptedProvider
from engine import Engine, Workflow
from engine.contracts.errors import ErrorStage, PermanentError
from engine.contracts.values import Payload
from engine.definition import BlockDef
from tests.blocks import pdfs
from tests.blocks.conftest import MakeCtx
from tests.blocks.harness import MemoryFileStore, parse, run_block

pytestmark = pytest.mark.anyio
FIELDS = [("full_name", "text"), ("Email Address", "text"), ("amount", "text"),
          ("accept_terms", "checkbox"), ("notes", "text")]


def _values(data: bytes) -> dict[str, Any]:
    return {f.name: f.value for f in form_fields(data)}


def test_handles_follow_use_template() -> None:
    impl = Edit()
    assert impl.input_handles(parse(impl, {})) == {
        "input-file-0": "file", "input-json-0": "json", "input-json-1": "json"}
    tpl = parse(impl, {"use_template": True, "template_id": "form.pdf"})
    assert impl.input_handles(tpl) == {"input-json-0": "json"}
    assert impl.input_aliases(parse(impl, {}))["document"] == "input-file-0"
    block = BlockDef(id="fill", type="edit", config={"use_template": True})
    assert [d.code for d in impl.check(block, parse(impl, {"use_template": True}), "p")] == [
        "MISSING_TEMPLATE"]


async def test_fills_text_and_checkbox_fields(make_ctx: MakeCtx, files: MemoryFileStore) -> None:
    form = Payload.file(files.put_bytes(pdfs.form(FIELDS), "application.pdf"))
    result = await run_block(Edit(), make_ctx("edit", "fill"), {"instructions": "fill it"}, {
        "input-file-0": form,
        "input-json-0": {"applicant": {"full_name": "Ada Lovelace", "email": "ada@example.com"}},
        "input-json-1": {"amount": 1250.0, "accept_terms": True, "ignored": {"x": 1}}})
    out = result.outputs["output-file-0"].document
    assert out is not None and out.filename == "application_filled.pdf"
    assert _values(files.read_bytes(out)) == {
        "full_name": "Ada Lovelace", "Email Address": "ada@example.com", "amount": "1250",
        "accept_terms": "Yes", "notes": None}
    art = result.artifact
    assert art["operation"] == "edit" and art["output"]["filled_count"] == 4
    assert art["output"]["total_fields"] == 5 and art["instructions"] == "fill it"
    assert {d["key"]: d["value"] for d in art["output"]["form_data"]}["amount"] == "1250"


async def test_provider_mapping_is_used(make_ctx: MakeCtx, files: MemoryFileStore) -> None:
    provider = ScriptedProvider({"fill": {"notes": "from the model", "nope": "x",
                                          "accept_terms": "no"}})
    form = Payload.file(files.put_bytes(pdfs.form(FIELDS), "f.pdf"))
    result = await run_block(Edit(), make_ctx("edit", "fill",
                                              services={MODEL_PROVIDER_SERVICE: provider}),
                             {}, {"input-file-0": form, "input-json-0": {"a": 1}})
    values = _values(files.read_bytes(result.outputs["output-file-0"].document))
    assert values["notes"] == "from the model" and values["accept_terms"] == "Off"
    assert provider.calls[0].arguments["fields"] == [n for n, _ in FIELDS]


async def test_flat_pdfs_and_templates(make_ctx: MakeCtx, files: MemoryFileStore,
                                       tmp_path: Path) -> None:
    flat = Payload.file(files.put_bytes(pdfs.invoice_colon(), "flat.pdf"))
    with pytest.raises(PermanentError, match="no fillable form fields") as info:
        await run_block(Edit(), make_ctx("edit", "fill"), {}, {"input-file-0": flat})
    assert info.value.code == "NO_FORM_FIELDS"
    template = tmp_path / "template.pdf"
    template.write_bytes(pdfs.form(FIELDS))
    cfg = {"use_template": True, "template_id": str(template)}
    result = await run_block(Edit(), make_ctx("edit", "fill"), cfg,
                             {"input-json-0": {"full_name": "Grace Hopper"}})
    assert _values(files.read_bytes(result.outputs["output-file-0"].document))["full_name"] == (
        "Grace Hopper")
    with pytest.raises(PermanentError, match="cannot read the template") as info:
        await run_block(Edit(), make_ctx("edit", "fill"),
                        {"use_template": True, "template_id": str(tmp_path / "missing.pdf")},
                        {"input-json-0": {}})
    assert info.value.stage is ErrorStage.DOCUMENT_FETCH


def test_edit_through_the_engine(tmp_path: Path) -> None:
    form = tmp_path / "form.pdf"
    form.write_bytes(pdfs.form(FIELDS))
    wf = (Workflow.builder("fill")
          .block("upload", "start_document")
          .block("data", "start_json")
          .block("fill", "edit")
          .edge("upload", "fill", source_handle="output-file-0", target_handle="input-file-0")
          .edge("data", "fill", source_handle="output-json-0", target_handle="input-json-0")
          .build())
    with Engine(tmp_path / "run.db") as engine:
        result = engine.run(wf, {"upload": form, "data": {"full name": "Ada", "terms": "x"}})
        step = engine.client.workflows.steps.get("fill", run_id=result.run_id)
        data = engine.store.files.read_bytes(step.handle_outputs["output-file-0"].document.id)
    assert result.ok, result.error
    assert _values(data)["full_name"] == "Ada" and step.artifact.operation == "edit"
