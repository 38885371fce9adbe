"""Review versions: the proposal a review starts with, and the corrections made to it.

The Retab review API decides on a *version* of a review. The first version is the
block's proposal (its JSON output); a reviewer may add corrected versions, each naming
its parent. Version ids are content-addressed (``rvv_`` + 20 hex of sha256 over the
review id, the parent id and the canonical JSON snapshot), so writing the same
correction twice yields the same version. The proposal is never stored here: it is
derived from the review row on every read, so only corrections have rows
(:class:`ReviewVersionRow`, table ``review_versions``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Index
from sqlmodel import Field, Session, SQLModel, select

from engine.contracts.errors import NotFoundError
from store.models import JSONText
from store.workflows import sqlmodel_engine


class ReviewVersionRow(SQLModel, table=True):
    """A corrected version of a review's snapshot."""

    __tablename__ = "review_versions"
    __table_args__ = (Index("ix_review_versions_review", "review_id", "created_at"),)

    id: str = Field(primary_key=True)
    review_id: str
    parent_id: str
    snapshot: Any = Field(default=None, sa_column=Column(JSONText))
    note: str | None = None
    author_id: str = ""
    created_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewVersion:
    """One version of a review (``parent_id`` None for the proposal)."""

    id: str
    review_id: str
    parent_id: str | None
    snapshot: dict[str, Any]
    note: str | None
    author_id: str
    author_kind: str
    created_at: float


def version_id_for(review_id: str, parent_id: str | None, snapshot: Any) -> str:
    """The content-addressed id of a version."""
    body = json.dumps(snapshot, sort_keys=True, separators=(",", ":"), default=str)
    raw = f"{review_id}\0{parent_id or ''}\0{body}".encode()
    return "rvv_" + hashlib.sha256(raw).hexdigest()[:20]


def proposal(review_id: str, snapshot: dict[str, Any], created_at: float,
             block_id: str) -> ReviewVersion:
    """The first version of a review: what the block proposed."""
    return ReviewVersion(id=version_id_for(review_id, None, snapshot), review_id=review_id,
                         parent_id=None, snapshot=snapshot, note=None, author_id=block_id,
                         author_kind="model", created_at=created_at)


class ReviewVersionStore:
    """Corrected review versions in a stepwell database file.

    Args:
        db_path: the database file.
        busy_timeout: seconds to wait for another process's write lock.
    """

    def __init__(self, db_path: str | os.PathLike[str], *, busy_timeout: float = 30.0) -> None:
        self._engine = sqlmodel_engine(os.fspath(db_path), busy_timeout)
        ReviewVersionRow.__table__.create(self._engine, checkfirst=True)  # type: ignore[attr-defined]

    def close(self) -> None:
        """Release the connections."""
        self._engine.dispose()

    def add(self, *, review_id: str, parent_id: str, snapshot: dict[str, Any],
            note: str | None, author_id: str) -> ReviewVersion:
        """Store a correction (idempotent: the same content returns the same version)."""
        vid = version_id_for(review_id, parent_id, snapshot)
        with Session(self._engine) as session:
            row = session.get(ReviewVersionRow, vid)
            if row is None:
                row = ReviewVersionRow(id=vid, review_id=review_id, parent_id=parent_id,
                                       snapshot=snapshot, note=note, author_id=author_id,
                                       created_at=time.time())
                session.add(row)
                session.commit()
                session.refresh(row)
            return _version(row)

    def list(self, review_id: str) -> list[ReviewVersion]:
        """The corrections of a review, oldest first."""
        with Session(self._engine) as session:
            rows = session.exec(select(ReviewVersionRow)
                                .where(ReviewVersionRow.review_id == review_id)).all()
            return sorted((_version(r) for r in rows), key=lambda v: (v.created_at, v.id))

    def get(self, version_id: str) -> ReviewVersion:
        """One correction. Raises NotFoundError."""
        with Session(self._engine) as session:
            row = session.get(ReviewVersionRow, version_id)
            if row is None:
                raise NotFoundError("review version", version_id,
                                    "List a review's versions with "
                                    "GET /v1/workflows/reviews/versions?review_id=...")
            return _version(row)


def _version(row: ReviewVersionRow) -> ReviewVersion:
    return ReviewVersion(id=row.id, review_id=row.review_id, parent_id=row.parent_id,
                         snapshot=dict(row.snapshot or {}), note=row.note,
                         author_id=row.author_id, author_kind="human",
                         created_at=row.created_at)
