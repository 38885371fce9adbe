"""Human reviews in SQLite: one row per step that waits in ``awaiting_review``.

A review id is derived from the run and step
(:func:`~engine.contracts.records.review_id_for`), so opening the same review twice (a
resumed run replays its waiting steps) is harmless. A decision is written once: the same
decision again is accepted and changes nothing; a different one is a
:class:`~engine.contracts.errors.ConflictError` (:func:`settle`, shared by every store).

Corrected versions of a review (table ``review_versions``) are content-addressed
(:func:`~engine.contracts.records.version_id_for`): writing the same correction twice
yields the same version. The block's proposal is never stored; it is derived from the
review on every read.

:class:`SQLiteReviews` is the :class:`~engine.contracts.store.ReviewStore` half of
:class:`store.sqlite.SQLiteStore`.
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

from engine.contracts.errors import ConflictError, InputError, NotFoundError
from store.connection import Database

if TYPE_CHECKING:  # the record types are built where a review is read: a run loads none
    from engine.contracts.records import Review, ReviewVersion

_COLUMNS = ("id, run_id, step_id, block_id, status, data, decision, decision_data, "
            "note, created_at, decided_at")
_VERSION_COLUMNS = "id, review_id, parent_id, snapshot, note, author_id, created_at"


def _row(r: tuple[Any, ...]) -> Review:
    from engine.contracts.records import Review

    return Review(id=r[0], run_id=r[1], step_id=r[2], block_id=r[3], status=r[4],
                  data=json.loads(r[5]) if r[5] else None, decision=r[6],
                  decision_data=json.loads(r[7]) if r[7] else None, reason=r[8],
                  created_at=r[9], decided_at=r[10])


def open_review(conn: sqlite3.Connection, run_id: str, step_id: str, block_id: str,
                data: Any, now: float) -> str:
    """Insert the pending review of a waiting step (no-op if it exists); its id."""
    from engine.contracts.records import review_id_for

    rid = review_id_for(run_id, step_id)
    conn.execute(
        "INSERT OR IGNORE INTO reviews (id, run_id, step_id, block_id, status, data, "
        "created_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
        (rid, run_id, step_id, block_id, json.dumps(data, separators=(",", ":")), now))
    return rid


def settle(review: Review, *, approved: bool, data: Any, has_data: bool
           ) -> tuple[str, str | None] | None:
    """The decision to record on ``review`` and its data as JSON text.

    Returns:
        ``(decision, data_json)``, or None when the review was already decided so.

    Raises:
        ConflictError: it was already decided differently.
    """
    decision = "approved" if approved else "rejected"
    payload = json.dumps({"data": data}) if has_data else None
    if review.decision is None:
        return decision, payload
    same = review.decision == decision and (
        (review.decision_data or None) == (json.loads(payload) if payload else None))
    if same:
        return None
    how = f"{decision} with other data" if review.decision == decision else decision
    raise ConflictError(
        f"Review {review.id} was already {review.decision}; it cannot now be {how}. "
        "Decisions are final: rerun from the reviewed step "
        f"(`stepwell runs rerun {review.run_id} --from STEP_ID`) if the result must change.")


def check_decision(approved: bool, has_data: bool) -> None:
    """Refuse a rejection that carries data.

    Raises:
        InputError: rejecting with corrected data.
    """
    if not approved and has_data:
        raise InputError("A rejection carries no data; pass --data only with approve.")


def version_not_found(version_id: str) -> NotFoundError:
    """The error for an unknown review version."""
    return NotFoundError("review version", version_id,
                         "List a review's versions with "
                         "GET /v1/workflows/reviews/versions?review_id=...")


def _get(conn: sqlite3.Connection, review_id: str) -> Review:
    row = conn.execute(f"SELECT {_COLUMNS} FROM reviews WHERE id = ?", (review_id,)).fetchone()
    if row is None:
        raise NotFoundError("review", review_id)
    return _row(row)


def _decide(conn: sqlite3.Connection, review_id: str, approved: bool, data: Any,
            has_data: bool, reason: str, now: float) -> tuple[Review, bool]:
    review = _get(conn, review_id)
    settled = settle(review, approved=approved, data=data, has_data=has_data)
    if settled is None:
        return review, False
    decision, payload = settled
    conn.execute("UPDATE reviews SET status = ?, decision = ?, decision_data = ?, note = ?, "
                 "decided_at = ? WHERE id = ?",
                 (decision, decision, payload, reason or None, now, review_id))
    return _get(conn, review_id), True


def _version(r: tuple[Any, ...]) -> ReviewVersion:
    from engine.contracts.records import ReviewVersion

    return ReviewVersion(id=r[0], review_id=r[1], parent_id=r[2],
                         snapshot=dict(json.loads(r[3]) if r[3] else {}), note=r[4],
                         author_id=r[5], author_kind="human", created_at=r[6])


def _add_version(conn: sqlite3.Connection, vid: str, review_id: str, parent_id: str,
                 snapshot: str, note: str | None, author_id: str, now: float) -> ReviewVersion:
    conn.execute(f"INSERT OR IGNORE INTO review_versions ({_VERSION_COLUMNS}) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (vid, review_id, parent_id, snapshot, note, author_id, now))
    row = conn.execute(f"SELECT {_VERSION_COLUMNS} FROM review_versions WHERE id = ?",
                       (vid,)).fetchone()
    return _version(row)


class SQLiteReviews:
    """Reviews, decisions and corrected versions over a :class:`~store.connection.Database`.

    Implements :class:`~engine.contracts.store.ReviewStore`; mixed into
    :class:`store.sqlite.SQLiteStore`.
    """

    db: Database

    def reviews(self, *, run_id: str | None = None, status: str | None = None,
                limit: int | None = 100) -> list[Review]:
        """Reviews newest first, optionally of one run and one status (see
        :meth:`~engine.contracts.store.ReviewStore.reviews`)."""
        where, params = [], []
        if run_id:
            where.append("run_id = ?")
            params.append(run_id)
        if status:
            where.append("status = ?")
            params.append(status)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = f"SELECT {_COLUMNS} FROM reviews {clause} ORDER BY created_at DESC, id LIMIT ?"
        with self.db.read("listing reviews") as conn:
            rows = conn.execute(sql, (*params, -1 if limit is None else limit)).fetchall()
        return [_row(r) for r in rows]

    def review(self, review_id: str) -> Review:
        """One review. Raises NotFoundError."""
        with self.db.read(f"reading review {review_id}") as conn:
            return _get(conn, review_id)

    def decide_review(self, review_id: str, *, approved: bool, data: Any = None,
                      has_data: bool = False, reason: str = "", now: float
                      ) -> tuple[Review, bool]:
        """Record a decision (committed). Returns the review and whether it changed.

        Raises:
            InputError: a rejection with data.
            NotFoundError: no such review.
            ConflictError: it was already decided differently.
        """
        check_decision(approved, has_data)
        db = self.db
        with db.lock, db.guard(f"deciding review {review_id}"):
            result: tuple[Review, bool] = db.write(
                _decide, review_id, approved, data, has_data, reason, now)
            return result

    def add_review_version(self, *, review_id: str, parent_id: str,
                           snapshot: dict[str, Any], note: str | None, author_id: str,
                           now: float) -> ReviewVersion:
        """Store a correction (committed; the same content returns the same version)."""
        from engine.contracts.records import version_id_for

        vid = version_id_for(review_id, parent_id, snapshot)
        text = json.dumps(snapshot, separators=(",", ":"))
        db = self.db
        with db.lock, db.guard(f"adding a version to review {review_id}"):
            version: ReviewVersion = db.write(
                _add_version, vid, review_id, parent_id, text, note, author_id, now)
            return version

    def review_versions(self, review_id: str) -> list[ReviewVersion]:
        """The corrections of a review, oldest first."""
        sql = (f"SELECT {_VERSION_COLUMNS} FROM review_versions WHERE review_id = ? "
               "ORDER BY created_at, id")
        with self.db.read(f"listing versions of review {review_id}") as conn:
            return [_version(r) for r in conn.execute(sql, (review_id,))]

    def review_version(self, version_id: str) -> ReviewVersion:
        """One correction. Raises NotFoundError."""
        sql = f"SELECT {_VERSION_COLUMNS} FROM review_versions WHERE id = ?"
        with self.db.read(f"reading review version {version_id}") as conn:
            row = conn.execute(sql, (version_id,)).fetchone()
        if row is None:
            raise version_not_found(version_id)
        return _version(row)
