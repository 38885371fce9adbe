"""Layout 5: a registered workflow keeps a draft beside the version it published.

New nullable columns on ``workflows``: an older row reads as published at creation and
never edited. Tables layout 5 adds (evals, block executions, the file catalog) are
created by the store when it opens a database at this revision, like any table missing
from it.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

#: Column -> (SQLite type, PostgreSQL type).
COLUMNS = {
    "description": ("TEXT", "TEXT"),
    "project_id": ("VARCHAR", 'VARCHAR COLLATE "C"'),
    "published_version": ("VARCHAR", 'VARCHAR COLLATE "C"'),
    "published_at": ("FLOAT", "FLOAT"),
    "published_description": ("TEXT", "TEXT"),
    "revision": ("INTEGER", "INTEGER"),
    "stamps": ("TEXT", "TEXT"),
    "updated_at": ("FLOAT", "FLOAT"),
}


def upgrade() -> None:
    """Add the draft and publication columns to ``workflows``."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name, (lite, postgres) in COLUMNS.items():
        op.execute(f"ALTER TABLE workflows ADD COLUMN {name} {lite if sqlite else postgres}")
    if sqlite:
        op.execute("PRAGMA user_version = 5")


def downgrade() -> None:
    """Undo :func:`upgrade`."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name in reversed(COLUMNS):
        op.execute(f"ALTER TABLE workflows DROP COLUMN {name}")
    if sqlite:
        op.execute("PRAGMA user_version = 4")
