"""Layout 7: SQLite's ``ix_steps_run_exceptional`` states its condition as comparisons.

The partial index of a run's exceptional steps (error, skipped, cancelled,
awaiting_review) had the condition ``status IN (...)``. SQLite checks a partial index's
condition for the old and the new row on every write that changes ``status``, and codes
an ``IN`` list there as a temporary b-tree filled per statement: about 10 us on each of
the three or four updates a step goes through. The same condition as comparisons joined
by ``OR`` costs almost nothing (:data:`store.layout.EXCEPTIONAL_STATUSES_SQL`).

SQLite: the index is dropped and created again (a scan of ``steps`` that indexes the
exceptional rows only). PostgreSQL: nothing changes; its planner proves either spelling
from the other, and its index keeps the ``IN`` form.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_OR = ("(status = 'error' OR status = 'skipped' OR status = 'cancelled' "
       "OR status = 'awaiting_review')")
_IN = "status IN ('error', 'skipped', 'cancelled', 'awaiting_review')"


def _recreate(condition: str, user_version: int) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("DROP INDEX IF EXISTS ix_steps_run_exceptional")
    op.execute("CREATE INDEX ix_steps_run_exceptional ON steps (run_id, seq) "
               f"WHERE {condition}")
    op.execute(f"PRAGMA user_version = {user_version}")


def upgrade() -> None:
    """SQLite: the index again, with its condition as comparisons joined by OR."""
    _recreate(_OR, 7)


def downgrade() -> None:
    """SQLite: the index again, with its condition as an IN list (layout 6)."""
    _recreate(_IN, 6)
