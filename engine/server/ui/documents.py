"""PDF pages as PNG images, rendered on the server with pypdfium2.

The browser never receives the PDF to render itself: a page is rendered once at
:data:`SCALE` (about 108 dpi), encoded as PNG here (no imaging library needed), and kept
in a small in-memory cache keyed by file id and page. Only files that a step or review
visible to the viewer references are served (the routes check that first).
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections import OrderedDict

from engine.contracts.errors import StepwellError
from engine.contracts.files import FileStore
from engine.contracts.values import FileRef

SCALE = 1.5
MAX_PAGES_SHOWN = 20
CACHE_PAGES = 64


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


def file_ref(file_id: str, filename: str = "", mime_type: str = "") -> FileRef:
    """A reference to a stored file by its id (what ``FileStore.read_bytes`` takes)."""
    return FileRef(id=file_id, filename=filename or file_id, mime_type=mime_type)


class PageRenderer:
    """Renders and caches PDF pages.

    Args:
        files: the file store holding the documents (the server's store's).
    """

    def __init__(self, files: FileStore) -> None:
        self.files = files
        self._cache: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def page_count(self, file_id: str) -> int:
        """How many pages the PDF has (0 when it cannot be read as a PDF)."""
        with self._lock:
            known = self._counts.get(file_id)
        if known is not None:
            return known
        import pypdfium2 as pdfium

        try:
            pdf = pdfium.PdfDocument(self.files.read_bytes(file_ref(file_id)))
            count = len(pdf)
            pdf.close()
        except (pdfium.PdfiumError, OSError, ValueError, StepwellError):
            count = 0
        with self._lock:
            self._counts[file_id] = count
        return count

    def page_png(self, file_id: str, index: int) -> bytes | None:
        """Page ``index`` (0-based) as PNG, or None when there is no such page."""
        key = (file_id, index)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        if not 0 <= index < self.page_count(file_id):
            return None
        import pypdfium2 as pdfium

        pdf = pdfium.PdfDocument(self.files.read_bytes(file_ref(file_id)))
        try:
            bitmap = pdf[index].render(scale=SCALE, rev_byteorder=True)
            data = png_bytes(bitmap.width, bitmap.height, bitmap.stride, bytes(bitmap.buffer),
                             bitmap.n_channels)
        finally:
            pdf.close()
        with self._lock:
            self._cache[key] = data
            while len(self._cache) > CACHE_PAGES:
                self._cache.popitem(last=False)
        return data
