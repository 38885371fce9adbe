"""Stored files named by URL: what ``files.get_download_link`` hands out, read back.

The durable reference to a stored file is ``<server>/v1/files/<file_id>/content``: the
download link, and the ``url`` of the ``MIMEData`` a completed upload returns. When a run
is created with such a URL as a document (the SDK does this for a ``FileRef``), the file
is read from the store, never downloaded, and only when the caller's organization owns
it (another organization's file is 404, like an unknown one).
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import urlsplit

from engine.contracts.catalog import FileEntry
from engine.contracts.values import FileRef
from engine.server.documents import DecodedDocument

_CONTENT_PATH = re.compile(r"^/v1/files/(?P<id>(?:file|upl)_[A-Za-z0-9]+)/content$")


def content_path(file_id: str) -> str:
    """The path a file's bytes are served at."""
    return f"/v1/files/{file_id}/content"


def referenced_file(url: str) -> str | None:
    """The file id a ``.../v1/files/<id>/content`` URL names, else None."""
    return (found := _CONTENT_PATH.match(urlsplit(url).path or "")) and found["id"] or None


def owned_file(state: Any, org: str, file_id: str) -> FileEntry:
    """A file of ``org`` by file id or upload id.

    Raises:
        NotFoundError: ``org`` has no such file (or the upload is not complete).
    """
    from engine.contracts.errors import NotFoundError

    if file_id.startswith("upl_"):
        session = state.store.upload(file_id)
        if session.organization_id != org or session.completed_at is None or not session.file_id:
            raise NotFoundError("file", file_id, "Complete the upload first.")
        file_id = session.file_id
    return state.store.file_entry(file_id, org)


def stored_document(state: Any, org: str, block_id: str, url: str,
                    filename: str | None) -> DecodedDocument | None:
    """The document a stored-file URL names (None when ``url`` is not one).

    Raises:
        NotFoundError: the organization has no such file.
    """
    file_id = referenced_file(url)
    if file_id is None:
        return None
    entry = owned_file(state, org, file_id)
    ref = FileRef(id=entry.id, filename=entry.filename, mime_type=entry.mime_type)
    return DecodedDocument(block_id=block_id, data=state.store.files.read_bytes(ref),
                           filename=filename or entry.filename, mime_type=entry.mime_type)


def record(state: Any, org: str, ref: FileRef, size: int) -> FileEntry:
    """Note that ``org`` owns the stored file ``ref``."""
    return state.store.record_file(FileEntry(id=ref.id, organization_id=org,
                                             filename=ref.filename, mime_type=ref.mime_type,
                                             size=size, created_at=time.time()))
