"""Layout 8: transitions and in-row artifacts leave out what the step row already holds.

A transition in ``steps.trail`` was always ``[status, at, retry_count, detail]``. From
this revision an element leaves out its trailing defaults (no detail, retry count 0)
and its time when one of the row's columns holds it exactly: ``created_at`` for
``pending``, ``queued_at`` for the first ``queued``, ``started_at`` for the first
``running``, ``completed_at`` for the final status. A chain step's four transitions
shrink from about 150 bytes to 48. An in-row artifact record is kept without its
``operation`` member when that comes first (``artifact_operation`` holds the name); the
read puts it back first. :mod:`store.stepdata` writes both forms.

Upgrade: the ``transitions`` view is created again to read a missing time from the
row's columns, a missing retry count as 0 and a missing detail as null. Rows are not
rewritten: the full elements and records written before read the same, so the upgrade
is instant on any size of database.

Downgrade: every step row written in the compact forms is rewritten in the full ones
(times from the row's columns, the operation from ``artifact_operation``), then the
layout-7 view is created again.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import json
from typing import Any

from alembic import op
from sqlalchemy import text

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_SQLITE_VIEW_7 = """
CREATE VIEW transitions AS
SELECT s.run_id AS run_id, s.step_id AS step_id, CAST(j.key AS INTEGER) AS seq,
  json_extract(j.value, '$[0]') AS status, json_extract(j.value, '$[1]') AS at,
  json_extract(j.value, '$[2]') AS retry_count, json_extract(j.value, '$[3]') AS detail
FROM steps s, json_each('[' || s.trail || ']') j
"""
_SQLITE_VIEW_8 = """
CREATE VIEW transitions AS
SELECT s.run_id AS run_id, s.step_id AS step_id, CAST(j.key AS INTEGER) AS seq,
  json_extract(j.value, '$[0]') AS status,
  COALESCE(json_extract(j.value, '$[1]'), CASE json_extract(j.value, '$[0]')
    WHEN 'pending' THEN s.created_at WHEN 'queued' THEN s.queued_at
    WHEN 'running' THEN s.started_at ELSE s.completed_at END) AS at,
  COALESCE(json_extract(j.value, '$[2]'), 0) AS retry_count,
  json_extract(j.value, '$[3]') AS detail
FROM steps s, json_each('[' || s.trail || ']') j
"""
_PG_VIEW_7 = """
CREATE VIEW transitions AS
SELECT s.run_id AS run_id, s.step_id AS step_id, (j.ord - 1)::integer AS seq,
  j.value ->> 0 AS status, (j.value ->> 1)::double precision AS at,
  (j.value ->> 2)::integer AS retry_count, j.value ->> 3 AS detail
FROM steps s CROSS JOIN LATERAL json_array_elements(('[' || s.trail || ']')::json)
  WITH ORDINALITY AS j(value, ord)
"""
_PG_VIEW_8 = """
CREATE VIEW transitions AS
SELECT s.run_id AS run_id, s.step_id AS step_id, (j.ord - 1)::integer AS seq,
  j.value ->> 0 AS status,
  COALESCE((j.value ->> 1)::double precision, CASE j.value ->> 0
    WHEN 'pending' THEN s.created_at WHEN 'queued' THEN s.queued_at
    WHEN 'running' THEN s.started_at ELSE s.completed_at END) AS at,
  COALESCE((j.value ->> 2)::integer, 0) AS retry_count, j.value ->> 3 AS detail
FROM steps s CROSS JOIN LATERAL json_array_elements(('[' || s.trail || ']')::json)
  WITH ORDINALITY AS j(value, ord)
"""
#: Step rows read and rewritten per statement by the downgrade.
_CHUNK = 2_000


def _view(sqlite_view: str, pg_view: str, user_version: int) -> None:
    """Create the ``transitions`` view again (and set SQLite's layout number)."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.execute("DROP VIEW IF EXISTS transitions")
    op.execute(sqlite_view if sqlite else pg_view)
    if sqlite:
        op.execute(f"PRAGMA user_version = {user_version}")


def upgrade() -> None:
    """The ``transitions`` view that reads both the full and the compact elements."""
    _view(_SQLITE_VIEW_8, _PG_VIEW_8, 8)


def downgrade() -> None:
    """Rewrite compact transitions and artifact records in full, then the layout-7 view."""
    conn = op.get_bind()
    after = -1
    while True:
        rows = conn.execute(text(
            "SELECT seq, trail, created_at, queued_at, started_at, completed_at, artifact, "
            "artifact_operation FROM steps WHERE seq > :after ORDER BY seq LIMIT :n"),
            {"after": after, "n": _CHUNK}).fetchall()
        if not rows:
            break
        after = rows[-1][0]
        changed = [change for change in map(_full_row, rows) if change is not None]
        if changed:
            conn.execute(text("UPDATE steps SET trail = :trail, artifact = :artifact "
                              "WHERE seq = :seq"), changed)
    _view(_SQLITE_VIEW_7, _PG_VIEW_7, 7)


def _full_row(row: Any) -> dict[str, Any] | None:
    """The full forms of one row's trail and artifact, or None when both are full."""
    seq, trail, created, queued, started, completed, artifact, operation = row
    times = {"pending": created, "queued": queued, "running": started}
    elements = json.loads(f"[{trail}]")
    full_trail = trail
    if any(len(e) < 4 or e[1] is None for e in elements):
        full_trail = ",".join(_full_element(e, times, completed) for e in elements)
    full_artifact = _full_artifact(artifact, operation)
    if full_trail == trail and full_artifact == artifact:
        return None
    return {"seq": seq, "trail": full_trail, "artifact": full_artifact}


def _full_element(element: list[Any], times: dict[str, float | None],
                  completed: float | None) -> str:
    """One transition as layout 7 wrote it: ``[status, at, retry_count, detail]``."""
    status = element[0]
    at = element[1] if len(element) > 1 and element[1] is not None else \
        times.get(status, completed)
    retry = element[2] if len(element) > 2 else 0
    detail = element[3] if len(element) > 3 else None
    return (f"[{json.dumps(status)},{float(at)!r},{retry},"  # type: ignore[arg-type]
            f"{json.dumps(detail, separators=(',', ':'))}]")


def _full_artifact(artifact: str | None, operation: str | None) -> str | None:
    """A record stored without its leading ``operation`` with it again, as text."""
    if artifact is None or operation is None or artifact.startswith('{"operation":'):
        return artifact
    record = json.loads(artifact)
    if not isinstance(record, dict) or "operation" in record or (
            len(record) == 1 and "blob" in record):  # a full record, or a blob marker
        return artifact
    head = '{"operation":' + json.dumps(operation)
    return head + ("}" if artifact == "{}" else "," + artifact[1:])
