"""The stepwell schema, as SQLModel tables.

The schema is declared here and executed from its SQL rendering (:data:`store.layout.DDL`
for SQLite, :data:`store.pg.layout.PG_DDL` for PostgreSQL);
the write path (:mod:`store.sqlite`, :mod:`store.writes`, :mod:`store.reviews`,
:mod:`store.workflows`) and the read queries (:mod:`store.sqlite_query`) use plain SQL
over these tables for speed, so the column names below are the contract between them.

Conventions:
- Timestamps are REAL seconds since the epoch (UTC); the read API renders ISO-8601 ``Z``.
- JSON columns are TEXT holding compact JSON (:class:`JSONText`), so raw SQL writers and
  ORM readers agree. Payload maps may hold two indirections, resolved on read:
  ``{"ref": [step_id, handle]}`` (an input that is another step's stored output) and
  ``{"blob": id}`` (a payload over 256 KiB kept in the file store).
- ``steps``: the logical key is ``(run_id, step_id)`` (unique index
  ``ux_steps_step_run`` on ``(step_id, run_id)``, which also finds a step by id alone).
  ``seq`` is the rowid: the global creation order, hence also each run's creation order;
  list pagination is keyset on ``(run_id, seq)``. A rowid table keeps inserts cheap: the
  table b-tree only ever appends, and there is no separate primary-key index.
- A step's lifecycle transitions (the audit trail) live in its own row, in ``trail``:
  comma-joined JSON arrays ``[status, at, retry_count, detail]``, appended by the same
  UPDATE that moves the step; since layout 8 an array leaves out its trailing defaults
  and a time one of the row's time columns holds (:func:`store.stepdata.trail_entry`). A transition thus costs no extra row, index entry or
  b-tree seek on the write path. The ``transitions`` view (:data:`store.layout.TRANSITIONS_VIEW`)
  expands them to rows ``(run_id, step_id, seq, status, at, retry_count, detail)``,
  ``seq`` numbering each step's transitions 0, 1, 2, ...; ``at`` orders them across steps.
- A step's artifact (the operation record its block returned) lives in its own row:
  ``artifact`` (the record; since layout 8 without a leading ``operation`` member,
  :func:`store.stepdata.stored_artifact`), ``artifact_at`` (when it was recorded) beside
  ``artifact_id``/``artifact_operation``. The id locates the row without an index: its
  hex part is the row's ``seq`` (6 digits or more) then 6 digits of a hash of run, step
  and attempt (:func:`store.stepdata.locate_artifact`), so a step costs no artifact
  row, no random index page and no second statement. ``artifacts`` keeps the records
  written before layout 6 (keyed by artifact id only).
- ``steps.reserve`` holds zero bytes in a SQLite row created before its step moves,
  and the first move clears it: the room its step's outputs, artifact and transitions
  will take, kept in the page it was created in.
- ``runs.owner_pid`` is a process of the machine ``runs.owner_host`` names; a run owned
  on another machine is alive while its heartbeat is fresh (a lease). ``ix_runs_active``
  indexes the runs a worker may claim.
- The revision of the layout is recorded (:mod:`store.schema`); SQLite also keeps its
  number in ``PRAGMA user_version`` (:data:`store.layout.SCHEMA_VERSION`). A database
  written with another layout is refused with a message rather than misread.
- ``files`` and ``blobs`` exist in PostgreSQL only (:data:`PG_TABLES`): there the file
  store lives in the database; SQLite keeps it in a folder beside the database file.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, Text, text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from store.layout import (
    ACTIVE_STATUSES_SQL,
    EXCEPTIONAL_STATUSES_PG_SQL,
    EXCEPTIONAL_STATUSES_SQL,
)


class JSONText(TypeDecorator[Any]):
    """JSON stored as TEXT (not SQLAlchemy's JSON type, whose NUMERIC affinity in
    SQLite would turn a stored ``"12"`` into an integer)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        """Encode compactly; None stays SQL NULL."""
        return None if value is None else json.dumps(value, separators=(",", ":"))

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        """Decode; SQL NULL is None."""
        return None if value is None else json.loads(value)


