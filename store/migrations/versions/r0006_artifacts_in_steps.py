"""Layout 6: a step's artifact record lives in its own row, and a new row keeps room.

Three nullable columns on ``steps``: ``artifact`` (the operation record),
``artifact_at`` (when it was recorded) and ``reserve`` (zero bytes a SQLite row holds
until its step first moves, see :data:`store.writes.RESERVE`). New records go there, under ids that name the
row (:func:`store.stepdata.locate_artifact`), so recording one costs no row, index entry
or statement of its own. The ``artifacts`` table stays: the records written before this
revision keep their ids and are read from it. Nothing is copied, so the upgrade is
instant on any size of database.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``steps.artifact``, ``steps.artifact_at`` and ``steps.reserve``."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.execute("ALTER TABLE steps ADD COLUMN artifact TEXT")
    op.execute("ALTER TABLE steps ADD COLUMN artifact_at FLOAT")
    op.execute(f"ALTER TABLE steps ADD COLUMN reserve {'BLOB' if sqlite else 'BYTEA'}")
    if sqlite:
        op.execute("PRAGMA user_version = 6")


def downgrade() -> None:
    """Undo :func:`upgrade`: records kept in step rows move to ``artifacts`` first."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.execute(
        "INSERT INTO artifacts (id, run_id, step_id, operation, record, created_at) "
        "SELECT artifact_id, run_id, step_id, artifact_operation, artifact, artifact_at "
        "FROM steps WHERE artifact IS NOT NULL ON CONFLICT DO NOTHING")
    op.execute("ALTER TABLE steps DROP COLUMN reserve")
    op.execute("ALTER TABLE steps DROP COLUMN artifact_at")
    op.execute("ALTER TABLE steps DROP COLUMN artifact")
    if sqlite:
        op.execute("PRAGMA user_version = 5")
