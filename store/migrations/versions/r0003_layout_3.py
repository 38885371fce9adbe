"""Layout 3: runs, definitions, steps (with their audit trail), artifacts, workflows,
reviews and review versions.

The baseline: the layout stepwell created before schema revisions were recorded. A
SQLite database that says ``PRAGMA user_version = 3`` and has no version table is at
this revision (:func:`store.migrate.upgrade` stamps it). The statements are frozen here:
later layouts change in later revisions, never in this file.

Revision ID: 0003
Revises:
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = None
branch_labels = None
depends_on = None

SQLITE_VIEW = "\nCREATE VIEW IF NOT EXISTS transitions AS\nSELECT s.run_id AS run_id, s.step_id AS step_id, CAST(j.key AS INTEGER) AS seq,\n  json_extract(j.value, '$[0]') AS status, json_extract(j.value, '$[1]') AS at,\n  json_extract(j.value, '$[2]') AS retry_count, json_extract(j.value, '$[3]') AS detail\nFROM steps s, json_each('[' || s.trail || ']') j\n"
SQLITE_DDL: tuple[str, ...] = (
    'CREATE TABLE IF NOT EXISTS runs (\n\tid VARCHAR NOT NULL, \n\tworkflow_id VARCHAR NOT NULL, \n\tworkflow_name VARCHAR NOT NULL, \n\tworkflow_digest VARCHAR NOT NULL, \n\tdefinition_id VARCHAR NOT NULL, \n\tinputs TEXT, \n\tmetadata TEXT, \n\torganization_id VARCHAR NOT NULL, \n\t"trigger" VARCHAR NOT NULL, \n\tstatus VARCHAR NOT NULL, \n\tfailing_step_id VARCHAR, \n\terror TEXT, \n\treason VARCHAR, \n\twaiting_for TEXT, \n\toutputs TEXT, \n\towner_pid INTEGER, \n\theartbeat_at FLOAT, \n\tcancel_requested BOOLEAN NOT NULL, \n\tparent_run_id VARCHAR, \n\tcreated_at FLOAT NOT NULL, \n\tstarted_at FLOAT, \n\tcompleted_at FLOAT, \n\tupdated_at FLOAT NOT NULL, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX IF NOT EXISTS ix_runs_created ON runs (created_at)',
    'CREATE INDEX IF NOT EXISTS ix_runs_org_created ON runs (organization_id, created_at)',
    'CREATE INDEX IF NOT EXISTS ix_runs_workflow ON runs (workflow_id, created_at)',
    'CREATE TABLE IF NOT EXISTS definitions (\n\tid VARCHAR NOT NULL, \n\tdefinition TEXT, \n\tcreated_at FLOAT NOT NULL, \n\tPRIMARY KEY (id)\n)',
    "CREATE TABLE IF NOT EXISTS steps (\n\tseq INTEGER NOT NULL, \n\trun_id VARCHAR NOT NULL, \n\tstep_id VARCHAR NOT NULL, \n\tblock_id VARCHAR NOT NULL, \n\tblock_type VARCHAR NOT NULL, \n\tlabel VARCHAR NOT NULL, \n\tstatus VARCHAR NOT NULL, \n\tscope TEXT, \n\tretry_count INTEGER NOT NULL, \n\tinputs TEXT, \n\toutputs TEXT, \n\terror TEXT, \n\treason VARCHAR, \n\tartifact_id VARCHAR, \n\tartifact_operation VARCHAR, \n\tmodel VARCHAR, \n\ttokens TEXT, \n\tcost TEXT, \n\ttrace_spans TEXT, \n\tcontrol TEXT, \n\tcreated_at FLOAT NOT NULL, \n\tqueued_at FLOAT, \n\tstarted_at FLOAT, \n\tcompleted_at FLOAT, \n\tupdated_at FLOAT NOT NULL, \n\tduration_ms INTEGER, \n\ttrail TEXT DEFAULT '' NOT NULL, \n\tPRIMARY KEY (seq)\n)",
    "CREATE INDEX IF NOT EXISTS ix_steps_run_exceptional ON steps (run_id, seq) WHERE status IN ('error', 'skipped', 'cancelled', 'awaiting_review')",
    'CREATE INDEX IF NOT EXISTS ix_steps_run_seq ON steps (run_id, seq)',
    'CREATE UNIQUE INDEX IF NOT EXISTS ux_steps_step_run ON steps (step_id, run_id)',
    'CREATE TABLE IF NOT EXISTS artifacts (\n\tid VARCHAR NOT NULL, \n\trun_id VARCHAR NOT NULL, \n\tstep_id VARCHAR NOT NULL, \n\toperation VARCHAR NOT NULL, \n\trecord TEXT, \n\tcreated_at FLOAT NOT NULL, \n\tPRIMARY KEY (id)\n)',
    'CREATE TABLE IF NOT EXISTS workflows (\n\tid VARCHAR NOT NULL, \n\tname VARCHAR NOT NULL, \n\tdigest VARCHAR NOT NULL, \n\tdefinition TEXT, \n\tyaml TEXT, \n\torganization_id VARCHAR NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX IF NOT EXISTS ix_workflows_org ON workflows (organization_id, created_at)',
    'CREATE TABLE IF NOT EXISTS workflow_versions (\n\tworkflow_id VARCHAR NOT NULL, \n\tid VARCHAR NOT NULL, \n\tdefinition TEXT, \n\tyaml TEXT, \n\tcreated_at FLOAT NOT NULL, \n\tPRIMARY KEY (workflow_id, id)\n)',
    'CREATE INDEX IF NOT EXISTS ix_workflow_versions_created ON workflow_versions (workflow_id, created_at)',
    'CREATE TABLE IF NOT EXISTS reviews (\n\tid VARCHAR NOT NULL, \n\trun_id VARCHAR NOT NULL, \n\tstep_id VARCHAR NOT NULL, \n\tblock_id VARCHAR NOT NULL, \n\tstatus VARCHAR NOT NULL, \n\tdata TEXT, \n\tdecision VARCHAR, \n\tdecision_data TEXT, \n\tnote VARCHAR, \n\tcreated_at FLOAT NOT NULL, \n\tdecided_at FLOAT, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX IF NOT EXISTS ix_reviews_run_step ON reviews (run_id, step_id)',
    'CREATE INDEX IF NOT EXISTS ix_reviews_status ON reviews (status, created_at)',
    'CREATE TABLE IF NOT EXISTS review_versions (\n\tid VARCHAR NOT NULL, \n\treview_id VARCHAR NOT NULL, \n\tparent_id VARCHAR NOT NULL, \n\tsnapshot TEXT, \n\tnote VARCHAR, \n\tauthor_id VARCHAR NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX IF NOT EXISTS ix_review_versions_review ON review_versions (review_id, created_at)',
)

POSTGRES_VIEW = "\nCREATE OR REPLACE VIEW transitions AS\nSELECT s.run_id AS run_id, s.step_id AS step_id, (j.ord - 1)::integer AS seq,\n  j.value ->> 0 AS status, (j.value ->> 1)::double precision AS at,\n  (j.value ->> 2)::integer AS retry_count, j.value ->> 3 AS detail\nFROM steps s CROSS JOIN LATERAL json_array_elements(('[' || s.trail || ']')::json)\n  WITH ORDINALITY AS j(value, ord)\n"
POSTGRES_DDL: tuple[str, ...] = (
    'CREATE TABLE IF NOT EXISTS runs (\n\tid VARCHAR COLLATE "C" NOT NULL, \n\tworkflow_id VARCHAR COLLATE "C" NOT NULL, \n\tworkflow_name VARCHAR COLLATE "C" NOT NULL, \n\tworkflow_digest VARCHAR COLLATE "C" NOT NULL, \n\tdefinition_id VARCHAR COLLATE "C" NOT NULL, \n\tinputs TEXT, \n\tmetadata TEXT, \n\torganization_id VARCHAR COLLATE "C" NOT NULL, \n\ttrigger VARCHAR COLLATE "C" NOT NULL, \n\tstatus VARCHAR COLLATE "C" NOT NULL, \n\tfailing_step_id VARCHAR COLLATE "C", \n\terror TEXT, \n\treason VARCHAR COLLATE "C", \n\twaiting_for TEXT, \n\toutputs TEXT, \n\towner_pid INTEGER, \n\theartbeat_at FLOAT, \n\tcancel_requested BOOLEAN NOT NULL, \n\tparent_run_id VARCHAR COLLATE "C", \n\tcreated_at FLOAT NOT NULL, \n\tstarted_at FLOAT, \n\tcompleted_at FLOAT, \n\tupdated_at FLOAT NOT NULL, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX IF NOT EXISTS ix_runs_created ON runs (created_at)',
    'CREATE INDEX IF NOT EXISTS ix_runs_org_created ON runs (organization_id, created_at)',
    'CREATE INDEX IF NOT EXISTS ix_runs_workflow ON runs (workflow_id, created_at)',
    'CREATE TABLE IF NOT EXISTS definitions (\n\tid VARCHAR COLLATE "C" NOT NULL, \n\tdefinition TEXT, \n\tcreated_at FLOAT NOT NULL, \n\tPRIMARY KEY (id)\n)',
    'CREATE TABLE IF NOT EXISTS steps (\n\tseq BIGSERIAL NOT NULL, \n\trun_id VARCHAR COLLATE "C" NOT NULL, \n\tstep_id VARCHAR COLLATE "C" NOT NULL, \n\tblock_id VARCHAR COLLATE "C" NOT NULL, \n\tblock_type VARCHAR COLLATE "C" NOT NULL, \n\tlabel VARCHAR COLLATE "C" NOT NULL, \n\tstatus VARCHAR COLLATE "C" NOT NULL, \n\tscope TEXT, \n\tretry_count INTEGER NOT NULL, \n\tinputs TEXT, \n\toutputs TEXT, \n\terror TEXT, \n\treason VARCHAR COLLATE "C", \n\tartifact_id VARCHAR COLLATE "C", \n\tartifact_operation VARCHAR COLLATE "C", \n\tmodel VARCHAR COLLATE "C", \n\ttokens TEXT, \n\tcost TEXT, \n\ttrace_spans TEXT, \n\tcontrol TEXT, \n\tcreated_at FLOAT NOT NULL, \n\tqueued_at FLOAT, \n\tstarted_at FLOAT, \n\tcompleted_at FLOAT, \n\tupdated_at FLOAT NOT NULL, \n\tduration_ms INTEGER, \n\ttrail TEXT DEFAULT \'\' NOT NULL, \n\tPRIMARY KEY (seq)\n)',
    "CREATE INDEX IF NOT EXISTS ix_steps_run_exceptional ON steps (run_id, seq) WHERE status IN ('error', 'skipped', 'cancelled', 'awaiting_review')",
    'CREATE INDEX IF NOT EXISTS ix_steps_run_seq ON steps (run_id, seq)',
    'CREATE UNIQUE INDEX IF NOT EXISTS ux_steps_step_run ON steps (step_id, run_id)',
    'CREATE TABLE IF NOT EXISTS artifacts (\n\tid VARCHAR COLLATE "C" NOT NULL, \n\trun_id VARCHAR COLLATE "C" NOT NULL, \n\tstep_id VARCHAR COLLATE "C" NOT NULL, \n\toperation VARCHAR COLLATE "C" NOT NULL, \n\trecord TEXT, \n\tcreated_at FLOAT NOT NULL, \n\tPRIMARY KEY (id)\n)',
    'CREATE TABLE IF NOT EXISTS workflows (\n\tid VARCHAR COLLATE "C" NOT NULL, \n\tname VARCHAR COLLATE "C" NOT NULL, \n\tdigest VARCHAR COLLATE "C" NOT NULL, \n\tdefinition TEXT, \n\tyaml TEXT, \n\torganization_id VARCHAR COLLATE "C" NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX IF NOT EXISTS ix_workflows_org ON workflows (organization_id, created_at)',
    'CREATE TABLE IF NOT EXISTS workflow_versions (\n\tworkflow_id VARCHAR COLLATE "C" NOT NULL, \n\tid VARCHAR COLLATE "C" NOT NULL, \n\tdefinition TEXT, \n\tyaml TEXT, \n\tcreated_at FLOAT NOT NULL, \n\tPRIMARY KEY (workflow_id, id)\n)',
    'CREATE INDEX IF NOT EXISTS ix_workflow_versions_created ON workflow_versions (workflow_id, created_at)',
    'CREATE TABLE IF NOT EXISTS reviews (\n\tid VARCHAR COLLATE "C" NOT NULL, \n\trun_id VARCHAR COLLATE "C" NOT NULL, \n\tstep_id VARCHAR COLLATE "C" NOT NULL, \n\tblock_id VARCHAR COLLATE "C" NOT NULL, \n\tstatus VARCHAR COLLATE "C" NOT NULL, \n\tdata TEXT, \n\tdecision VARCHAR COLLATE "C", \n\tdecision_data TEXT, \n\tnote VARCHAR COLLATE "C", \n\tcreated_at FLOAT NOT NULL, \n\tdecided_at FLOAT, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX IF NOT EXISTS ix_reviews_run_step ON reviews (run_id, step_id)',
    'CREATE INDEX IF NOT EXISTS ix_reviews_status ON reviews (status, created_at)',
    'CREATE TABLE IF NOT EXISTS review_versions (\n\tid VARCHAR COLLATE "C" NOT NULL, \n\treview_id VARCHAR COLLATE "C" NOT NULL, \n\tparent_id VARCHAR COLLATE "C" NOT NULL, \n\tsnapshot TEXT, \n\tnote VARCHAR COLLATE "C", \n\tauthor_id VARCHAR COLLATE "C" NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX IF NOT EXISTS ix_review_versions_review ON review_versions (review_id, created_at)',
)

TABLES = ("review_versions", "reviews", "workflow_versions", "workflows", "artifacts", "steps",
          "definitions", "runs")


def upgrade() -> None:
    """Create layout 3."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in (*SQLITE_DDL, SQLITE_VIEW) if sqlite else (*POSTGRES_DDL, POSTGRES_VIEW):
        op.execute(statement)
    if sqlite:
        op.execute("PRAGMA user_version = 3")


def downgrade() -> None:
    """Drop everything layout 3 created."""
    op.execute("DROP VIEW IF EXISTS transitions")
    for table in TABLES:
        op.drop_table(table)
