"""The PostgreSQL layout as SQL, so opening a database never imports the ORM.

The same tables as SQLite (:mod:`store.models`), rendered for PostgreSQL with three
differences: text columns compare byte-wise (``COLLATE "C"``, the order SQLite uses, so
keyset pages agree across backends), ``steps.seq`` is a ``BIGSERIAL``, and the file
store lives in the database (``files``, ``blobs``: workers on other machines read the
same documents). ``tests/store/test_pg_layout.py`` checks that :data:`PG_DDL` is what
:func:`render_pg_ddl` makes of the models; after changing a model, run
``python -m store.pg.layout`` and paste what it prints over :data:`PG_DDL`.
"""

from __future__ import annotations

#: The audit trail as rows (:data:`store.layout.TRANSITIONS_VIEW` for PostgreSQL, which
#: says how a missing time, retry count or detail is read).
PG_TRANSITIONS_VIEW = """
CREATE OR REPLACE VIEW transitions AS
SELECT s.run_id AS run_id, s.step_id AS step_id, (j.ord - 1)::integer AS seq,
  j.value ->> 0 AS status,
  COALESCE((j.value ->> 1)::double precision, CASE j.value ->> 0
    WHEN 'pending' THEN s.created_at WHEN 'queued' THEN s.queued_at
    WHEN 'running' THEN s.started_at ELSE s.completed_at END) AS at,
  COALESCE((j.value ->> 2)::integer, 0) AS retry_count, j.value ->> 3 AS detail
FROM steps s CROSS JOIN LATERAL json_array_elements(('[' || s.trail || ']')::json)
  WITH ORDINALITY AS j(value, ord)
"""

#: SQLite's ``json_extract(doc, path)`` for the paths the store's queries use
#: (``$."key"``, ``$.a.b``), so the same SQL runs on both backends.
PG_FUNCTIONS = """
CREATE OR REPLACE FUNCTION json_extract(doc text, path text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE
    WHEN path LIKE '$."%"' THEN doc::json ->> replace(substr(path, 4, length(path) - 4), '""', '"')
    WHEN path LIKE '$.%' THEN doc::json #>> string_to_array(substr(path, 3), '.')
  END
$$
"""

