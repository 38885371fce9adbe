"""Files as blocks and stores see them: the FileStore protocol and MIME detection.

A file travels between steps as a :class:`~engine.contracts.values.FileRef`; its bytes
live in a content-addressed store that implements :class:`FileStore` (the SQLite store's
``LocalFileStore``, or any other). :func:`detect_mime` is the one place a MIME type is
guessed, so blocks and stores agree.
"""

from __future__ import annotations

import json
import mimetypes
from typing import Protocol

from engine.contracts.values import FileRef


class FileStore(Protocol):
    """Content-addressed file storage handed to handlers."""

    def put_bytes(self, data: bytes, filename: str, mime_type: str | None = None) -> FileRef:
        """Store ``data`` (once per content) and return its reference."""
        ...

    def read_bytes(self, ref: FileRef) -> bytes:
        """Return the bytes of a stored file."""
        ...


_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def detect_mime(data: bytes, filename: str = "") -> str:
    """Guess the MIME type of ``data`` from its content, then from ``filename``.

    Args:
        data: the file's bytes.
        filename: its name; the extension is used when the content has no signature.

    Returns:
        A MIME type string, ``application/octet-stream`` when nothing matches.
    """
    for magic, mime in _SIGNATURES:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    guessed, _ = mimetypes.guess_type(filename) if filename else (None, None)
    if guessed:
        return guessed
    return _sniff_text(data)


def _sniff_text(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    if text.lstrip()[:1] in ("{", "["):
        try:
            json.loads(text)
        except ValueError:
            return "text/plain"
        return "application/json"
    return "text/plain"
