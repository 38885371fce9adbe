"""Review versions of one database file, for callers that hold no store.

The Retab review API decides on a *version* of a review. The first version is the
block's proposal (:func:`~engine.contracts.records.proposal`); a reviewer may add
corrected versions, each naming its parent. Every store keeps corrections through its
:class:`~engine.contracts.store.ReviewStore` methods (``add_review_version``,
``review_versions``, ``review_version``); :class:`ReviewVersionStore` offers them under
their short names over a database path.
"""

from __future__ import annotations

import os
import time
from typing import Any

from engine.contracts.records import ReviewVersion, proposal, version_id_for
from store.connection import open_database
from store.reviews import SQLiteReviews

__all__ = ["ReviewVersion", "ReviewVersionStore", "proposal", "version_id_for"]


class ReviewVersionStore(SQLiteReviews):
    """Corrected review versions in a stepwell database file.

    Args:
        db_path: the database file.
        busy_timeout: seconds to wait for another process's write lock.

    Raises:
        StorageError: the file cannot be opened.
    """

    def __init__(self, db_path: str | os.PathLike[str], *, busy_timeout: float = 30.0) -> None:
        self.db = open_database(os.fspath(db_path), busy_timeout=busy_timeout)

    def close(self) -> None:
        """Close the connection."""
        with self.db.lock:
            self.db.conn.close()

    def add(self, *, review_id: str, parent_id: str, snapshot: dict[str, Any],
            note: str | None, author_id: str) -> ReviewVersion:
        """Store a correction now (idempotent: the same content returns the same version)."""
        return self.add_review_version(review_id=review_id, parent_id=parent_id,
                                       snapshot=snapshot, note=note, author_id=author_id,
                                       now=time.time())

    def list(self, review_id: str) -> list[ReviewVersion]:
        """The corrections of a review, oldest first."""
        return self.review_versions(review_id)

    def get(self, version_id: str) -> ReviewVersion:
        """One correction. Raises NotFoundError."""
        return self.review_version(version_id)
