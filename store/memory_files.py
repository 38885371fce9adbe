"""A content-addressed file store in a dict: the memory store's files.

Ids are those :class:`store.files.LocalFileStore` gives the same bytes
(``file_`` + 24 hex of sha256), and MIME types are detected the same way, so a workflow
produces the same file references on either store.
"""

from __future__ import annotations

import hashlib
import threading

from engine.contracts.errors import NotFoundError
from engine.contracts.files import detect_mime
from engine.contracts.values import FileRef


class MemoryFileStore:
    """Files kept in memory; implements :class:`~engine.contracts.files.FileStore`.

    Thread-safe. Nothing outlives the object.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, bytes] = {}

    def put_bytes(self, data: bytes, filename: str, mime_type: str | None = None) -> FileRef:
        """Store ``data`` (once per content) and return its reference.

        Returns:
            ``FileRef(id='file_<sha256[:24]>', filename, mime_type)``.
        """
        file_id = f"file_{hashlib.sha256(data).hexdigest()[:24]}"
        with self._lock:
            self._data.setdefault(file_id, bytes(data))
        return FileRef(id=file_id, filename=filename,
                       mime_type=mime_type or detect_mime(data, filename))

    def read_bytes(self, ref: FileRef | str) -> bytes:
        """The bytes of a stored file (a FileRef or a bare ``file_...`` id).

        Raises:
            NotFoundError: no such file in this store.
        """
        file_id = ref if isinstance(ref, str) else ref.id
        with self._lock:
            data = self._data.get(file_id)
        if data is None:
            raise NotFoundError("file", file_id, "It is not in this memory store; files do "
                                "not outlive the store that received them.")
        return data
