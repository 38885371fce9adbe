"""merge_pdf: concatenation in handle order, images and text wrapped, join rule."""

from __future__ import annotations

import io
from typing import Any

import pytest
from pypdf import PdfReader

from blocks.merge_pdf import MergePdf
from blocks.pdf import split_pages
from engine.contracts.blocks import JoinMode
from engine.contracts.errors import ErrorStage, PermanentError
from engine.contracts.values import Payload
from engine.definition import BlockDef
from tests.blocks import pdfs
from tests.blocks.conftest import MakeCtx
from tests.blocks.harness import MemoryFileStore, parse, run_block

pytestmark = pytest.mark.anyio


def _texts(data: bytes) -> list[str]:
    return [p.extract_text() for p in PdfReader(io.BytesIO(data)).pages]


def test_handles_join_and_checks() -> None:
    impl = MergePdf()
    assert impl.join is JoinMode.ALL
    assert impl.input_handles(parse(impl, {})) == {"input-file-0": "file", "input-file-1": "file"}
    cfg = parse(impl, {"inputs": [{"name": "cover"}, {}, {"name": "tail"}]})
    assert list(impl.input_handles(cfg)) == ["input-file-cover", "input-file-1", "input-file-tail"]

    def codes(raw: dict[str, Any]) -> set[str]:
        block = BlockDef(id="m", type="merge_pdf", config=raw)
        return {d.code for d in impl.check(block, parse(impl, raw), "spec.blocks.m")}

    assert codes({"inputs": [{"name": "a"}, {"name": "a"}]}) == {"DUPLICATE_INPUT_HANDLE"}
    assert codes({"inputs": [{"name": "a", "type": "json"}]}) == {"INVALID_INPUT_TYPE"}


async def test_no_inputs_is_refused(make_ctx: MakeCtx) -> None:
    impl = MergePdf()
    with pytest.raises(PermanentError, match="received no document"):  # what it would do
        await run_block(impl, make_ctx("merge_pdf"), {"inputs": []}, {})
    raw = {"inputs": []}
    [error] = impl.check(BlockDef(id="m", type="merge_pdf", config=raw), parse(impl, raw),
                         "spec.blocks.m")
    assert (error.code, error.severity) == ("MISSING_INPUTS", "error")
    assert error.path == "spec.blocks.m.config.inputs"
    assert error.message.startswith("merge_pdf block 'm' declares no inputs (inputs: [])")
    assert "remove inputs to use the default input-file-0 and input-file-1" in error.fix


async def test_merges_in_declared_order(make_ctx: MakeCtx, files: MemoryFileStore) -> None:
    parts = split_pages(pdfs.three_documents())
    first = files.put_bytes(pdfs.pages(1, "cover"), "cover.pdf")
    rest = files.put_bytes(pdfs.three_documents(), "bundle.pdf")
    image = files.put_bytes(pdfs.png(), "stamp.png")
    note = files.put_bytes(b"handwritten note", "note.txt")
    cfg = {"inputs": [{"name": "b"}, {"name": "a"}, {"name": "img"}, {"name": "txt"}]}
    result = await run_block(MergePdf(), make_ctx("merge_pdf", "join"), cfg, {
        "input-file-a": Payload.file(first), "input-file-b": Payload.file(rest),
        "input-file-img": Payload.file(image), "input-file-txt": Payload.file(note)})
    out = result.outputs["output-file-0"].document
    assert out is not None and out.filename == "bundle_merged.pdf"
    texts = _texts(files.read_bytes(out))
    assert len(texts) == 9 and texts[6] == "cover 1" and "handwritten note" in texts[8]
    assert texts[:6] == [_texts(p)[0] for p in parts]
    assert [r["pages"] for r in result.artifact["inputs"]] == [6, 1, 1, 1]
    assert result.artifact["page_count"] == 9


async def test_bad_input_names_the_file(make_ctx: MakeCtx, files: MemoryFileStore) -> None:
    bad = files.put_bytes(b"%PDF-1.4 nope", "broken.pdf", "application/pdf")
    good = files.put_bytes(pdfs.pages(1), "ok.pdf")
    with pytest.raises(PermanentError, match="'broken.pdf'.*corrupt") as info:
        await run_block(MergePdf(), make_ctx("merge_pdf", "join"), {},
                        {"input-file-0": Payload.file(good), "input-file-1": Payload.file(bad)})
    assert info.value.stage is ErrorStage.DOCUMENT_FETCH
    with pytest.raises(PermanentError, match="received no document"):
        await run_block(MergePdf(), make_ctx("merge_pdf", "join"), {}, {})
