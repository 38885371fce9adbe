"""The workflow registry: definitions applied over HTTP (``POST /v1/workflows/spec/apply``).

A registered workflow has a stable id (``wf_`` + 20 hex) and a current version. Each
version is content-addressed: its id is the definition's digest
(:meth:`engine.definition.Workflow.digest`), the same value runs report as
``workflow_version_id``. Applying a spec to an existing workflow adds a version when
the definition changed and is a no-op otherwise; older versions stay runnable by id.

In SQLite the registry lives in the run database: ``workflows`` (one row per workflow,
holding its current version) and ``workflow_versions`` (every version ever applied).
:class:`SQLiteWorkflows` is the :class:`~engine.contracts.store.WorkflowStore` half of
:class:`store.sqlite.SQLiteStore`; the rules both stores share (version selectors,
paging, messages) are the functions below.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from typing import Any

from engine.contracts.errors import NotFoundError
from engine.contracts.reads import RecordPage
from engine.contracts.records import ApplyOutcome, RegisteredWorkflow, WorkflowVersion
from store.connection import Database

#: ``version`` selectors that mean "the workflow's current version".
CURRENT_VERSION_ALIASES = frozenset({"production", "draft", "latest", "current"})


def new_workflow_id() -> str:
    """A fresh workflow id: ``wf_`` and 20 hex characters."""
    return "wf_" + os.urandom(10).hex()


def workflow_not_found(workflow_id: str) -> NotFoundError:
    """The error for a workflow that is not one of the caller's organization."""
    return NotFoundError("workflow", workflow_id,
                         "Register it first with POST /v1/workflows/spec/apply "
                         "(client.workflows.apply(yaml)) and use the workflow_id it returns.")


def wanted_version(selector: str | None, current: str) -> str:
    """The version id a selector names: ``current`` for an alias (or None), else the
    selector without its optional ``ver_`` prefix."""
    if selector in (None, "", *CURRENT_VERSION_ALIASES):
        return current
    return str(selector).removeprefix("ver_")


def version_not_found(selector: str | None, workflow_id: str) -> NotFoundError:
    """The error for a version selector that names no version of the workflow."""
    return NotFoundError(
        "workflow version", str(selector),
        f"Pass version='production' for the current version of {workflow_id}, "
        "or a workflow_version_id one of its runs reports.")


def description(definition: dict[str, Any]) -> str:
    """``metadata.description`` of a definition (or its top-level ``description``)."""
    metadata = definition.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("description"), str):
        return str(metadata["description"])
    return str(definition.get("description") or "")


def page_bounds(ids: Sequence[str], *, limit: int, after: str | None,
                before: str | None) -> tuple[int, int]:
    """``(start, stop)`` of the page of ``ids`` (already in list order) the cursors ask for.

    Raises:
        NotFoundError: the cursor is not one of ``ids``.
    """
    start, stop = 0, len(ids)
    cursor = after or before
    if cursor is not None:
        if cursor not in ids:
            raise NotFoundError("workflow", cursor, "Cursors are workflow ids from list_metadata.")
        at = ids.index(cursor)
        start, stop = (at + 1, len(ids)) if after else (max(0, at - limit), at)
    if after or cursor is None:
        stop = min(stop, start + limit)
    return start, stop


_COLUMNS = "id, name, digest, definition, yaml, organization_id, created_at"


def _owned(conn: sqlite3.Connection, workflow_id: str, organization_id: str
           ) -> tuple[Any, ...]:
    row = conn.execute(f"SELECT {_COLUMNS} FROM workflows WHERE id = ?", (workflow_id,)
                       ).fetchone()
    if row is None or row[5] != organization_id:
        raise workflow_not_found(workflow_id)
    return tuple(row)


def _registered(conn: sqlite3.Connection, row: tuple[Any, ...]) -> RegisteredWorkflow:
    latest = conn.execute("SELECT max(created_at) FROM workflow_versions WHERE workflow_id = ?",
                          (row[0],)).fetchone()[0]
    definition = dict(json.loads(row[3]) if row[3] else {})
    return RegisteredWorkflow(
        id=row[0], name=row[1], description=description(definition), version_id=row[2],
        definition=definition, yaml=row[4] or "", organization_id=row[5],
        created_at=row[6], updated_at=latest if latest is not None else row[6])