#: ``CREATE ... IF NOT EXISTS`` for every table and index, rendered for PostgreSQL.
PG_DDL: tuple[str, ...] = (
    'CREATE TABLE IF NOT EXISTS runs (\n\tid VARCHAR COLLATE "C" NOT NULL, \n\tworkflow_id VARCHAR COLLATE "C" NOT NULL, \n\tworkflow_name VARCHAR COLLATE "C" NOT NULL, \n\tworkflow_digest VARCHAR COLLATE "C" NOT NULL, \n\tdefinition_id VARCHAR COLLATE "C" NOT NULL, \n\tinputs TEXT, \n\tmetadata TEXT, \n\torganization_id VARCHAR COLLATE "C" NOT NULL, \n\ttrigger VARCHAR COLLATE "C" NOT NULL, \n\tstatus VARCHAR COLLATE "C" NOT NULL, \n\tfailing_step_id VARCHAR COLLATE "C", \n\terror TEXT, \n\treason VARCHAR COLLATE "C", \n\twaiting_for TEXT, \n\toutputs TEXT, \n\towner_pid INTEGER, \n\theartbeat_at FLOAT, \n\tcancel_requested BOOLEAN NOT NULL, \n\tparent_run_id VARCHAR COLLATE "C", \n\tcreated_at FLOAT NOT NULL, \n\tstarted_at FLOAT, \n\tcompleted_at FLOAT, \n\tupdated_at FLOAT NOT NULL, \n\towner_host VARCHAR COLLATE "C", \n\tPRIMARY KEY (id)\n)',
    "CREATE INDEX IF NOT EXISTS ix_runs_active ON runs (created_at) WHERE status IN ('pending', 'queued', 'running')",
    'CREATE INDEX IF NOT EXISTS ix_runs_created ON runs (created_at)',
    'CREATE INDEX IF NOT EXISTS ix_runs_org_created ON runs (organization_id, created_at)',
    'CREATE INDEX IF NOT EXISTS ix_runs_workflow ON runs (workflow_id, created_at)',
    'CREATE TABLE IF NOT EXISTS definitions (\n\tid VARCHAR COLLATE "C" NOT NULL, \n\tdefinition TEXT, \n\tcreated_at FLOAT NOT NULL, \n\tPRIMARY KEY (id)\n)',
    'CREATE TABLE IF NOT EXISTS steps (\n\tseq BIGSERIAL NOT NULL, \n\trun_id VARCHAR COLLATE "C" NOT NULL, \n\tstep_id VARCHAR COLLATE "C" NOT NULL, \n\tblock_id VARCHAR COLLATE "C" NOT NULL, \n\tblock_type VARCHAR COLLATE "C" NOT NULL, \n\tlabel VARCHAR COLLATE "C" NOT NULL, \n\tstatus VARCHAR COLLATE "C" NOT NULL, \n\tscope TEXT, \n\tretry_count INTEGER NOT NULL, \n\tinputs TEXT, \n\toutputs TEXT, \n\terror TEXT, \n\treason VARCHAR COLLATE "C", \n\tartifact_id VARCHAR COLLATE "C", \n\tartifact_operation VARCHAR COLLATE "C", \n\tmodel VARCHAR COLLATE "C", \n\ttokens TEXT, \n\tcost TEXT, \n\ttrace_spans TEXT, \n\tcontrol TEXT, \n\tcreated_at FLOAT NOT NULL, \n\tqueued_at FLOAT, \n\tstarted_at FLOAT, \n\tcompleted_at FLOAT, \n\tupdated_at FLOAT NOT NULL, \n\tduration_ms INTEGER, \n\ttrail TEXT DEFAULT \'\' NOT NULL, \n\tartifact TEXT, \n\tartifact_at FLOAT, \n\treserve BYTEA, \n\tPRIMARY KEY (seq)\n)',
    "CREATE INDEX IF NOT EXISTS ix_steps_run_exceptional ON steps (run_id, seq) WHERE status IN ('error', 'skipped', 'cancelled', 'awaiting_review')",
    'CREATE INDEX IF NOT EXISTS ix_steps_run_seq ON steps (run_id, seq)',
    'CREATE UNIQUE INDEX IF NOT EXISTS ux_steps_step_run ON steps (step_id, run_id)',
    'CREATE TABLE IF NOT EXISTS artifacts (\n\tid VARCHAR COLLATE "C" NOT NULL, \n\trun_id VARCHAR COLLATE "C" NOT NULL, \n\tstep_id VARCHAR COLLATE "C" NOT NULL, \n\toperation VARCHAR COLLATE "C" NOT NULL, \n\trecord TEXT, \n\tcreated_at FLOAT NOT NULL, \n\tPRIMARY KEY (id)\n)',
    'CREATE TABLE IF NOT EXISTS workflows (\n\tid VARCHAR COLLATE "C" NOT NULL, \n\tname VARCHAR COLLATE "C" NOT NULL, \n\tdigest VARCHAR COLLATE "C" NOT NULL, \n\tdefinition TEXT, \n\tyaml TEXT, \n\torganization_id VARCHAR COLLATE "C" NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\tdescription TEXT, \n\tproject_id VARCHAR COLLATE "C", \n\tpublished_version VARCHAR COLLATE "C", \n\tpublished_at FLOAT, \n\tpublished_description TEXT, \n\trevision INTEGER, \n\tstamps TEXT, \n\tupdated_at FLOAT, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX IF NOT EXISTS ix_workflows_org ON workflows (organization_id, created_at)',
    'CREATE TABLE IF NOT EXISTS workflow_versions (\n\tworkflow_id VARCHAR COLLATE "C" NOT NULL, \n\tid VARCHAR COLLATE "C" NOT NULL, \n\tdefinition TEXT, \n\tyaml TEXT, \n\tcreated_at FLOAT NOT NULL, \n\tPRIMARY KEY (workflow_id, id)\n)',
    'CREATE INDEX IF NOT EXISTS ix_workflow_versions_created ON workflow_versions (workflow_id, created_at)',
    'CREATE TABLE IF NOT EXISTS reviews (\n\tid VARCHAR COLLATE "C" NOT NULL, \n\trun_id VARCHAR COLLATE "C" NOT NULL, \n\tstep_id VARCHAR COLLATE "C" NOT NULL, \n\tblock_id VARCHAR COLLATE "C" NOT NULL, \n\tstatus VARCHAR COLLATE "C" NOT NULL, \n\tdata TEXT, \n\tdecision VARCHAR COLLATE "C", \n\tdecision_data TEXT, \n\tnote VARCHAR COLLATE "C", \n\tcreated_at FLOAT NOT NULL, \n\tdecided_at FLOAT, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX IF NOT EXISTS ix_reviews_run_step ON reviews (run_id, step_id)',
    'CREATE INDEX IF NOT EXISTS ix_reviews_status ON reviews (status, created_at)',
    'CREATE TABLE IF NOT EXISTS review_versions (\n\tid VARCHAR COLLATE "C" NOT NULL, \n\treview_id VARCHAR COLLATE "C" NOT NULL, \n\tparent_id VARCHAR COLLATE "C" NOT NULL, \n\tsnapshot TEXT, \n\tnote VARCHAR COLLATE "C", \n\tauthor_id VARCHAR COLLATE "C" NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX IF NOT EXISTS ix_review_versions_review ON review_versions (review_id, created_at)',
    'CREATE TABLE IF NOT EXISTS evals (\n\tid VARCHAR COLLATE "C" NOT NULL, \n\tworkflow_id VARCHAR COLLATE "C" NOT NULL, \n\torganization_id VARCHAR COLLATE "C" NOT NULL, \n\tname VARCHAR COLLATE "C", \n\tblock_id VARCHAR COLLATE "C" NOT NULL, \n\tsource TEXT, \n\thandle_inputs TEXT, \n\tassertion TEXT, \n\tcreated_at FLOAT NOT NULL, \n\tupdated_at FLOAT NOT NULL, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX IF NOT EXISTS ix_evals_workflow ON evals (organization_id, workflow_id, created_at)',
    'CREATE TABLE IF NOT EXISTS eval_runs (\n\tid VARCHAR COLLATE "C" NOT NULL, \n\tworkflow_id VARCHAR COLLATE "C" NOT NULL, \n\torganization_id VARCHAR COLLATE "C" NOT NULL, \n\tworkflow_version_id VARCHAR COLLATE "C" NOT NULL, \n\tscope TEXT, \n\tstatus VARCHAR COLLATE "C" NOT NULL, \n\ttrigger VARCHAR COLLATE "C" NOT NULL, \n\ttotal INTEGER NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\tstarted_at FLOAT, \n\tcompleted_at FLOAT, \n\terror TEXT, \n\treason VARCHAR COLLATE "C", \n\tcancel_requested BOOLEAN NOT NULL, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX IF NOT EXISTS ix_eval_runs_org ON eval_runs (organization_id, created_at)',
    'CREATE TABLE IF NOT EXISTS eval_results (\n\tid VARCHAR COLLATE "C" NOT NULL, \n\teval_run_id VARCHAR COLLATE "C" NOT NULL, \n\teval_id VARCHAR COLLATE "C" NOT NULL, \n\tworkflow_id VARCHAR COLLATE "C" NOT NULL, \n\torganization_id VARCHAR COLLATE "C" NOT NULL, \n\tblock_id VARCHAR COLLATE "C" NOT NULL, \n\tblock_type VARCHAR COLLATE "C" NOT NULL, \n\tstatus VARCHAR COLLATE "C" NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\tverdict VARCHAR COLLATE "C", \n\thandle_inputs TEXT, \n\thandle_outputs TEXT, \n\tartifact TEXT, \n\tassertion_result TEXT, \n\twarnings TEXT, \n\terror TEXT, \n\tstarted_at FLOAT, \n\tcompleted_at FLOAT, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX IF NOT EXISTS ix_eval_results_eval ON eval_results (eval_id, created_at)',
    'CREATE INDEX IF NOT EXISTS ix_eval_results_run ON eval_results (eval_run_id, created_at)',
    'CREATE TABLE IF NOT EXISTS block_executions (\n\tid VARCHAR COLLATE "C" NOT NULL, \n\tworkflow_id VARCHAR COLLATE "C" NOT NULL, \n\torganization_id VARCHAR COLLATE "C" NOT NULL, \n\tworkflow_version_id VARCHAR COLLATE "C", \n\tsource_run_id VARCHAR COLLATE "C" NOT NULL, \n\tsource_step_id VARCHAR COLLATE "C" NOT NULL, \n\tblock_id VARCHAR COLLATE "C" NOT NULL, \n\tblock_type VARCHAR COLLATE "C" NOT NULL, \n\tstatus VARCHAR COLLATE "C" NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\tmessage TEXT, \n\thandle_inputs TEXT, \n\thandle_outputs TEXT, \n\trouting_decisions TEXT, \n\tartifact TEXT, \n\tblock_config TEXT, \n\tstarted_at FLOAT, \n\tcompleted_at FLOAT, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX IF NOT EXISTS ix_block_executions_run ON block_executions (source_run_id, block_id, created_at)',
    'CREATE TABLE IF NOT EXISTS file_entries (\n\tid VARCHAR COLLATE "C" NOT NULL, \n\torganization_id VARCHAR COLLATE "C" NOT NULL, \n\tfilename VARCHAR COLLATE "C" NOT NULL, \n\tmime_type VARCHAR COLLATE "C" NOT NULL, \n\tsize INTEGER NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\tPRIMARY KEY (id, organization_id)\n)',
    'CREATE INDEX IF NOT EXISTS ix_file_entries_org ON file_entries (organization_id, created_at)',
    'CREATE TABLE IF NOT EXISTS uploads (\n\tid VARCHAR COLLATE "C" NOT NULL, \n\torganization_id VARCHAR COLLATE "C" NOT NULL, \n\tfilename VARCHAR COLLATE "C" NOT NULL, \n\tcontent_type VARCHAR COLLATE "C", \n\tsize INTEGER NOT NULL, \n\tsha256 VARCHAR COLLATE "C", \n\ttoken VARCHAR COLLATE "C" NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\texpires_at FLOAT NOT NULL, \n\tfile_id VARCHAR COLLATE "C", \n\tcompleted_at FLOAT, \n\tPRIMARY KEY (id)\n)',
    'CREATE TABLE IF NOT EXISTS step_logs (\n\trun_id VARCHAR COLLATE "C" NOT NULL, \n\tstep_id VARCHAR COLLATE "C" NOT NULL, \n\tseq INTEGER NOT NULL, \n\tattempt INTEGER NOT NULL, \n\tstream VARCHAR COLLATE "C" NOT NULL, \n\tlevel VARCHAR COLLATE "C", \n\tlogger VARCHAR COLLATE "C", \n\tmessage TEXT NOT NULL, \n\tat FLOAT NOT NULL, \n\ttruncated BOOLEAN NOT NULL, \n\tPRIMARY KEY (run_id, step_id, seq)\n)',
    'CREATE TABLE IF NOT EXISTS files (\n\tid VARCHAR COLLATE "C" NOT NULL, \n\tfilename VARCHAR COLLATE "C" NOT NULL, \n\tmime_type VARCHAR COLLATE "C" NOT NULL, \n\tsize BIGINT NOT NULL, \n\tdata BYTEA NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\tPRIMARY KEY (id)\n)',
    'CREATE TABLE IF NOT EXISTS blobs (\n\tid VARCHAR COLLATE "C" NOT NULL, \n\tdata BYTEA NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\tPRIMARY KEY (id)\n)',
)

#: The tables :data:`PG_DDL` creates.
PG_TABLE_NAMES: tuple[str, ...] = tuple(
    statement.split()[5] for statement in PG_DDL if statement.startswith("CREATE TABLE"))


def render_pg_ddl() -> tuple[str, ...]:
    """The DDL SQLAlchemy renders from :mod:`store.models` for PostgreSQL (imports the ORM).

    Returns:
        One statement per table and index, text columns compared byte-wise.
    """
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateIndex, CreateTable

    from store.models import PG_TABLES

    dialect = postgresql.dialect()
    out: list[str] = []
    for model in PG_TABLES:
        table = model.__table__  # type: ignore[attr-defined]
        text = str(CreateTable(table, if_not_exists=True).compile(dialect=dialect)).strip()
        out.append(text.replace(" VARCHAR", ' VARCHAR COLLATE "C"'))
        for index in sorted(table.indexes, key=lambda i: i.name or ""):
            out.append(str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect)).strip())
    return tuple(out)


if __name__ == "__main__":
    print("PG_DDL: tuple[str, ...] = (")
    for statement in render_pg_ddl():
        print(f"    {statement!r},")
    print(")")
