"""A minimal PDF writer: one image per page, or plain text pages. No imaging library.

pypdf reads and rearranges PDFs but cannot turn an image into one, and Pillow is not a
stepwell dependency. PDF can embed both common image formats without decoding them:

* JPEG is stored as is (``/DCTDecode``); only its size and channel count are read from
  the SOF marker.
* PNG's ``IDAT`` stream is zlib data with one filter byte per row, which is exactly
  ``/FlateDecode`` with ``/Predictor 15``; so the compressed bytes are copied too. Grey,
  RGB and palette images work at any bit depth; an alpha channel or interlacing needs
  decoding, for which Pillow is used when it is installed (else a clear error).

Text pages use the standard Helvetica font (WinAnsi, so characters outside Latin-1
become ``?``), 10 pt on A4, wrapped at 100 characters.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

_A4 = (595.0, 842.0)


def _problem(problem: str, fix: str) -> Exception:
    from blocks.pdf import DocumentProblem  # local: pdf imports this module

    return DocumentProblem(problem, fix, "IMAGE_UNSUPPORTED")


def _assemble(objects: list[bytes]) -> bytes:
    """Serialise numbered objects (1-based; object 1 is the catalog) with an xref table."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1))
    out.write(b"startxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def _stream(header: str, data: bytes) -> bytes:
    return f"<< {header} /Length {len(data)} >>\nstream\n".encode() + data + b"\nendstream"


def _pages_pdf(contents: list[bytes], resources: list[str], extra: list[bytes],
               size: tuple[float, float]) -> bytes:
    """Catalog, page tree, then per page a page object and its content stream."""
    count = len(contents)
    first_page = 3
    kids = " ".join(f"{first_page + 2 * i} 0 R" for i in range(count))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               f"<< /Type /Pages /Kids [{kids}] /Count {count} >>".encode()]
    for i, content in enumerate(contents):
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {size[0]:.2f} {size[1]:.2f}] "
            f"/Resources {resources[i]} /Contents {first_page + 2 * i + 1} 0 R >>".encode())
        objects.append(_stream("", content))
    return _assemble(objects + extra)


# ----------------------------------------------------------------------------- images


def image_pdf(data: bytes, mime: str) -> bytes:
    """A one-page PDF showing the PNG or JPEG ``data`` (longest side 842 pt).

    Raises:
        DocumentProblem: the image is damaged, or needs decoding without Pillow.
    """
    if mime == "image/jpeg":
        width, height, header = _jpeg(data)
        body = data
    else:
        width, height, header, body = _png(data)
    scale = min(1.0, 842.0 / max(width, height)) if max(width, height) > 842 else 1.0
    size = (width * scale, height * scale)
    content = f"q {size[0]:.2f} 0 0 {size[1]:.2f} 0 0 cm /Im0 Do Q".encode()
    image_obj = 5  # catalog, pages, page, content, then the image
    header = f"/Type /XObject /Subtype /Image /Width {width} /Height {height} {header}"
    return _pages_pdf([content], [f"<< /XObject << /Im0 {image_obj} 0 R >> >>"],
                      [_stream(header, body)], size)


def _jpeg(data: bytes) -> tuple[int, int, str]:
    pos = 2
    while pos + 9 < len(data):
        if data[pos] != 0xFF:
            pos += 1
            continue
        marker = data[pos + 1]
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            bits, height, width, comps = struct.unpack(">BHHB", data[pos + 4:pos + 10])
            space = {1: "/DeviceGray", 3: "/DeviceRGB", 4: "/DeviceCMYK"}.get(comps)
            if space is None or not width or not height:
                break
            return width, height, f"/ColorSpace {space} /BitsPerComponent {bits} " \
                                  "/Filter /DCTDecode"
        pos += 2 + length
    raise _problem("the JPEG image is damaged (no frame header)",
                   "Re-save the image or convert it to PDF yourself.")


def _png_chunks(data: bytes) -> dict[bytes, list[bytes]]:
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise _problem("the PNG image is damaged (bad signature)", "Re-save the image.")
    chunks: dict[bytes, list[bytes]] = {}
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunks.setdefault(kind, []).append(data[pos + 8:pos + 8 + length])
        pos += 12 + length
        if kind == b"IEND":
            break
    if b"IHDR" not in chunks or b"IDAT" not in chunks:
        raise _problem("the PNG image is damaged (no header or data)", "Re-save the image.")
    return chunks


def _png(data: bytes) -> tuple[int, int, str, bytes]:
    chunks = _png_chunks(data)
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"][0])
    if color in (4, 6) or interlace:
        return _png_via_pillow(data)
    colors = {0: 1, 2: 3, 3: 1}[color]
    space = {0: "/DeviceGray", 2: "/DeviceRGB"}.get(color)
    if color == 3:
        palette = chunks.get(b"PLTE", [b""])[0]
        hexed = palette.hex()
        space = f"[/Indexed /DeviceRGB {len(palette) // 3 - 1} <{hexed}>]"
    parms = f"<< /Predictor 15 /Colors {colors} /BitsPerComponent {depth} /Columns {width} >>"
    header = (f"/ColorSpace {space} /BitsPerComponent {depth} /Filter /FlateDecode "
              f"/DecodeParms {parms}")
    return width, height, header, b"".join(chunks[b"IDAT"])


def _png_via_pillow(data: bytes) -> tuple[int, int, str, bytes]:
    try:
        from PIL import Image
    except ImportError:
        raise _problem(
            "this PNG has transparency or interlacing, which needs Pillow to embed",
            "Install Pillow (`pip install pillow`) or save the image without alpha.",
        ) from None
    image: Any = Image.open(io.BytesIO(data)).convert("RGB")
    width, height = image.size
    body = zlib.compress(image.tobytes())
    return width, height, "/ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /FlateDecode", body


# ----------------------------------------------------------------------------- text


def _escape(line: str) -> str:
    encoded = line.encode("cp1252", errors="replace").decode("latin-1")
    return encoded.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _wrap(text: str, width: int = 100) -> list[str]:
    lines: list[str] = []
    for raw in text.expandtabs(4).splitlines() or [""]:
        while len(raw) > width:
            lines.append(raw[:width])
            raw = raw[width:]
        lines.append(raw)
    return lines


def text_pdf(text: str) -> bytes:
    """Plain A4 pages with ``text`` in Helvetica 10 pt (form feeds start new pages)."""
    per_page = 64
    pages: list[list[str]] = []
    for chunk in text.split("\f"):
        lines = _wrap(chunk)
        pages += [lines[i:i + per_page] for i in range(0, len(lines), per_page)] or [[]]
    font_obj = 3 + 2 * len(pages)
    contents = []
    for lines in pages:
        ops = ["BT /F1 10 Tf 12 TL 50 792 Td"]
        ops += [f"({_escape(line)}) Tj T*" for line in lines]
        ops.append("ET")
        contents.append("\n".join(ops).encode("latin-1"))
    font = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    resources = [f"<< /Font << /F1 {font_obj} 0 R >> >>"] * len(pages)
    return _pages_pdf(contents, resources, [font], _A4)
