"""blocks.document_worker: PDF work in a budgeted subprocess, and its safe codec."""

from __future__ import annotations

import time
import zlib

import anyio
import pytest

from blocks.document_worker import FUNCTIONS, decode, encode, run_pdf_job
from blocks.pdf import DocumentProblem, FormField
from engine.contracts.policy import DocumentLimits
from tests.blocks.pdfs import invoice_colon

LIMITS = DocumentLimits()


def job(fn: str, *args: object, limits: DocumentLimits = LIMITS, confine: bool = False
        ) -> object:
    return anyio.run(lambda: run_pdf_job(fn, *args, limits=limits, confine=confine))


def shared_stream_pdf(pages: int, inflated: int) -> bytes:
    """Pages that all draw one compressed content stream (cheap to write, costly to read)."""
    operator = b"BT /F1 1 Tf 1 0 0 1 10 10 Tm (a) Tj ET\n"
    content = zlib.compress(operator * (inflated // len(operator)), 9)
    kids = b" ".join(b"%d 0 R" % (4 + i) for i in range(pages))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages),
               b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream"
               % (len(content), content)]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R >>"
                ] * pages
    out, offsets = bytearray(b"%PDF-1.7\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


def test_codec_round_trip() -> None:
    field = FormField(name="n", kind="text", value=None, options=["a"], description="d")
    value = {"pdf": b"%PDF-1.7\x00\xff", "pages": [b"a", b"b"], "n": [1, 2.5, None, True],
             "field": field, "nested": {"$b": "not a blob"}}
    assert decode(encode(value)) == value


@pytest.mark.parametrize("frame", [b"", b"\x00\x00\x00\x05{}", b"\x00\x00\x00\x02{}extra",
                                   b'\x00\x00\x00\x1d{"value": {"$x": 1}, "blobs": []}'])
def test_codec_refuses_malformed_frames(frame: bytes) -> None:
    with pytest.raises((ValueError, KeyError)):
        decode(frame)


def test_jobs_run_the_pdf_functions() -> None:
    pdf = invoice_colon()
    texts = job("page_texts", pdf)
    assert isinstance(texts, list) and "INV-2026-0042" in texts[0]
    assert job("page_count", pdf) == 1
    assert job("form_fields", pdf) == []
    assert {"page_texts", "fill_form", "merge_pdfs"} <= FUNCTIONS


def test_unusable_documents_are_document_problems() -> None:
    with pytest.raises(DocumentProblem) as caught:
        job("page_texts", b"not a pdf at all")
    assert caught.value.code == "NOT_A_PDF"
    with pytest.raises(DocumentProblem, match="unknown function"):
        job("open", b"%PDF")


def test_shared_content_streams_count_once_per_page() -> None:
    bomb = shared_stream_pdf(pages=80, inflated=1_500_000)
    assert len(bomb) < 15_000
    started = time.monotonic()
    with pytest.raises(DocumentProblem) as caught:
        job("page_texts", bomb, limits=DocumentLimits.shared())
    assert caught.value.code == "DOCUMENT_TOO_LARGE"
    assert time.monotonic() - started < 10


def test_page_budget() -> None:
    with pytest.raises(DocumentProblem, match="more than the 3 allowed"):
        job("page_count", shared_stream_pdf(pages=5, inflated=100),
            limits=DocumentLimits(max_pages=3))


def test_wall_time_budget_kills_the_worker() -> None:
    slow = shared_stream_pdf(pages=1, inflated=3_000_000)
    started = time.monotonic()
    with pytest.raises(DocumentProblem) as caught:
        job("page_texts", slow, limits=DocumentLimits(wall_seconds=1))
    assert caught.value.code == "DOCUMENT_TOO_COMPLEX" and "1 s" in caught.value.problem
    assert time.monotonic() - started < 5


def test_cancel_kills_the_job_at_once() -> None:
    slow = shared_stream_pdf(pages=1, inflated=3_000_000)

    async def main() -> float:
        started = time.monotonic()
        with anyio.move_on_after(0.5):
            await run_pdf_job("page_texts", slow, limits=LIMITS)
        return time.monotonic() - started

    assert anyio.run(main) - 0.5 < 2  # from the cancel to the worker's end


def test_confined_jobs_work() -> None:
    assert job("page_count", invoice_colon(), confine=True) == 1
