"""Layout 4: a run queue shared by workers on several machines.

``runs.owner_host`` says on which machine ``owner_pid`` lives (a pid means nothing on
another host, so there only the heartbeat lease counts); ``ix_runs_active`` indexes the
runs a worker may claim (pending, queued, running). On PostgreSQL the file store moves
into the database (``files``, ``blobs``), so workers on any machine read the same
documents, and ``json_extract`` gets the definition the store's queries need.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ACTIVE = "status IN ('pending', 'queued', 'running')"
POSTGRES_FILES = (
    ('CREATE TABLE IF NOT EXISTS files (\n\tid VARCHAR COLLATE "C" NOT NULL, \n\tfilename '
     'VARCHAR COLLATE "C" NOT NULL, \n\tmime_type VARCHAR COLLATE "C" NOT NULL, \n\tsize '
     'BIGINT NOT NULL, \n\tdata BYTEA NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\tPRIMARY '
     'KEY (id)\n)'),
    ('CREATE TABLE IF NOT EXISTS blobs (\n\tid VARCHAR COLLATE "C" NOT NULL, \n\tdata BYTEA '
     'NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\tPRIMARY KEY (id)\n)'),
)

POSTGRES_JSON_EXTRACT = """
CREATE OR REPLACE FUNCTION json_extract(doc text, path text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE
    WHEN path LIKE '$."%"' THEN doc::json ->> replace(substr(path, 4, length(path) - 4), '""', '"')
    WHEN path LIKE '$.%' THEN doc::json #>> string_to_array(substr(path, 3), '.')
  END
$$
"""


def upgrade() -> None:
    """Add the owner's host, the active-runs index and (PostgreSQL) the file tables."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    collate = "" if sqlite else ' COLLATE "C"'
    op.execute(f"ALTER TABLE runs ADD COLUMN owner_host VARCHAR{collate}")
    op.execute(f"CREATE INDEX IF NOT EXISTS ix_runs_active ON runs (created_at) WHERE {ACTIVE}")
    if sqlite:
        op.execute("PRAGMA user_version = 4")
        return
    for statement in (*POSTGRES_FILES, POSTGRES_JSON_EXTRACT):
        op.execute(statement)


def downgrade() -> None:
    """Undo :func:`upgrade`."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.execute("DROP INDEX IF EXISTS ix_runs_active")
    op.execute("ALTER TABLE runs DROP COLUMN owner_host")
    if sqlite:
        op.execute("PRAGMA user_version = 3")
        return
    op.execute("DROP FUNCTION IF EXISTS json_extract(text, text)")
    op.execute("DROP TABLE IF EXISTS blobs")
    op.execute("DROP TABLE IF EXISTS files")
