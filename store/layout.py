"""The database layout as SQL, so opening a database never imports the ORM.

:mod:`store.models` declares the schema (SQLModel tables); :data:`DDL` is that schema
rendered for SQLite, which :class:`store.sqlite.SQLiteStore` executes on open. Keeping
SQLAlchemy off that path saves about a third of a second of start-up.
``tests/store/test_layout.py`` checks that the two agree; after changing a model, run
``python -m store.layout`` and paste what it prints over :data:`DDL`.
"""

from __future__ import annotations

#: Version of this layout, kept in ``PRAGMA user_version`` (:data:`store.schema.HEAD_LAYOUT`).
SCHEMA_VERSION = 8

#: Statuses indexed by ``ix_steps_run_exceptional``. A query uses that partial index only
#: when its conditions imply the index's; repeating :data:`EXCEPTIONAL_STATUSES_SQL`
#: verbatim always does (see ``store.sqlite_query``).
EXCEPTIONAL_STATUSES = ("error", "skipped", "cancelled", "awaiting_review")
#: The partial index's condition on SQLite, spelled as comparisons joined by OR: SQLite
#: evaluates a partial index's condition on every write that changes ``status`` (each
#: step moves three or four times), and an ``IN (...)`` list there builds a temporary
#: b-tree per statement, about 10 us per step update (layout 7 replaced it).
EXCEPTIONAL_STATUSES_SQL = ("(status = 'error' OR status = 'skipped' OR status = 'cancelled' "
                            "OR status = 'awaiting_review')")
#: The same condition as PostgreSQL's index keeps it: its planner proves either spelling
#: from the other, so queries use :data:`EXCEPTIONAL_STATUSES_SQL` on both.
EXCEPTIONAL_STATUSES_PG_SQL = "status IN ('error', 'skipped', 'cancelled', 'awaiting_review')"
#: Statuses of the runs a worker may claim, indexed by ``ix_runs_active`` (a query uses
#: that partial index when it repeats :data:`ACTIVE_STATUSES_SQL` verbatim).
ACTIVE_STATUSES_SQL = "status IN ('pending', 'queued', 'running')"

#: The audit trail as rows, for readers (``store.transitions``, SQL users). Since layout 8
#: an element of ``trail`` leaves out what its defaults say (:func:`store.stepdata.trail_entry`):
#: a missing ``detail`` is null, a missing retry count 0, and a missing (or null) time is
#: the row's column that holds that move's time (``created_at`` for ``pending``,
#: ``queued_at`` for the first ``queued``, ``started_at`` for the first ``running``,
#: ``completed_at`` for the final status), so the view returns the same values as when
#: every element carried all four.
TRANSITIONS_VIEW = """
CREATE VIEW IF NOT EXISTS transitions AS
SELECT s.run_id AS run_id, s.step_id AS step_id, CAST(j.key AS INTEGER) AS seq,
  json_extract(j.value, '$[0]') AS status,
  COALESCE(json_extract(j.value, '$[1]'), CASE json_extract(j.value, '$[0]')
    WHEN 'pending' THEN s.created_at WHEN 'queued' THEN s.queued_at
    WHEN 'running' THEN s.started_at ELSE s.completed_at END) AS at,
  COALESCE(json_extract(j.value, '$[2]'), 0) AS retry_count,
  json_extract(j.value, '$[3]') AS detail
FROM steps s, json_each('[' || s.trail || ']') j
"""