def _json(**kwargs: Any) -> Any:
    return Field(default=None, sa_column=Column(JSONText, **kwargs))


class RunRow(SQLModel, table=True):
    """One workflow run."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_org_created", "organization_id", "created_at"),
        Index("ix_runs_created", "created_at"),
        Index("ix_runs_workflow", "workflow_id", "created_at"),
        # The runs a worker may claim: few, whatever the history's size.
        Index("ix_runs_active", "created_at", sqlite_where=text(ACTIVE_STATUSES_SQL),
              postgresql_where=text(ACTIVE_STATUSES_SQL)),
    )

    id: str = Field(primary_key=True)
    workflow_id: str
    workflow_name: str = ""
    workflow_digest: str = ""
    #: The definition lives once per content in ``definitions``: the runs row stays small,
    #: so the heartbeat and status updates that rewrite it stay cheap.
    definition_id: str = ""
    inputs: Any = _json()
    metadata_: Any = Field(default=None, sa_column=Column("metadata", JSONText))
    organization_id: str = "org_local"
    trigger: str = "manual"
    status: str = "pending"
    failing_step_id: str | None = None
    error: Any = _json()
    reason: str | None = None
    waiting_for: Any = _json()
    outputs: Any = _json()
    owner_pid: int | None = None
    heartbeat_at: float | None = None
    cancel_requested: bool = False
    parent_run_id: str | None = None
    created_at: float
    started_at: float | None = None
    completed_at: float | None = None
    updated_at: float
    owner_host: str | None = None


class DefinitionRow(SQLModel, table=True):
    """A workflow definition as runs used it, stored once per content (sha256 id)."""

    __tablename__ = "definitions"

    id: str = Field(primary_key=True)
    definition: Any = _json()
    created_at: float


class StepRow(SQLModel, table=True):
    """One step of a run (one block execution in one loop scope)."""

    __tablename__ = "steps"
    __table_args__ = (
        # The logical key. Leading with step_id lets the same index serve lookups by
        # step id alone (``steps.get`` without run_id): one index less per insert.
        Index("ux_steps_step_run", "step_id", "run_id", unique=True),
        # A run's steps in order; block/status filters scan this range (no index of
        # their own: each would cost every step write two more b-tree updates) ...
        Index("ix_steps_run_seq", "run_id", "seq"),
        # ... except the statuses people look for in a big run: only rows that end up
        # there are indexed, so completed steps cost this index nothing but the check of
        # its condition on each status change (comparisons on SQLite: store.layout).
        Index("ix_steps_run_exceptional", "run_id", "seq",
              sqlite_where=text(EXCEPTIONAL_STATUSES_SQL),
              postgresql_where=text(EXCEPTIONAL_STATUSES_PG_SQL)),
    )

    #: SQLite's rowid (``INTEGER PRIMARY KEY``); a ``BIGSERIAL`` in PostgreSQL.
    seq: int | None = Field(default=None, sa_column=Column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True))
    run_id: str
    step_id: str
    block_id: str
    block_type: str
    label: str = ""
    status: str
    scope: Any = _json()
    retry_count: int = 0
    inputs: Any = _json()
    outputs: Any = _json()
    error: Any = _json()
    reason: str | None = None
    artifact_id: str | None = None
    artifact_operation: str | None = None
    model: str | None = None
    tokens: Any = _json()
    cost: Any = _json()
    trace_spans: Any = _json()
    control: Any = _json()
    created_at: float
    queued_at: float | None = None
    started_at: float | None = None
    completed_at: float | None = None
    updated_at: float
    duration_ms: int | None = None
    trail: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    #: The artifact's record (layout 6 on; older records are in ``artifacts``).
    artifact: Any = _json()
    artifact_at: float | None = None
    #: Room a SQLite row keeps until its step first moves (zero bytes; see
    #: :data:`store.writes.RESERVE`): without it, rows created ``pending`` together fill
    #: their page, and each one that grows makes SQLite rebalance the page with its
    #: neighbours, writing about one more page per commit.
    reserve: bytes | None = Field(default=None, sa_column=Column(LargeBinary()))


class ArtifactRow(SQLModel, table=True):
    """The operation record a step produced (``step.artifact`` points here)."""

    __tablename__ = "artifacts"
    id: str = Field(primary_key=True)
    run_id: str
    step_id: str
    operation: str
    record: Any = _json()
    created_at: float


class WorkflowRow(SQLModel, table=True):
    """A registered workflow (HTTP ``spec/apply``): its draft (``digest``,
    ``definition``, ``yaml``) and the version it published.

    The columns added by layout 5 are nullable (an older row reads as published at
    creation, never edited).
    """

    __tablename__ = "workflows"
    __table_args__ = (Index("ix_workflows_org", "organization_id", "created_at"),)

    id: str = Field(primary_key=True)
    name: str = ""
    digest: str = ""
    definition: Any = _json()
    yaml: str | None = Field(default=None, sa_column=Column(Text))
    organization_id: str = "org_local"
    created_at: float
    description: str | None = Field(default=None, sa_column=Column(Text))
    project_id: str | None = None
    published_version: str | None = None
    published_at: float | None = None
    published_description: str | None = Field(default=None, sa_column=Column(Text))
    revision: int | None = None
    stamps: Any = _json()
    updated_at: float | None = None


class WorkflowVersionRow(SQLModel, table=True):
    """One applied version of a registered workflow (content-addressed by digest)."""

    __tablename__ = "workflow_versions"
    __table_args__ = (Index("ix_workflow_versions_created", "workflow_id", "created_at"),)

    workflow_id: str = Field(primary_key=True)
    id: str = Field(primary_key=True)
    definition: Any = _json()
    yaml: str | None = Field(default=None, sa_column=Column(Text))
    created_at: float


class ReviewRow(SQLModel, table=True):
    """A human review a step waits on, and its decision."""

    __tablename__ = "reviews"
    __table_args__ = (
        Index("ix_reviews_run_step", "run_id", "step_id"),
        Index("ix_reviews_status", "status", "created_at"),
    )

    id: str = Field(primary_key=True)
    run_id: str
    step_id: str
    block_id: str
    status: str = "pending"
    data: Any = _json()
    decision: str | None = None
    decision_data: Any = _json()
    note: str | None = None
    created_at: float
    decided_at: float | None = None


class ReviewVersionRow(SQLModel, table=True):
    """A corrected version of a review's snapshot (the proposal itself has no row)."""

    __tablename__ = "review_versions"
    __table_args__ = (Index("ix_review_versions_review", "review_id", "created_at"),)

    id: str = Field(primary_key=True)
    review_id: str
    parent_id: str
    snapshot: Any = _json()
    note: str | None = None
    author_id: str = ""
    created_at: float


