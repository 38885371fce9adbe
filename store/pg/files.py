"""Files and large JSON payloads kept in PostgreSQL, for workers on any machine.

The same content addressing as :class:`store.files.LocalFileStore` (a file's id is
``file_`` + 24 hex of its sha256, a blob's ``blob_`` + 32), so a workflow produces the
same references on either backend; the bytes live in the tables ``files`` and
``blobs`` instead of a folder beside a database file. Writes are
``INSERT ... ON CONFLICT DO NOTHING``: storing the same content twice, from two
processes at once, is harmless.

A :class:`PgFileStore` pickles as its URL: a copy sent to another process (a Dask
worker) opens its own connection on first use.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from engine.contracts.errors import NotFoundError
from engine.contracts.files import detect_mime
from engine.contracts.values import FileRef
from store.pg.connection import PgDatabase


class PgFileStore:
    """A content-addressed file store in a PostgreSQL database.

    Implements :class:`~engine.contracts.files.FileStore` and the blob calls the store's
    codec uses (:meth:`put_json_blob`, :meth:`get_json_blob`).

    Args:
        url: the database URL.
        db: share this connection (the store's) instead of opening one.
    """

    def __init__(self, url: str, *, db: PgDatabase | None = None) -> None:
        self.url = url
        self._db = db

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.url = state["url"]
        self._db = None

    @property
    def db(self) -> PgDatabase:
        """The connection (opened on first use)."""
        if self._db is None:
            self._db = PgDatabase(self.url)
        return self._db

    def put_bytes(self, data: bytes, filename: str, mime_type: str | None = None) -> FileRef:
        """Store ``data`` (once per content) and return its reference.

        Raises:
            StorageError: the database cannot be written.
        """
        file_id = f"file_{hashlib.sha256(data).hexdigest()[:24]}"
        mime = mime_type or detect_mime(data, filename)
        db = self.db
        with db.lock, db.guard(f"storing file {filename}"):
            db.execute("INSERT INTO files (id, filename, mime_type, size, data, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                       (file_id, filename, mime, len(data), data, time.time()))
        return FileRef(id=file_id, filename=filename, mime_type=mime)

    def read_bytes(self, ref: FileRef | str) -> bytes:
        """The bytes of a stored file (a FileRef or a bare ``file_...`` id).

        Raises:
            NotFoundError: no such file in this database.
        """
        file_id = ref if isinstance(ref, str) else ref.id
        with self.db.read(f"reading file {file_id}") as conn:
            row = conn.execute("SELECT data FROM files WHERE id = ?", (file_id,)).fetchone()
        if row is None:
            raise NotFoundError("file", file_id, "It is not in this database's file store.")
        return bytes(row[0])

    def get_ref(self, file_id: str) -> FileRef:
        """The FileRef of a stored id, with the name and MIME type it was stored with.

        Raises:
            NotFoundError: no such file in this database.
        """
        with self.db.read(f"reading file {file_id}") as conn:
            row = conn.execute("SELECT filename, mime_type FROM files WHERE id = ?",
                               (file_id,)).fetchone()
        if row is None:
            raise NotFoundError("file", file_id, "It is not in this database's file store.")
        return FileRef(id=file_id, filename=row[0], mime_type=row[1])

    def put_json_blob(self, data: bytes) -> str:
        """Store encoded JSON ``data`` and return its blob id (``blob_<sha256[:32]>``)."""
        blob_id = f"blob_{hashlib.sha256(data).hexdigest()[:32]}"
        db = self.db
        with db.lock, db.guard("storing a large payload"):
            db.execute("INSERT INTO blobs (id, data, created_at) VALUES (?, ?, ?) "
                       "ON CONFLICT DO NOTHING", (blob_id, data, time.time()))
        return blob_id

    def get_json_blob(self, blob_id: str) -> bytes:
        """The encoded JSON stored under ``blob_id``.

        Raises:
            NotFoundError: no such blob.
        """
        with self.db.read(f"reading blob {blob_id}") as conn:
            row = conn.execute("SELECT data FROM blobs WHERE id = ?", (blob_id,)).fetchone()
        if row is None:
            raise NotFoundError("blob", blob_id, "It is not in this database.")
        return bytes(row[0])
