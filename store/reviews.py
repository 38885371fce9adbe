"""Human reviews: one row per step that waits in ``awaiting_review``.

A review id is derived from the run and step (``rev_`` + 20 hex of sha256), so opening
the same review twice (a resumed run replays its waiting steps) is harmless. A decision is
written once: the same decision again is accepted and changes nothing; a different one is
a :class:`~engine.contracts.errors.ConflictError`.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from engine.contracts.errors import ConflictError, InputError, NotFoundError


def review_id_for(run_id: str, step_id: str) -> str:
    """The review id of ``step_id`` in ``run_id``."""
    return "rev_" + hashlib.sha256(f"{run_id}\0{step_id}".encode()).hexdigest()[:20]


@dataclass(frozen=True, slots=True, kw_only=True)
class Review:
    """A review as stored."""

    id: str
    run_id: str
    step_id: str
    block_id: str
    status: str
    data: Any
    decision: str | None
    decision_data: Any
    reason: str | None
    created_at: float
    decided_at: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form for ``--json`` and HTTP."""
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


_COLUMNS = ("id, run_id, step_id, block_id, status, data, decision, decision_data, "
            "note, created_at, decided_at")


def _row(r: tuple[Any, ...]) -> Review:
    return Review(id=r[0], run_id=r[1], step_id=r[2], block_id=r[3], status=r[4],
                  data=json.loads(r[5]) if r[5] else None, decision=r[6],
                  decision_data=json.loads(r[7]) if r[7] else None, reason=r[8],
                  created_at=r[9], decided_at=r[10])


def open_review(conn: sqlite3.Connection, run_id: str, step_id: str, block_id: str,
                data: Any, now: float) -> str:
    """Insert the pending review of a waiting step (no-op if it exists); its id."""
    rid = review_id_for(run_id, step_id)
    conn.execute(
        "INSERT OR IGNORE INTO reviews (id, run_id, step_id, block_id, status, data, "
        "created_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
        (rid, run_id, step_id, block_id, json.dumps(data, separators=(",", ":")), now))
    return rid


def list_reviews(conn: sqlite3.Connection, *, run_id: str | None = None,
                 status: str | None = None, limit: int = 100) -> list[Review]:
    """Reviews, newest first, optionally of one run and one status."""
    where, params = [], []
    if run_id:
        where.append("run_id = ?")
        params.append(run_id)
    if status:
        where.append("status = ?")
        params.append(status)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM reviews {clause} "
                        "ORDER BY created_at DESC, id LIMIT ?", (*params, limit)).fetchall()
    return [_row(r) for r in rows]


def get_review(conn: sqlite3.Connection, review_id: str) -> Review:
    """One review. Raises NotFoundError."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM reviews WHERE id = ?", (review_id,)).fetchone()
    if row is None:
        raise NotFoundError("review", review_id)
    return _row(row)


def decide(conn: sqlite3.Connection, review_id: str, *, approved: bool, data: Any,
           has_data: bool, reason: str, now: float) -> tuple[Review, bool]:
    """Record a decision. Returns the review and whether this call changed anything.

    Raises:
        NotFoundError: no such review.
        ConflictError: it was already decided differently.
        InputError: rejecting with corrected data.
    """
    if not approved and has_data:
        raise InputError("A rejection carries no data; pass --data only with approve.")
    review = get_review(conn, review_id)
    decision = "approved" if approved else "rejected"
    payload = json.dumps({"data": data}) if has_data else None
    if review.decision is not None:
        same = review.decision == decision and (
            (review.decision_data or None) == (json.loads(payload) if payload else None))
        if same:
            return review, False
        how = (f"{decision} with other data" if review.decision == decision
               else decision)
        raise ConflictError(
            f"Review {review_id} was already {review.decision}; it cannot now be {how}. "
            "Decisions are final: rerun from the reviewed step "
            f"(`stepwell runs rerun {review.run_id} --from STEP_ID`) if the result must "
            "change.")
    conn.execute("UPDATE reviews SET status = ?, decision = ?, decision_data = ?, note = ?, "
                 "decided_at = ? WHERE id = ?",
                 (decision, decision, payload, reason or None, now, review_id))
    return get_review(conn, review_id), True