class StepLogRow(SQLModel, table=True):
    """One log entry of a step's attempt (:mod:`store.step_logs`), in the order written."""

    __tablename__ = "step_logs"
    run_id: str = Field(primary_key=True)
    step_id: str = Field(primary_key=True)
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    attempt: int
    stream: str
    level: str | None = None
    logger: str | None = None
    message: str = Field(sa_column=Column(Text, nullable=False))
    at: float
    truncated: bool = False


class FileRow(SQLModel, table=True):
    """A stored file (PostgreSQL only; SQLite keeps files in a folder)."""

    __tablename__ = "files"
    id: str = Field(primary_key=True)
    filename: str
    mime_type: str
    size: int = Field(sa_column=Column(BigInteger(), nullable=False))
    data: bytes = Field(sa_column=Column(LargeBinary(), nullable=False))
    created_at: float


class BlobRow(SQLModel, table=True):
    """A large JSON payload kept out of its row (PostgreSQL only)."""

    __tablename__ = "blobs"
    id: str = Field(primary_key=True)
    data: bytes = Field(sa_column=Column(LargeBinary(), nullable=False))
    created_at: float


class EvalRow(SQLModel, table=True):
    """A saved block eval (:class:`engine.contracts.evals.EvalDefinition`)."""

    __tablename__ = "evals"
    __table_args__ = (Index("ix_evals_workflow", "organization_id", "workflow_id",
                            "created_at"),)

    id: str = Field(primary_key=True)
    workflow_id: str
    organization_id: str
    name: str | None = None
    block_id: str
    source: Any = _json()
    handle_inputs: Any = _json()
    assertion: Any = _json()
    created_at: float
    updated_at: float


