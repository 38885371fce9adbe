"""Run documents from request bodies: data URLs, and (when allowed) local file paths.

The Retab SDK turns every document (a path, bytes, a file object) into
``{"filename", "url"}`` with an RFC 2397 data URL before sending it, so data URLs are
what the server decodes. A ``file://`` URL or an absolute path is read from the server's
disk only when the server was started with ``--allow-file-paths``. Remote URLs are
refused: the server fetches nothing from the network.

Every document of a request is decoded before anything is stored, so a bad one leaves
no trace. File names keep their last component without control characters; a MIME type
must be a plain ``type/subtype`` (CR/LF and the like are refused).
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from engine.contracts.bounded import clean_mime, clean_text
from engine.contracts.frozen import record
from engine.server.errors import ApiError


@record
class DecodedDocument:
    """A document ready to store."""

    block_id: str
    data: bytes
    filename: str
    mime_type: str | None


def _bad(block_id: str, problem: str, fix: str) -> ApiError:
    return ApiError(422, "INVALID_DOCUMENT", f"documents.{block_id}: {problem}. {fix}",
                    {"block_id": block_id})


def decode_document(block_id: str, url: str, filename: str | None, *,
                    allow_file_paths: bool) -> DecodedDocument:
    """Decode one document given as ``url`` (data URL, or a path when allowed).

    Raises:
        ApiError: 422 ``INVALID_DOCUMENT`` naming the block and the fix.
    """
    if url.startswith("data:"):
        return _from_data_url(block_id, url, filename)
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme == "file" or (not scheme and os.path.isabs(url)):
        if not allow_file_paths:
            raise _bad(block_id, "file paths are not accepted by this server",
                       "Send the file's content as a data URL (the Retab SDK does this when "
                       "given a path), or start the server with --allow-file-paths")
        return _from_path(block_id, unquote(urlsplit(url).path) if scheme else url, filename)
    raise _bad(block_id, f"unsupported document URL {url[:60]!r}",
               "Send the content as a data URL (data:<mime>;base64,<data>); the server "
               "does not download remote files")


def _from_data_url(block_id: str, url: str, filename: str | None) -> DecodedDocument:
    header, comma, payload = url[5:].partition(",")
    if not comma:
        raise _bad(block_id, "the data URL has no ',' before its content",
                   "Write it as data:<mime>;base64,<base64 content>")
    parts = [p.strip() for p in header.split(";")]
    is_base64 = "base64" in (p.lower() for p in parts[1:])
    mime = clean_mime(parts[0]) if parts[0] else None
    if parts[0] and mime is None:
        raise _bad(block_id, f"{clean_text(parts[0], limit=60)!r} is not a MIME type",
                   "Use e.g. application/pdf")
    if is_base64:
        try:
            data = base64.b64decode("".join(payload.split()), validate=True)
        except (binascii.Error, ValueError):
            raise _bad(block_id, "the data URL's base64 content is malformed",
                       "Encode the file with standard base64") from None
    else:
        data = unquote(payload).encode()
    if not data:
        raise _bad(block_id, "the document is empty", "Send a file with content")
    name = _filename(filename) or f"{block_id}{_suffix(mime)}"
    return DecodedDocument(block_id=block_id, data=data, filename=name, mime_type=mime)


def _from_path(block_id: str, path: str, filename: str | None) -> DecodedDocument:
    source = Path(path)
    try:
        data = source.read_bytes()
    except FileNotFoundError:
        raise _bad(block_id, f"no file at {path}", "Pass an existing absolute path") from None
    except OSError as exc:
        raise _bad(block_id, f"cannot read {path} ({exc.strerror})",
                   "Check the path and its permissions") from None
    return DecodedDocument(block_id=block_id, data=data,
                           filename=_filename(filename) or _filename(source.name) or block_id,
                           mime_type=None)


def _filename(name: str | None) -> str:
    """The last component of ``name``, printable (control characters dropped)."""
    return clean_text(Path(name or "").name, limit=255).strip()


def _suffix(mime: str | None) -> str:
    import mimetypes

    return (mimetypes.guess_extension(mime) or "") if mime else ""