#: ``CREATE ... IF NOT EXISTS`` for every table and index of :mod:`store.models`.
DDL: tuple[str, ...] = (
    'CREATE TABLE IF NOT EXISTS runs (\n\tid VARCHAR NOT NULL, \n\tworkflow_id VARCHAR NOT NULL, \n\tworkflow_name VARCHAR NOT NULL, \n\tworkflow_digest VARCHAR NOT NULL, \n\tdefinition_id VARCHAR NOT NULL, \n\tinputs TEXT, \n\tmetadata TEXT, \n\torganization_id VARCHAR NOT NULL, \n\t"trigger" VARCHAR NOT NULL, \n\tstatus VARCHAR NOT NULL, \n\tfailing_step_id VARCHAR, \n\terror TEXT, \n\treason VARCHAR, \n\twaiting_for TEXT, \n\toutputs TEXT, \n\towner_pid INTEGER, \n\theartbeat_at FLOAT, \n\tcancel_requested BOOLEAN NOT NULL, \n\tparent_run_id VARCHAR, \n\tcreated_at FLOAT NOT NULL, \n\tstarted_at FLOAT, \n\tcompleted_at FLOAT, \n\tupdated_at FLOAT NOT NULL, \n\towner_host VARCHAR, \n\tPRIMARY KEY (id)\n)',
    "CREATE INDEX IF NOT EXISTS ix_runs_active ON runs (created_at) WHERE status IN ('pending', 'queued', 'running')",
    'CREATE INDEX IF NOT EXISTS ix_runs_created ON runs (created_at)',
    'CREATE INDEX IF NOT EXISTS ix_runs_org_created ON runs (organization_id, created_at)',
    'CREATE INDEX IF NOT EXISTS ix_runs_workflow ON runs (workflow_id, created_at)',
    'CREATE TABLE IF NOT EXISTS definitions (\n\tid VARCHAR NOT NULL, \n\tdefinition TEXT, \n\tcreated_at FLOAT NOT NULL, \n\tPRIMARY KEY (id)\n)',
    "CREATE TABLE IF NOT EXISTS steps (\n\tseq INTEGER NOT NULL, \n\trun_id VARCHAR NOT NULL, \n\tstep_id VARCHAR NOT NULL, \n\tblock_id VARCHAR NOT NULL, \n\tblock_type VARCHAR NOT NULL, \n\tlabel VARCHAR NOT NULL, \n\tstatus VARCHAR NOT NULL, \n\tscope TEXT, \n\tretry_count INTEGER NOT NULL, \n\tinputs TEXT, \n\toutputs TEXT, \n\terror TEXT, \n\treason VARCHAR, \n\tartifact_id VARCHAR, \n\tartifact_operation VARCHAR, \n\tmodel VARCHAR, \n\ttokens TEXT, \n\tcost TEXT, \n\ttrace_spans TEXT, \n\tcontrol TEXT, \n\tcreated_at FLOAT NOT NULL, \n\tqueued_at FLOAT, \n\tstarted_at FLOAT, \n\tcompleted_at FLOAT, \n\tupdated_at FLOAT NOT NULL, \n\tduration_ms INTEGER, \n\ttrail TEXT DEFAULT '' NOT NULL, \n\tartifact TEXT, \n\tartifact_at FLOAT, \n\treserve BLOB, \n\tPRIMARY KEY (seq)\n)",
    "CREATE INDEX IF NOT EXISTS ix_steps_run_exceptional ON steps (run_id, seq) WHERE (status = 'error' OR status = 'skipped' OR status = 'cancelled' OR status = 'awaiting_review')",
    'CREATE INDEX IF NOT EXISTS ix_steps_run_seq ON steps (run_id, seq)',
    'CREATE UNIQUE INDEX IF NOT EXISTS ux_steps_step_run ON steps (step_id, run_id)',
    'CREATE TABLE IF NOT EXISTS artifacts (\n\tid VARCHAR NOT NULL, \n\trun_id VARCHAR NOT NULL, \n\tstep_id VARCHAR NOT NULL, \n\toperation VARCHAR NOT NULL, \n\trecord TEXT, \n\tcreated_at FLOAT NOT NULL, \n\tPRIMARY KEY (id)\n)',
    'CREATE TABLE IF NOT EXISTS workflows (\n\tid VARCHAR NOT NULL, \n\tname VARCHAR NOT NULL, \n\tdigest VARCHAR NOT NULL, \n\tdefinition TEXT, \n\tyaml TEXT, \n\torganization_id VARCHAR NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\tdescription TEXT, \n\tproject_id VARCHAR, \n\tpublished_version VARCHAR, \n\tpublished_at FLOAT, \n\tpublished_description TEXT, \n\trevision INTEGER, \n\tstamps TEXT, \n\tupdated_at FLOAT, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX IF NOT EXISTS ix_workflows_org ON workflows (organization_id, created_at)',
    'CREATE TABLE IF NOT EXISTS workflow_versions (\n\tworkflow_id VARCHAR NOT NULL, \n\tid VARCHAR NOT NULL, \n\tdefinition TEXT, \n\tyaml TEXT, \n\tcreated_at FLOAT NOT NULL, \n\tPRIMARY KEY (workflow_id, id)\n)',
    'CREATE INDEX IF NOT EXISTS ix_workflow_versions_created ON workflow_versions (workflow_id, created_at)',
    'CREATE TABLE IF NOT EXISTS reviews (\n\tid VARCHAR NOT NULL, \n\trun_id VARCHAR NOT NULL, \n\tstep_id VARCHAR NOT NULL, \n\tblock_id VARCHAR NOT NULL, \n\tstatus VARCHAR NOT NULL, \n\tdata TEXT, \n\tdecision VARCHAR, \n\tdecision_data TEXT, \n\tnote VARCHAR, \n\tcreated_at FLOAT NOT NULL, \n\tdecided_at FLOAT, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX IF NOT EXISTS ix_reviews_run_step ON reviews (run_id, step_id)',
    'CREATE INDEX IF NOT EXISTS ix_reviews_status ON reviews (status, created_at)',
    'CREATE TABLE IF NOT EXISTS review_versions (\n\tid VARCHAR NOT NULL, \n\treview_id VARCHAR NOT NULL, \n\tparent_id VARCHAR NOT NULL, \n\tsnapshot TEXT, \n\tnote VARCHAR, \n\tauthor_id VARCHAR NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX IF NOT EXISTS ix_review_versions_review ON review_versions (review_id, created_at)',
    'CREATE TABLE IF NOT EXISTS evals (\n\tid VARCHAR NOT NULL, \n\tworkflow_id VARCHAR NOT NULL, \n\torganization_id VARCHAR NOT NULL, \n\tname VARCHAR, \n\tblock_id VARCHAR NOT NULL, \n\tsource TEXT, \n\thandle_inputs TEXT, \n\tassertion TEXT, \n\tcreated_at FLOAT NOT NULL, \n\tupdated_at FLOAT NOT NULL, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX IF NOT EXISTS ix_evals_workflow ON evals (organization_id, workflow_id, created_at)',
    'CREATE TABLE IF NOT EXISTS eval_runs (\n\tid VARCHAR NOT NULL, \n\tworkflow_id VARCHAR NOT NULL, \n\torganization_id VARCHAR NOT NULL, \n\tworkflow_version_id VARCHAR NOT NULL, \n\tscope TEXT, \n\tstatus VARCHAR NOT NULL, \n\t"trigger" VARCHAR NOT NULL, \n\ttotal INTEGER NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\tstarted_at FLOAT, \n\tcompleted_at FLOAT, \n\terror TEXT, \n\treason VARCHAR, \n\tcancel_requested BOOLEAN NOT NULL, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX IF NOT EXISTS ix_eval_runs_org ON eval_runs (organization_id, created_at)',
    'CREATE TABLE IF NOT EXISTS eval_results (\n\tid VARCHAR NOT NULL, \n\teval_run_id VARCHAR NOT NULL, \n\teval_id VARCHAR NOT NULL, \n\tworkflow_id VARCHAR NOT NULL, \n\torganization_id VARCHAR NOT NULL, \n\tblock_id VARCHAR NOT NULL, \n\tblock_type VARCHAR NOT NULL, \n\tstatus VARCHAR NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\tverdict VARCHAR, \n\thandle_inputs TEXT, \n\thandle_outputs TEXT, \n\tartifact TEXT, \n\tassertion_result TEXT, \n\twarnings TEXT, \n\terror TEXT, \n\tstarted_at FLOAT, \n\tcompleted_at FLOAT, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX IF NOT EXISTS ix_eval_results_eval ON eval_results (eval_id, created_at)',
    'CREATE INDEX IF NOT EXISTS ix_eval_results_run ON eval_results (eval_run_id, created_at)',
    'CREATE TABLE IF NOT EXISTS block_executions (\n\tid VARCHAR NOT NULL, \n\tworkflow_id VARCHAR NOT NULL, \n\torganization_id VARCHAR NOT NULL, \n\tworkflow_version_id VARCHAR, \n\tsource_run_id VARCHAR NOT NULL, \n\tsource_step_id VARCHAR NOT NULL, \n\tblock_id VARCHAR NOT NULL, \n\tblock_type VARCHAR NOT NULL, \n\tstatus VARCHAR NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\tmessage TEXT, \n\thandle_inputs TEXT, \n\thandle_outputs TEXT, \n\trouting_decisions TEXT, \n\tartifact TEXT, \n\tblock_config TEXT, \n\tstarted_at FLOAT, \n\tcompleted_at FLOAT, \n\tPRIMARY KEY (id)\n)',
    'CREATE INDEX IF NOT EXISTS ix_block_executions_run ON block_executions (source_run_id, block_id, created_at)',
    'CREATE TABLE IF NOT EXISTS file_entries (\n\tid VARCHAR NOT NULL, \n\torganization_id VARCHAR NOT NULL, \n\tfilename VARCHAR NOT NULL, \n\tmime_type VARCHAR NOT NULL, \n\tsize INTEGER NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\tPRIMARY KEY (id, organization_id)\n)',
    'CREATE INDEX IF NOT EXISTS ix_file_entries_org ON file_entries (organization_id, created_at)',
    'CREATE TABLE IF NOT EXISTS uploads (\n\tid VARCHAR NOT NULL, \n\torganization_id VARCHAR NOT NULL, \n\tfilename VARCHAR NOT NULL, \n\tcontent_type VARCHAR, \n\tsize INTEGER NOT NULL, \n\tsha256 VARCHAR, \n\ttoken VARCHAR NOT NULL, \n\tcreated_at FLOAT NOT NULL, \n\texpires_at FLOAT NOT NULL, \n\tfile_id VARCHAR, \n\tcompleted_at FLOAT, \n\tPRIMARY KEY (id)\n)',
    'CREATE TABLE IF NOT EXISTS step_logs (\n\trun_id VARCHAR NOT NULL, \n\tstep_id VARCHAR NOT NULL, \n\tseq INTEGER NOT NULL, \n\tattempt INTEGER NOT NULL, \n\tstream VARCHAR NOT NULL, \n\tlevel VARCHAR, \n\tlogger VARCHAR, \n\tmessage TEXT NOT NULL, \n\tat FLOAT NOT NULL, \n\ttruncated BOOLEAN NOT NULL, \n\tPRIMARY KEY (run_id, step_id, seq)\n)',
)

#: The tables :data:`DDL` creates (a database missing one gets them on open).
TABLE_NAMES: tuple[str, ...] = tuple(
    statement.split()[5] for statement in DDL if statement.startswith("CREATE TABLE"))


def render_ddl() -> tuple[str, ...]:
    """The DDL SQLAlchemy renders from :mod:`store.models` (imports the ORM)."""
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable

    from store.models import TABLES

    dialect = sqlite.dialect()
    out: list[str] = []
    for model in TABLES:
        table = model.__table__  # type: ignore[attr-defined]
        out.append(str(CreateTable(table, if_not_exists=True).compile(dialect=dialect)).strip())
        for index in sorted(table.indexes, key=lambda i: i.name or ""):
            out.append(str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect)).strip())
    return tuple(out)


if __name__ == "__main__":
    print("DDL: tuple[str, ...] = (")
    for statement in render_ddl():
        print(f"    {statement!r},")
    print(")")
