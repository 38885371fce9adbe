"""The :class:`FileCatalog` protocol, apart from its records (:mod:`engine.contracts.catalog`).

Composing :class:`~engine.contracts.store.Store` needs the protocol only; its records
are imported where one is built or read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from engine.contracts.catalog import FileEntry, FileFilters, UploadSession
    from engine.contracts.reads import RecordPage


@runtime_checkable
class FileCatalog(Protocol):
    """Per-organization file entries and upload sessions."""

    def record_file(self, entry: FileEntry) -> FileEntry:
        """Record that ``entry.organization_id`` owns the file (committed); recording it
        again returns the first entry unchanged."""
        ...

    def file_entry(self, file_id: str, organization_id: str) -> FileEntry:
        """One file of the organization.

        Raises:
            NotFoundError: the organization has no such file.
        """
        ...

    def page_files(self, organization_id: str, filters: FileFilters, *, limit: int = 10,
                   after: str | None = None, before: str | None = None,
                   descending: bool = True) -> RecordPage[FileEntry]:
        """One page of the organization's files ordered by ``(created_at, id)``.

        Raises:
            NotFoundError: the cursor is not a file of this list.
        """
        ...

    def save_upload(self, session: UploadSession) -> None:
        """Insert or replace an upload session (committed)."""
        ...

    def upload(self, upload_id: str) -> UploadSession:
        """One upload session, whatever its organization (the token authorizes it).

        Raises:
            NotFoundError: no such upload.
        """
        ...