def _apply(conn: sqlite3.Connection, name: str, version_id: str, definition: str, yaml: str,
           organization_id: str, workflow_id: str | None, now: float) -> ApplyOutcome:
    row = None if workflow_id is None else _owned(conn, workflow_id, organization_id)
    if row is None:
        action, wid = "create", new_workflow_id()
        conn.execute(f"INSERT INTO workflows ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (wid, name, version_id, definition, yaml, organization_id, now))
    elif row[2] == version_id:
        action, wid = "noop", row[0]
    else:
        action, wid = "update", row[0]
        conn.execute("UPDATE workflows SET name = ?, digest = ?, definition = ?, yaml = ? "
                     "WHERE id = ?", (name, version_id, definition, yaml, wid))
    if action != "noop":
        conn.execute("INSERT OR IGNORE INTO workflow_versions (workflow_id, id, definition, "
                     "yaml, created_at) VALUES (?, ?, ?, ?, ?)",
                     (wid, version_id, definition, yaml, now))
    return ApplyOutcome(workflow=_registered(conn, _owned(conn, wid, organization_id)),
                        action=action)


class SQLiteWorkflows:
    """The workflow registry over a :class:`~store.connection.Database`.

    Implements :class:`~engine.contracts.store.WorkflowStore`; mixed into
    :class:`store.sqlite.SQLiteStore`.
    """

    db: Database

    def apply_workflow(self, *, name: str, version_id: str, definition: dict[str, Any],
                       yaml: str, organization_id: str, workflow_id: str | None = None,
                       now: float) -> ApplyOutcome:
        """Register a new workflow, or add a version to ``workflow_id`` (committed).

        Raises:
            NotFoundError: ``workflow_id`` is not a workflow of this organization.
        """
        text = json.dumps(definition, separators=(",", ":"))
        db = self.db
        with db.lock, db.guard("registering a workflow"):
            outcome: ApplyOutcome = db.write(_apply, name, version_id, text, yaml,
                                             organization_id, workflow_id, now)
            return outcome

    def get_workflow(self, workflow_id: str, organization_id: str) -> RegisteredWorkflow:
        """One workflow of ``organization_id``. Raises NotFoundError."""
        with self.db.read(f"reading workflow {workflow_id}") as conn:
            return _registered(conn, _owned(conn, workflow_id, organization_id))

    def workflow_version(self, workflow_id: str, organization_id: str,
                         selector: str | None = None) -> WorkflowVersion:
        """The version a selector names (see
        :meth:`~engine.contracts.store.WorkflowStore.workflow_version`).

        Raises:
            NotFoundError: no such workflow, or no such version of it.
        """
        with self.db.read(f"reading workflow {workflow_id}") as conn:
            row = _owned(conn, workflow_id, organization_id)
            found = conn.execute(
                "SELECT id, definition, yaml, created_at FROM workflow_versions "
                "WHERE workflow_id = ? AND id = ?",
                (row[0], wanted_version(selector, row[2]))).fetchone()
        if found is None:
            raise version_not_found(selector, workflow_id)
        return WorkflowVersion(workflow_id=row[0], id=found[0],
                               definition=dict(json.loads(found[1]) if found[1] else {}),
                               yaml=found[2] or "", created_at=found[3])

    def list_workflows(self, organization_id: str, *, limit: int = 10,
                       after: str | None = None, before: str | None = None,
                       descending: bool = True) -> RecordPage[RegisteredWorkflow]:
        """One page of an organization's workflows by creation time.

        Raises:
            NotFoundError: the cursor is not a workflow of this organization.
        """
        order = "DESC" if descending else "ASC"
        with self.db.read("listing workflows") as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM workflows WHERE organization_id = ? "
                                f"ORDER BY created_at {order}, id {order}",
                                (organization_id,)).fetchall()
            start, stop = page_bounds([r[0] for r in rows], limit=limit, after=after,
                                      before=before)
            page = [_registered(conn, tuple(r)) for r in rows[start:stop]]
        return RecordPage(items=page, more_before=start > 0, more_after=stop < len(rows))
