"""PDF pages as PNG in a killable subprocess: ``python -P -m blocks.page_worker``.

The web UI's half of :mod:`blocks.document_worker`: started by
:func:`blocks.sandbox.run_worker` under the same budgets (wall time, CPU, memory,
isolation) and speaking the same frames (:func:`blocks.document_worker.encode` and
``decode``). Before rendering, the PDF goes through the document worker's own job
(``page_count``: pypdf's per-stream limits, the page and inflated-bytes budgets), so a
PDF the document blocks refuse is refused here too.

Request: ``{pdf, first, count, scale, max_side, max_bytes, max_pages, max_inflated}``.
Answer: ``{ok, value: {pages, pngs}}``: the page count and the PNGs of up to ``count``
pages from ``first`` (0-based), each rendered at ``scale`` but scaled down so that its
longest side is at most ``max_side`` pixels, stopping once ``max_bytes`` of PNG are
made (at least one page when ``first`` exists); or ``{ok: false, problem, fix, code}``.
"""

from __future__ import annotations

import struct
import sys
import zlib
from typing import Any


def png_bytes(width: int, height: int, stride: int, rgb: bytes, channels: int = 3) -> bytes:
    """Encode 8-bit RGB (or RGBA, ``channels=4``) rows, ``stride`` bytes apart, as PNG."""
    row = width * channels
    raw = b"".join(b"\x00" + rgb[y * stride:y * stride + row] for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 6 if channels == 4 else 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def fit_scale(width_pt: float, height_pt: float, scale: float, max_side: int) -> float:
    """``scale``, lowered so the page's longest side renders to at most ``max_side`` px."""
    longest = max(width_pt, height_pt, 1.0)
    return min(scale, max_side / longest)


def render(data: bytes, first: int, count: int, scale: float, max_side: int,
           max_bytes: int) -> dict[str, Any]:
    """The page count and the PNGs of pages ``first``.. (see the module docstring)."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(data)
    try:
        total = len(pdf)
        pngs: list[bytes] = []
        made = 0
        for index in range(max(first, 0), min(first + count, total)):
            page = pdf[index]
            width, height = page.get_size()
            bitmap = page.render(scale=fit_scale(width, height, scale, max_side),
                                 rev_byteorder=True)
            png = png_bytes(bitmap.width, bitmap.height, bitmap.stride,
                            bytes(bitmap.buffer), bitmap.n_channels)
            pngs.append(png)
            made += len(png)
            if made >= max_bytes:
                break
        return {"pages": total, "pngs": pngs}
    finally:
        pdf.close()


def handle(request: dict[str, Any]) -> dict[str, Any]:
    """Check the PDF as the document worker does, then render (see the module docstring)."""
    from blocks import document_worker

    checked = document_worker.handle({"fn": "page_count", "args": [request["pdf"]],
                                      "max_pages": request["max_pages"],
                                      "max_inflated": request["max_inflated"]})
    if not checked.get("ok"):
        return checked
    try:
        value = render(request["pdf"], int(request["first"]), int(request["count"]),
                       float(request["scale"]), int(request["max_side"]),
                       int(request["max_bytes"]))
    except MemoryError:
        return {"ok": False, "problem": "rendering it needs more memory than allowed",
                "fix": "Open the file itself instead.", "code": "DOCUMENT_TOO_LARGE"}
    except Exception as exc:  # noqa: BLE001 - pdfium raises assorted errors on bad input
        return {"ok": False, "problem": f"the page cannot be rendered ({type(exc).__name__}: "
                f"{exc})", "fix": "Open the file itself instead.", "code": "PDF_CORRUPT"}
    return {"ok": True, "value": value}


def main() -> None:
    """Confine, read one frame, answer one frame."""
    from blocks.confine import apply_from_argv
    from blocks.document_worker import decode, encode

    apply_from_argv(sys.argv)
    request = decode(sys.stdin.buffer.read())
    sys.stdout.buffer.write(encode(handle(request)))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
