"""The workflow registry: definitions applied over HTTP (``POST /v1/workflows/spec/apply``).

A registered workflow has a stable id (``wf_`` + 20 hex) and a current version. Each
version is content-addressed: its id is the definition's digest
(:meth:`engine.definition.Workflow.digest`), the same value runs report as
``workflow_version_id``. Applying a spec to an existing workflow adds a version when
the definition changed and is a no-op otherwise; older versions stay runnable by id.

Tables live in the run database: ``workflows`` (:class:`store.models.WorkflowRow`, one
row per workflow, holding its current version) and ``workflow_versions``
(:class:`WorkflowVersionRow`, every version ever applied). Writes go through SQLModel
sessions whose transactions start with ``BEGIN IMMEDIATE``, so several processes can
apply workflows to one database file; they never touch the run hot path.
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Index, Text, event
from sqlalchemy.engine import Engine as SAEngine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Field, Session, SQLModel, create_engine, select

from engine.contracts.errors import NotFoundError, StepwellError
from store.models import JSONText, WorkflowRow

#: ``version`` selectors that mean "the workflow's current version".
CURRENT_VERSION_ALIASES = frozenset({"production", "draft", "latest", "current"})


class WorkflowVersionRow(SQLModel, table=True):
    """One applied version of a registered workflow (content-addressed by digest)."""

    __tablename__ = "workflow_versions"
    __table_args__ = (Index("ix_workflow_versions_created", "workflow_id", "created_at"),)

    workflow_id: str = Field(primary_key=True)
    id: str = Field(primary_key=True)
    definition: Any = Field(default=None, sa_column=Column(JSONText))
    yaml: str | None = Field(default=None, sa_column=Column(Text))
    created_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisteredWorkflow:
    """A workflow of the registry, with its current version.

    Attributes:
        id: the workflow id (``wf_...``).
        name: ``metadata.name`` of the current version.
        description: ``metadata.description`` of the current version.
        version_id: the current version's digest.
        definition: the current definition (:meth:`Workflow.to_dict` form).
        yaml: the YAML text it was applied from.
        organization_id: the owner.
        created_at / updated_at: epoch seconds of the first and the latest apply.
    """

    id: str
    name: str
    description: str
    version_id: str
    definition: dict[str, Any]
    yaml: str
    organization_id: str
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowVersion:
    """One version of a registered workflow."""

    workflow_id: str
    id: str
    definition: dict[str, Any]
    yaml: str
    created_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplyOutcome:
    """What :meth:`WorkflowRegistry.apply` did: ``create``, ``update`` or ``noop``."""

    workflow: RegisteredWorkflow
    action: str


def new_workflow_id() -> str:
    """A fresh workflow id: ``wf_`` and 20 hex characters."""
    return "wf_" + uuid.uuid4().hex[:20]


class WorkflowRegistry:
    """Registered workflows in a stepwell database file.

    Args:
        db_path: the database file (the one runs are stored in).
        busy_timeout: seconds to wait for another process's write lock.

    Raises:
        StorageError: the file cannot be opened or its tables created.
    """

    def __init__(self, db_path: str | os.PathLike[str], *, busy_timeout: float = 30.0) -> None:
        self.db_path = os.fspath(db_path)
        self._engine = sqlmodel_engine(self.db_path, busy_timeout)
        with self._guard("creating the workflow tables"):
            for table in (WorkflowRow.__table__, WorkflowVersionRow.__table__):  # type: ignore[attr-defined]
                table.create(self._engine, checkfirst=True)

    def close(self) -> None:
        """Release the registry's connections."""
        self._engine.dispose()

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        from store.sqlite import storage_error

        try:
            yield
        except StepwellError:
            raise
        except SQLAlchemyError as exc:
            orig = getattr(exc, "orig", None)
            base = orig if isinstance(orig, sqlite3.Error) else exc
            raise storage_error(self.db_path, action, base) from exc

    # ------------------------------------------------------------------ writes

    def apply(self, *, name: str, version_id: str,
              definition: dict[str, Any], yaml: str, organization_id: str,
              workflow_id: str | None = None) -> ApplyOutcome:
        """Register a new workflow, or add a version to ``workflow_id``.

        Args:
            name: the definition's ``metadata.name``.
            version_id: the definition's digest.
            definition: the validated definition (``Workflow.to_dict()``).
            yaml: the text it came from (served back by ``GET .../spec``).
            organization_id: the caller's organization.
            workflow_id: update this workflow instead of creating one.

        Raises:
            NotFoundError: ``workflow_id`` is not a workflow of this organization.
        """
        now = time.time()
        with self._guard("registering a workflow"), Session(self._engine) as session:
            row = None
            if workflow_id is not None:
                row = _owned(session, workflow_id, organization_id)
            action = "create"
            if row is None:
                row = WorkflowRow(id=new_workflow_id(), organization_id=organization_id,
                                  created_at=now)
            elif row.digest == version_id:
                action = "noop"
            else:
                action = "update"
            if action != "noop":
                row.name, row.digest, row.definition, row.yaml = name, version_id, definition, yaml
                session.add(row)
                if session.get(WorkflowVersionRow, (row.id, version_id)) is None:
                    session.add(WorkflowVersionRow(workflow_id=row.id, id=version_id,
                                                   definition=definition, yaml=yaml,
                                                   created_at=now))
                session.commit()
                session.refresh(row)
            return ApplyOutcome(workflow=self._registered(session, row), action=action)

    # ------------------------------------------------------------------ reads

    def get(self, workflow_id: str, organization_id: str) -> RegisteredWorkflow:
        """One workflow of ``organization_id``.

        Raises:
            NotFoundError: no such workflow in this organization.
        """
        with self._guard(f"reading workflow {workflow_id}"), Session(self._engine) as session:
            row = _owned(session, workflow_id, organization_id)
            return self._registered(session, row)

    def version(self, workflow_id: str, organization_id: str,
                selector: str | None = None) -> WorkflowVersion:
        """The version to run: the current one for ``production``/``draft``/``latest``
        (or None), else the version whose id (digest, optionally ``ver_``-prefixed) is
        ``selector``.

        Raises:
            NotFoundError: no such workflow, or no such version of it.
        """
        with self._guard(f"reading workflow {workflow_id}"), Session(self._engine) as session:
            row = _owned(session, workflow_id, organization_id)
            wanted = row.digest if selector in (None, "", *CURRENT_VERSION_ALIASES) \
                else str(selector).removeprefix("ver_")
            version = session.get(WorkflowVersionRow, (row.id, wanted))
            if version is None:
                raise NotFoundError(
                    "workflow version", str(selector),
                    f"Pass version='production' for the current version of {workflow_id}, "
                    "or a workflow_version_id one of its runs reports.")
            return WorkflowVersion(workflow_id=row.id, id=version.id,
                                   definition=dict(version.definition or {}),
                                   yaml=version.yaml or "", created_at=version.created_at)

    def list(self, organization_id: str, *, limit: int = 10, after: str | None = None,
             before: str | None = None, descending: bool = True
             ) -> tuple[list[RegisteredWorkflow], bool, bool]:
        """Workflows of an organization ordered by creation time, one page of them.

        Args:
            organization_id: whose workflows.
            limit: page size.
            after / before: a workflow id from a previous page (cursor).
            descending: newest first (the default) or oldest first.

        Returns:
            ``(page, more_before, more_after)``.

        Raises:
            NotFoundError: the cursor is not a workflow of this organization.
        """
        with self._guard("listing workflows"), Session(self._engine) as session:
            rows = list(session.exec(
                select(WorkflowRow).where(WorkflowRow.organization_id == organization_id)))
            rows.sort(key=lambda r: (r.created_at, r.id), reverse=descending)
            ids = [r.id for r in rows]
            start, stop = 0, len(rows)
            cursor = after or before
            if cursor is not None:
                if cursor not in ids:
                    raise NotFoundError("workflow", cursor,
                                        "Cursors are workflow ids from list_metadata.")
                at = ids.index(cursor)
                start, stop = (at + 1, len(rows)) if after else (max(0, at - limit), at)
            if after or cursor is None:
                stop = min(stop, start + limit)
            page = [self._registered(session, r) for r in rows[start:stop]]
            return page, start > 0, stop < len(rows)

    def _registered(self, session: Session, row: WorkflowRow) -> RegisteredWorkflow:
        latest = session.exec(
            select(WorkflowVersionRow.created_at)
            .where(WorkflowVersionRow.workflow_id == row.id)
            .order_by(WorkflowVersionRow.created_at.desc())  # type: ignore[attr-defined]
        ).first()
        definition = dict(row.definition or {})
        return RegisteredWorkflow(
            id=row.id, name=row.name, description=_description(definition),
            version_id=row.digest, definition=definition, yaml=row.yaml or "",
            organization_id=row.organization_id, created_at=row.created_at,
            updated_at=latest if latest is not None else row.created_at)


def _owned(session: Session, workflow_id: str, organization_id: str) -> WorkflowRow:
    row = session.get(WorkflowRow, workflow_id)
    if row is None or row.organization_id != organization_id:
        raise NotFoundError("workflow", workflow_id,
                            "Register it first with POST /v1/workflows/spec/apply "
                            "(client.workflows.apply(yaml)) and use the workflow_id it returns.")
    return row


def _description(definition: dict[str, Any]) -> str:
    metadata = definition.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("description"), str):
        return str(metadata["description"])
    return str(definition.get("description") or "")


def sqlmodel_engine(path: str, busy_timeout: float) -> SAEngine:
    """A SQLAlchemy engine on ``path`` whose transactions begin IMMEDIATE (writers queue on
    the busy timeout instead of failing on a lock upgrade)."""
    engine = create_engine(f"sqlite:///{path}",
                           connect_args={"timeout": busy_timeout, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        dbapi_conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
