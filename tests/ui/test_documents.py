"""PDF pages for the UI: rendered in a budgeted subprocess, capped in size, cached by bytes."""

from __future__ import annotations

import io
import resource
import struct
import time
from typing import Any

from engine.contracts.policy import DocumentLimits, SecurityPolicy
from engine.server.ui import documents
from engine.server.ui.documents import MAX_SIDE_PX, PageRenderer


class Files:
    """A file store holding PDFs by id."""

    def __init__(self, **pdfs: bytes) -> None:
        self.pdfs = pdfs

    def read_bytes(self, ref: Any) -> bytes:
        """The PDF of ``ref.id``."""
        return self.pdfs[ref.id]


def _pdf(*sizes: tuple[float, float]) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for width, height in sizes:
        writer.add_blank_page(width=width, height=height)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])


def test_a_huge_page_is_rendered_capped_outside_the_server() -> None:
    renderer = PageRenderer(Files(huge=_pdf((7200, 7200)), a4=_pdf((595, 842), (842, 595))))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    png = renderer.page_png("huge", 0)
    assert png is not None and max(_size(png)) <= MAX_SIDE_PX  # not 10,800 px
    assert time.monotonic() - started < 20
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100, grown_mb  # the bitmap lived in the worker
    assert renderer.page_count("a4") == 2
    assert _size(renderer.page_png("a4", 0) or b"") == (893, 1263)  # SCALE, unchanged
    assert _size(renderer.page_png("a4", 1) or b"") == (1263, 893)
    assert renderer.page_png("a4", 2) is None


def test_a_pdf_over_the_budget_shows_no_pages() -> None:
    policy = SecurityPolicy(documents=DocumentLimits(max_pages=1))
    renderer = PageRenderer(Files(two=_pdf((100, 100), (100, 100)), bad=b"%PDF-1.4 junk"),
                            policy)
    assert renderer.page_count("two") == 0 and renderer.page_png("two", 0) is None
    assert renderer.page_count("bad") == 0


def test_the_cache_is_bounded_by_bytes(monkeypatch: Any) -> None:
    monkeypatch.setattr(documents, "CACHE_BYTES", 1)
    renderer = PageRenderer(Files(a4=_pdf((595, 842), (595, 842))))
    assert renderer.page_png("a4", 0) and renderer.page_png("a4", 1)
    assert len(renderer._cache) == 1
