"""The parse block, and bad documents through the real engine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from blocks.parse import OUTPUT_SCHEMA, Parse
from blocks.providers import MODEL_PROVIDER_SERVICE, Usage
from blocks.providers.scripted import ScriptedProvider
from engine import Engine, Workflow
from engine.contracts.errors import ErrorStage, PermanentError
from engine.contracts.values import Payload
from tests.blocks import pdfs
from tests.blocks.conftest import MakeCtx
from tests.blocks.harness import MemoryFileStore, parse, run_block

pytestmark = pytest.mark.anyio


def _file(files: MemoryFileStore, data: bytes, name: str, mime: str = "") -> Payload:
    return Payload.file(files.put_bytes(data, name, mime or None))


async def _parse(make_ctx: MakeCtx, payload: Payload, **ctx: Any) -> Any:
    return await run_block(Parse(), make_ctx("parse", "read", **ctx), {}, {"input-file-0": payload})


def test_parse_handles_and_config() -> None:
    impl = Parse()
    cfg = parse(impl, {"table_parsing_format": "markdown", "instructions": "keep tables"})
    assert impl.input_handles(cfg) == {"input-file-0": "file"}
    assert impl.output_handles(cfg) == {"output-json-0": "json"}
    assert impl.input_aliases(cfg)["document"] == "input-file-0"
    assert impl.output_schema(cfg, "output-json-0") == OUTPUT_SCHEMA
    assert parse(impl, {}).table_parsing_format == "html"
    with pytest.raises(ValueError):
        parse(impl, {"table_parsing_format": "csv"})


async def test_parse_pdf_pages_keep_columns(make_ctx: MakeCtx, files: MemoryFileStore) -> None:
    result = await _parse(make_ctx, _file(files, pdfs.three_documents(), "bundle.pdf"))
    out = result.outputs["output-json-0"].data
    assert len(out["pages"]) == 6 and "Invoice Number: INV-1" in out["pages"][0]
    assert out["text"] == "\n\n".join(out["pages"])
    table = (await _parse(make_ctx, _file(files, pdfs.invoice_colon(), "i.pdf"))).outputs
    assert "Widgets" in table["output-json-0"].data["text"]
    assert any("Qty  " in line for line in table["output-json-0"].data["pages"][0].splitlines())
    assert result.artifact["operation"] == "parse" and result.artifact["page_count"] == 6
    assert result.tokens == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


@pytest.mark.parametrize(("data", "name", "pages"), [
    (b"# Title\n\nSome *markdown*", "notes.md", ["# Title\n\nSome *markdown*"]),
    (b"a,b\n1,2\n", "table.csv", ["a,b\n1,2\n"]),
    (b'{"k": 1}', "data.json", ['{"k": 1}']),
    (b"page one\fpage two", "letter.txt", ["page one", "page two"]),
    ("caf\u00e9".encode("latin-1"), "latin.txt", ["caf\u00e9"]),
])
async def test_parse_text_like_files(make_ctx: MakeCtx, files: MemoryFileStore, data: bytes,
                                     name: str, pages: list[str]) -> None:
    result = await _parse(make_ctx, _file(files, data, name))
    assert result.outputs["output-json-0"].data["pages"] == pages


async def test_images_need_vision(make_ctx: MakeCtx, files: MemoryFileStore) -> None:
    image = _file(files, pdfs.png(), "scan.png")
    with pytest.raises(PermanentError, match="needs a vision-capable model") as info:
        await _parse(make_ctx, image)
    assert info.value.code == "VISION_REQUIRED"
    provider = ScriptedProvider({"read": "RECEIPT\nTotal 3.00"},
                                usage=Usage(model="vision-1", prompt_tokens=800,
                                            completion_tokens=12, cost=0.001))
    result = await _parse(make_ctx, image, services={MODEL_PROVIDER_SERVICE: provider})
    assert result.outputs["output-json-0"].data["pages"] == ["RECEIPT\nTotal 3.00"]
    assert result.model == "vision-1" and result.tokens["total_tokens"] == 812
    assert result.cost == {"total": 0.001, "currency": "USD"}
    assert provider.calls[0].method == "describe_image"


@pytest.mark.parametrize(("data", "code", "message"), [
    (b"", "DOCUMENT_EMPTY", "is empty"),
    (b"%PDF-1.4\n garbage garbage", "PDF_CORRUPT", "corrupt"),
    (pdfs.encrypted(), "PDF_ENCRYPTED", "Remove the password"),
])
async def test_bad_pdfs_fail_at_document_fetch(make_ctx: MakeCtx, files: MemoryFileStore,
                                               data: bytes, code: str, message: str) -> None:
    with pytest.raises(PermanentError, match=message) as info:
        await _parse(make_ctx, _file(files, data, "bad.pdf", "application/pdf"))
    assert info.value.stage is ErrorStage.DOCUMENT_FETCH and info.value.code == code
    assert "parse block 'read'" in info.value.message


def test_a_corrupt_pdf_leaves_stderr_clean() -> None:
    """pypdf's repair warnings do not leak onto the terminal of `stepwell run`."""
    script = ("from blocks.pdf import DocumentProblem, open_pdf\n"
              "try:\n    open_pdf(b'%PDF-1.7\\n\\x00\\x01 broken')\n"
              "except DocumentProblem as exc:\n    print(exc.code)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], check=True)
    assert done.stdout.strip() == "PDF_CORRUPT" and done.stderr == ""


async def test_unsupported_and_missing_inputs(make_ctx: MakeCtx, files: MemoryFileStore) -> None:
    with pytest.raises(PermanentError, match="cannot read") as info:
        await _parse(make_ctx, _file(files, b"PK\x03\x04\x00\x00", "deck.pptx"))
    assert info.value.code == "UNSUPPORTED_DOCUMENT_TYPE"
    with pytest.raises(PermanentError, match="received JSON") as info:
        await _parse(make_ctx, Payload.json({"a": 1}))
    assert info.value.stage is ErrorStage.INPUT_COLLECTION


async def test_owner_password_only_pdf_opens(make_ctx: MakeCtx, files: MemoryFileStore) -> None:
    result = await _parse(make_ctx, _file(files, pdfs.encrypted(user_password=""), "o.pdf"))
    assert result.outputs["output-json-0"].data["pages"] == ["page 1"]


# ----------------------------------------------------------------------------- engine


def _workflow() -> Workflow:
    return (Workflow.builder("bad input")
            .block("upload", "start_document")
            .block("read", "parse")
            .block("after", "function", config={"output_schema": {"type": "object"},
                                                "code": "def transform(d):\n    return {}\n"})
            .block("other", "merge_pdf", config={"inputs": [{"name": 0}]})
            .edge("upload", "read", source_handle="output-file-0", target_handle="input-file-0")
            .edge("read", "after", source_handle="output-json-0", target_handle="input-json-0")
            .edge("upload", "other", source_handle="output-file-0", target_handle="input-file-0")
            .build())


@pytest.mark.parametrize(("data", "code"), [
    (b"", "DOCUMENT_EMPTY"), (b"%PDF-1.7\n\x00\x01 broken", "PDF_CORRUPT"),
    (pdfs.encrypted(), "PDF_ENCRYPTED"),
])
def test_bad_documents_through_the_engine(tmp_path: Path, data: bytes, code: str) -> None:
    document = tmp_path / "broken.pdf"
    document.write_bytes(data)
    with Engine(tmp_path / "run.db") as engine:
        result = engine.run(_workflow(), {"upload": document})
        steps = {s.step_id: s for s in engine.client.workflows.steps.list(result.run_id).data}
    assert result.status == "error" and result.failing_step_id in ("read", "other")
    read = steps["read"].lifecycle
    assert (read.status, read.stage, read.category) == ("error", "document_fetch", "permanent")
    assert read.details.error_code == code and "broken.pdf" in read.message
    assert steps["read"].retry_count == 0
    assert steps["after"].lifecycle.status == "skipped"
    assert steps["after"].lifecycle.reason == "upstream_error: read"
    assert steps["other"].lifecycle.status == "error"  # the independent branch ran too


def test_parse_a_pdf_through_the_engine(tmp_path: Path) -> None:
    document = tmp_path / "bundle.pdf"
    document.write_bytes(pdfs.three_documents())
    with Engine(tmp_path / "run.db") as engine:
        result = engine.run(_workflow(), {"upload": document})
        step = engine.client.workflows.steps.get("read", run_id=result.run_id)
    assert result.ok, result.error
    assert len(step.handle_outputs["output-json-0"].data["pages"]) == 6
    assert step.artifact.operation == "parse"
