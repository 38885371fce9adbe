"""Which files an organization owns, and uploads in progress: the :class:`FileCatalog`.

File bytes live in the content-addressed :class:`~engine.contracts.files.FileStore`,
shared by every organization (the same bytes are stored once). The catalog says which
organization may see a file: one entry per ``(organization, file id)``, written when a
file comes in through the HTTP API (a run's document, an upload). Another organization's
file answers ``NotFoundError`` exactly like an unknown id.

An upload is a session: it is opened with the expected name and size, receives its
bytes once (through an URL carrying the session's token), and is completed, which
records the file in the catalog. Its id (``upl_...``) stays a valid name for the file.
"""

from __future__ import annotations

# The protocol lives apart so that composing Store imports no record class.
from engine.contracts.file_catalog import FileCatalog  # noqa: F401 - re-exported
from engine.contracts.frozen import record


@record
class FileEntry:
    """A file an organization can see."""

    id: str
    organization_id: str
    filename: str
    mime_type: str
    size: int
    created_at: float


@record
class UploadSession:
    """An upload: opened, then given bytes (``file_id`` set), then completed.

    Attributes:
        token: the secret part of the upload URL.
        sha256: the checksum the client announced, if any.
        file_id: the stored file, once the bytes arrived.
    """

    id: str
    organization_id: str
    filename: str
    content_type: str | None
    size: int
    sha256: str | None
    token: str
    created_at: float
    expires_at: float
    file_id: str | None = None
    completed_at: float | None = None


@record
class FileFilters:
    """Which files a list keeps (every field optional)."""

    filename: str | None = None
    mime_type: str | None = None
    created_from: float | None = None
    created_to: float | None = None
