"""Content-addressed file store beside the database.

Theory of operation: every file is stored once per content, under the sha256 of its
bytes; its id is ``file_`` + the first 24 hex digits. A sidecar ``meta/<id>.json``
remembers the filename and MIME type it was first stored with, so a bare id can be
turned back into a :class:`~engine.values.FileRef`. Large JSON payloads that the SQLite
store keeps out of its rows live here too, as ``blobs/<blob id>``.

Layout under ``root`` (``<db>.files/`` for a database file)::

    objects/ab/file_ab12...   file bytes
    meta/file_ab12....json    {"filename", "mime_type", "size", "sha256"}
    blobs/blob_cd34...        JSON payload bytes
    .gitignore                ``*``: run data stays out of a git repository

Writes go to a temporary file in the same folder and are renamed into place, so a
reader never sees a half-written object and two processes storing the same content
race harmlessly. Folders are created on the first write only (the root ``0700``, objects
``0600``): reading never creates anything. File names lose control characters, and a
MIME type that is not a plain ``type/subtype`` is detected instead.

MIME detection (:func:`detect_mime`): an explicit ``mime_type`` wins; then strong
content signatures (PDF, PNG, JPEG, GIF, WebP); then the filename extension; then weak
content sniffing (JSON, UTF-8 text); else ``application/octet-stream``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from engine.contracts.bounded import clean_mime, clean_text
from engine.contracts.errors import NotFoundError, StorageError
from engine.contracts.files import detect_mime
from engine.contracts.values import FileRef

#: Written into a new file store folder, so ``git status`` does not list run data.
GITIGNORE = "# Created by stepwell: documents and payloads of runs.\n*\n"


class LocalFileStore:
    """Files and large JSON blobs, content-addressed under one folder.

    Implements :class:`blocks.base.FileStore`.

    Args:
        root: the folder; created on first write.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @classmethod
    def beside(cls, db_path: str | os.PathLike[str]) -> LocalFileStore:
        """The file store of a database file: ``<db>.files/`` next to it."""
        return cls(Path(f"{os.fspath(db_path)}.files"))

    # ------------------------------------------------------------------ files

    def put_bytes(self, data: bytes, filename: str, mime_type: str | None = None) -> FileRef:
        """Store ``data`` (once per content) and return its reference.

        Args:
            data: the file's bytes.
            filename: the name to report for it.
            mime_type: the MIME type; detected from content and name when None.

        Returns:
            ``FileRef(id='file_<sha256[:24]>', filename, mime_type)``.

        Raises:
            StorageError: the folder cannot be written.
        """
        filename = clean_text(filename, limit=255)  # names are printed and served
        digest = hashlib.sha256(data).hexdigest()
        file_id = f"file_{digest[:24]}"
        mime = clean_mime(mime_type) or detect_mime(data, filename)
        self._write_once(self._object_path(file_id), data)
        meta = {"filename": filename, "mime_type": mime, "size": len(data), "sha256": digest}
        self._write_once(self._meta_path(file_id), json.dumps(meta).encode())
        return FileRef(id=file_id, filename=filename, mime_type=mime)

    def put_path(self, path: str | os.PathLike[str], mime_type: str | None = None) -> FileRef:
        """Store the file at ``path`` under its own name.

        Raises:
            NotFoundError: ``path`` does not exist.
            StorageError: it cannot be read, or the store cannot be written.
        """
        source = Path(path)
        try:
            data = source.read_bytes()
        except FileNotFoundError:
            raise NotFoundError("file", str(source), "Check the path and try again.") from None
        except OSError as exc:
            raise StorageError(
                f"cannot read {source}: {exc.strerror}. Check its permissions.") from exc
        return self.put_bytes(data, source.name, mime_type)

    def read_bytes(self, ref: FileRef | str) -> bytes:
        """Return the bytes of a stored file (a FileRef or a bare ``file_...`` id).

        Raises:
            NotFoundError: no such file in this store.
        """
        file_id = ref if isinstance(ref, str) else ref.id
        return self._read(self._object_path(file_id), "file", file_id)

    def get_ref(self, file_id: str) -> FileRef:
        """The FileRef of a stored id, with the filename and MIME type it was stored with.

        Raises:
            NotFoundError: no such file in this store.
        """
        meta = json.loads(self._read(self._meta_path(file_id), "file", file_id))
        return FileRef(id=file_id, filename=meta["filename"], mime_type=meta["mime_type"])

    def path_of(self, ref: FileRef | str) -> Path:
        """Where the bytes of a file live (it may not exist)."""
        return self._object_path(ref if isinstance(ref, str) else ref.id)

    # ------------------------------------------------------------------ JSON blobs

    def put_json_blob(self, data: bytes) -> str:
        """Store encoded JSON ``data`` and return its blob id (``blob_<sha256[:32]>``)."""
        blob_id = f"blob_{hashlib.sha256(data).hexdigest()[:32]}"
        self._write_once(self.root / "blobs" / blob_id, data)
        return blob_id

    def get_json_blob(self, blob_id: str) -> bytes:
        """The encoded JSON stored under ``blob_id``.

        Raises:
            NotFoundError: the blob is missing (the files folder was moved or pruned).
        """
        return self._read(self.root / "blobs" / blob_id, "blob", blob_id)

    # ------------------------------------------------------------------ internals

    def _object_path(self, file_id: str) -> Path:
        if not file_id.startswith("file_") or "/" in file_id or "\\" in file_id:
            raise NotFoundError("file", file_id, "File ids look like 'file_<24 hex digits>'.")
        return self.root / "objects" / file_id[5:7] / file_id

    def _meta_path(self, file_id: str) -> Path:
        return self.root / "meta" / f"{file_id}.json"

    def _read(self, path: Path, kind: str, ident: str) -> bytes:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(
                kind, ident, f"It is not in the file store {self.root}; was the folder moved?"
            ) from None
        except OSError as exc:
            raise StorageError(
                f"cannot read {path}: {exc.strerror}. Check its permissions.") from exc

    def _write_once(self, target: Path, data: bytes) -> None:
        """Atomically create ``target`` with ``data`` unless it already exists."""
        if target.exists():
            return
        try:
            if not self.root.is_dir():
                self.root.mkdir(mode=0o700, parents=True, exist_ok=True)  # private to its owner
                ignore = self.root / ".gitignore"
                if not ignore.exists():  # run data stays out of the user's repository
                    ignore.write_text(GITIGNORE, encoding="utf-8")
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, target)
            except BaseException:
                _unlink_quietly(tmp)
                raise
        except OSError as exc:
            raise StorageError(
                f"cannot write {target} ({exc.strerror}): choose a writable --db path "
                "(the file store lives beside the database)."
            ) from exc


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