class EvalRunRow(SQLModel, table=True):
    """One run of a set of evals (:class:`engine.contracts.evals.EvalRun`)."""

    __tablename__ = "eval_runs"
    __table_args__ = (Index("ix_eval_runs_org", "organization_id", "created_at"),)

    id: str = Field(primary_key=True)
    workflow_id: str
    organization_id: str
    workflow_version_id: str
    scope: Any = _json()
    status: str
    trigger: str
    total: int
    created_at: float
    started_at: float | None = None
    completed_at: float | None = None
    error: str | None = Field(default=None, sa_column=Column(Text))
    reason: str | None = None
    cancel_requested: bool = False


class EvalResultRow(SQLModel, table=True):
    """What one eval of a run did (:class:`engine.contracts.evals.EvalResult`)."""

    __tablename__ = "eval_results"
    __table_args__ = (Index("ix_eval_results_run", "eval_run_id", "created_at"),
                      Index("ix_eval_results_eval", "eval_id", "created_at"))

    id: str = Field(primary_key=True)
    eval_run_id: str
    eval_id: str
    workflow_id: str
    organization_id: str
    block_id: str
    block_type: str
    status: str
    created_at: float
    verdict: str | None = None
    handle_inputs: Any = _json()
    handle_outputs: Any = _json()
    artifact: Any = _json()
    assertion_result: Any = _json()
    warnings: Any = _json()
    error: str | None = Field(default=None, sa_column=Column(Text))
    started_at: float | None = None
    completed_at: float | None = None


class BlockExecutionRow(SQLModel, table=True):
    """One block of a run executed again (:class:`engine.contracts.evals.BlockExecution`)."""

    __tablename__ = "block_executions"
    __table_args__ = (Index("ix_block_executions_run", "source_run_id", "block_id",
                            "created_at"),)

    id: str = Field(primary_key=True)
    workflow_id: str
    organization_id: str
    workflow_version_id: str | None = None
    source_run_id: str
    source_step_id: str
    block_id: str
    block_type: str
    status: str
    created_at: float
    message: str | None = Field(default=None, sa_column=Column(Text))
    handle_inputs: Any = _json()
    handle_outputs: Any = _json()
    routing_decisions: Any = _json()
    artifact: Any = _json()
    block_config: Any = _json()
    started_at: float | None = None
    completed_at: float | None = None


class FileEntryRow(SQLModel, table=True):
    """A file an organization brought in (:class:`engine.contracts.catalog.FileEntry`)."""

    __tablename__ = "file_entries"
    __table_args__ = (Index("ix_file_entries_org", "organization_id", "created_at"),)

    id: str = Field(primary_key=True)
    organization_id: str = Field(primary_key=True)
    filename: str
    mime_type: str
    size: int
    created_at: float


class UploadRow(SQLModel, table=True):
    """An upload in progress (:class:`engine.contracts.catalog.UploadSession`)."""

    __tablename__ = "uploads"

    id: str = Field(primary_key=True)
    organization_id: str
    filename: str
    content_type: str | None = None
    size: int
    sha256: str | None = None
    token: str
    created_at: float
    expires_at: float
    file_id: str | None = None
    completed_at: float | None = None


#: Tables of layout 5: evals, block executions, files and uploads.
EVAL_TABLES = (EvalRow, EvalRunRow, EvalResultRow, BlockExecutionRow, FileEntryRow, UploadRow)


TABLES: tuple[type[SQLModel], ...] = (
    RunRow, DefinitionRow, StepRow, ArtifactRow, WorkflowRow, WorkflowVersionRow, ReviewRow,
    ReviewVersionRow, *EVAL_TABLES, StepLogRow)
#: The PostgreSQL layout: the same tables, and the file store.
PG_TABLES: tuple[type[SQLModel], ...] = (*TABLES, FileRow, BlobRow)
