"""The workflow registry: definitions applied over HTTP (``POST /v1/workflows/spec/apply``),
their drafts and the versions they published.

A registered workflow has a stable id (``wf_`` + 20 hex), a draft and at most one
published version. Each version is content-addressed: its id is the definition's digest
(:meth:`engine.definition.Workflow.digest`), the same value runs report as
``workflow_version_id``. Every saved draft is kept as a version (once per digest);
applying a spec creates a workflow (its first version published) or replaces the draft,
and is a no-op when the draft's version is unchanged; every version stays runnable by id.

In SQLite the registry lives in the run database: ``workflows`` (one row per workflow,
holding its current version) and ``workflow_versions`` (every version ever applied).
:class:`SQLiteWorkflows` is the :class:`~engine.contracts.store.WorkflowStore` half of
:class:`store.sqlite.SQLiteStore`; the rules both stores share (version selectors,
paging, messages) are the functions below.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from engine.contracts.errors import ConflictError, NotFoundError
from store.connection import Database

if TYPE_CHECKING:  # built where a workflow is read: running a file loads none of them
    from engine.contracts.reads import RecordPage
    from engine.contracts.records import (
        ApplyOutcome,
        RegisteredWorkflow,
        WorkflowVersion,
    )

#: ``version`` selectors that mean "the workflow's draft".
DRAFT_ALIASES = frozenset({"draft", "latest", "current"})
#: ``version`` selectors that mean "the published version" (None too).
PUBLISHED_ALIASES = frozenset({"production", ""})


def new_workflow_id() -> str:
    """A fresh workflow id: ``wf_`` and 20 hex characters."""
    return "wf_" + os.urandom(10).hex()


def workflow_not_found(workflow_id: str) -> NotFoundError:
    """The error for a workflow that is not one of the caller's organization."""
    return NotFoundError("workflow", workflow_id,
                         "Register it first with POST /v1/workflows/spec/apply "
                         "(client.workflows.apply(yaml)) and use the workflow_id it returns.")


def wanted_version(selector: str | None, draft: str, published: str | None,
                   workflow_id: str) -> str:
    """The version id a selector names: the draft's, the published one, or the selector
    without its optional ``ver_`` prefix.

    Raises:
        NotFoundError: ``production`` of a workflow that was never published.
    """
    if selector in DRAFT_ALIASES:
        return draft
    if selector is None or selector in PUBLISHED_ALIASES:
        if published is None:
            raise NotFoundError(
                "published version", workflow_id,
                "It was never published: publish it (client.workflows.publish), or run "
                "its draft with version='draft'.")
        return published
    return str(selector).removeprefix("ver_")


def version_not_found(selector: str | None, workflow_id: str) -> NotFoundError:
    """The error for a version selector that names no version of the workflow."""
    return NotFoundError(
        "workflow version", str(selector),
        f"Pass version='production' for the published version of {workflow_id}, "
        "version='draft' for its draft, or a workflow_version_id one of its runs reports.")


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


_COLUMNS = ("id, name, digest, definition, yaml, organization_id, created_at, description, "
            "project_id, published_version, published_at, published_description, revision, "
            "stamps, updated_at")
_SORTS = {"created_at": "created_at", "updated_at": "coalesce(updated_at, created_at)"}


def _owned(conn: Any, workflow_id: str, organization_id: str) -> tuple[Any, ...]:
    row = conn.execute(f"SELECT {_COLUMNS} FROM workflows WHERE id = ?", (workflow_id,)
                       ).fetchone()
    if row is None or row[5] != organization_id:
        raise workflow_not_found(workflow_id)
    return tuple(row)


def _registered(row: Sequence[Any]) -> RegisteredWorkflow:
    from engine.contracts.records import RegisteredWorkflow

    definition = dict(json.loads(row[3]) if row[3] else {})
    if row[12] is None:  # a row from before layout 5: published at creation, never edited
        row = (*row[:9], row[2], row[6], *row[11:])
    return RegisteredWorkflow(
        id=row[0], name=row[1],
        description=row[7] if row[7] is not None else description(definition),
        version_id=row[2], definition=definition, yaml=row[4] or "", organization_id=row[5],
        created_at=row[6], updated_at=row[14] if row[14] is not None else row[6],
        project_id=row[8], published_version_id=row[9], published_at=row[10],
        published_description=row[11] or "", revision=int(row[12] or 0),
        stamps=dict(json.loads(row[13]) if row[13] else {}))


def _keep_version(conn: Any, workflow_id: str, version_id: str, definition: str, yaml: str,
                  now: float) -> None:
    """Store a version unless it exists (a version keeps what it was first stored with)."""
    found = conn.execute("SELECT 1 FROM workflow_versions WHERE workflow_id = ? AND id = ?",
                         (workflow_id, version_id)).fetchone()
    if found is None:
        conn.execute("INSERT INTO workflow_versions (workflow_id, id, definition, yaml, "
                      "created_at) VALUES (?, ?, ?, ?, ?)",
                      (workflow_id, version_id, definition, yaml, now))


def _create(conn: Any, wid: str, name: str, text: str, yaml: str, version_id: str, org: str,
            about: str, project_id: str | None, publish: bool, now: float
            ) -> RegisteredWorkflow:
    if conn.execute("SELECT 1 FROM workflows WHERE id = ?", (wid,)).fetchone() is not None:
        raise ConflictError(f"Workflow {wid} already exists; pick another id.")
    conn.execute(f"INSERT INTO workflows ({_COLUMNS}) VALUES "
                 f"({', '.join('?' * 15)})",
                 (wid, name, version_id, text, yaml, org, now, about, project_id,
                  version_id if publish else None, now if publish else None, "", 0, "{}", now))
    _keep_version(conn, wid, version_id, text, yaml, now)
    return _registered(_owned(conn, wid, org))


def _save(conn: Any, wid: str, org: str, text: str, yaml: str, version_id: str, stamps: str,
          expected: int | None, now: float) -> RegisteredWorkflow:
    row = _owned(conn, wid, org)
    revision = int(row[12] or 0)
    if expected is not None and expected != revision:
        raise ConflictError(f"The draft of {wid} changed while this edit was made (revision "
                            f"{revision}, the edit read {expected}). Read it again and "
                            "repeat the edit.")
    conn.execute("UPDATE workflows SET digest = ?, definition = ?, yaml = ?, stamps = ?, "
                 "revision = ?, updated_at = ? WHERE id = ?",
                 (version_id, text, yaml, stamps, revision + 1, now, wid))
    _keep_version(conn, wid, version_id, text, yaml, now)
    return _registered(_owned(conn, wid, org))


def _set(conn: Any, wid: str, org: str, assignments: str, params: tuple[Any, ...]
         ) -> RegisteredWorkflow:
    _owned(conn, wid, org)
    conn.execute(f"UPDATE workflows SET {assignments} WHERE id = ?", (*params, wid))
    return _registered(_owned(conn, wid, org))


def _delete(conn: Any, wid: str, org: str) -> None:
    _owned(conn, wid, org)
    for table in ("eval_results", "eval_runs", "evals"):
        conn.execute(f"DELETE FROM {table} WHERE workflow_id = ? AND organization_id = ?",
                     (wid, org))
    conn.execute("DELETE FROM workflow_versions WHERE workflow_id = ?", (wid,))
    conn.execute("DELETE FROM workflows WHERE id = ?", (wid,))


class SQLiteWorkflows:
    """The workflow registry over a :class:`~store.connection.Database`.

    Implements :class:`~engine.contracts.store.WorkflowStore` and
    :class:`~engine.contracts.versions.VersionStore`; mixed into
    :class:`store.sqlite.SQLiteStore` (and the PostgreSQL store, whose database takes the
    same SQL).
    """

    db: Database

    def _write(self, action: str, fn: Any, *args: Any) -> Any:
        db = self.db
        with db.lock, db.guard(action):
            return db.write(fn, *args)

    def apply_workflow(self, *, name: str, version_id: str, definition: dict[str, Any],
                       yaml: str, organization_id: str, workflow_id: str | None = None,
                       now: float) -> ApplyOutcome:
        """Register a new workflow (published), or make ``definition`` the draft of
        ``workflow_id`` (committed).

        Raises:
            NotFoundError: ``workflow_id`` is not a workflow of this organization.
        """
        from engine.contracts.records import ApplyOutcome

        if workflow_id is None:
            created = self.create_workflow(
                workflow_id=new_workflow_id(), name=name, description=description(definition),
                project_id=None, definition=definition, yaml=yaml, version_id=version_id,
                organization_id=organization_id, publish=True, now=now)
            return ApplyOutcome(workflow=created, action="create")
        current = self.get_workflow(workflow_id, organization_id)
        if current.version_id == version_id:
            return ApplyOutcome(workflow=current, action="noop")
        saved = self.save_draft(workflow_id, organization_id, definition=definition, yaml=yaml,
                                version_id=version_id, stamps=current.stamps,
                                expected_revision=None, now=now)
        saved = self.update_workflow(workflow_id, organization_id, name=name, now=now)
        return ApplyOutcome(workflow=saved, action="update")

    def create_workflow(self, *, workflow_id: str, name: str, description: str,
                        project_id: str | None, definition: dict[str, Any], yaml: str,
                        version_id: str, organization_id: str, publish: bool,
                        now: float) -> RegisteredWorkflow:
        """Register a workflow (committed). Raises ConflictError for an existing id."""
        text = json.dumps(definition, separators=(",", ":"))
        created: RegisteredWorkflow = self._write(
            "registering a workflow", _create, workflow_id, name, text, yaml, version_id,
            organization_id, description, project_id, publish, now)
        return created

    def save_draft(self, workflow_id: str, organization_id: str, *,
                   definition: dict[str, Any], yaml: str, version_id: str,
                   stamps: dict[str, float], expected_revision: int | None,
                   now: float) -> RegisteredWorkflow:
        """Make ``definition`` the draft (committed).

        Raises:
            NotFoundError: no such workflow.  ConflictError: the revision moved on.
        """
        text = json.dumps(definition, separators=(",", ":"))
        saved: RegisteredWorkflow = self._write(
            f"saving the draft of {workflow_id}", _save, workflow_id, organization_id, text,
            yaml, version_id, json.dumps(stamps), expected_revision, now)
        return saved

    def publish_workflow(self, workflow_id: str, organization_id: str, *,
                         description: str, now: float) -> RegisteredWorkflow:
        """Publish the draft's version (committed). Raises NotFoundError."""
        done: RegisteredWorkflow = self._write(
            f"publishing {workflow_id}", _set, workflow_id, organization_id,
            "published_version = digest, published_at = ?, published_description = ?, "
            "updated_at = ?", (now, description, now))
        return done

    def update_workflow(self, workflow_id: str, organization_id: str, *,
                        name: str | None = None, description: str | None = None,
                        now: float) -> RegisteredWorkflow:
        """Rename and/or describe a workflow (committed). Raises NotFoundError."""
        updated: RegisteredWorkflow = self._write(
            f"updating {workflow_id}", _set, workflow_id, organization_id,
            "name = coalesce(?, name), description = coalesce(?, description), "
            "updated_at = ?", (name, description, now))
        return updated

    def delete_workflow(self, workflow_id: str, organization_id: str) -> None:
        """Delete a workflow, its versions and evals (committed). Raises NotFoundError."""
        self._write(f"deleting {workflow_id}", _delete, workflow_id, organization_id)

    def get_workflow(self, workflow_id: str, organization_id: str) -> RegisteredWorkflow:
        """One workflow of ``organization_id``. Raises NotFoundError."""
        with self.db.read(f"reading workflow {workflow_id}") as conn:
            return _registered(_owned(conn, workflow_id, organization_id))

    def workflow_versions(self, workflow_id: str, organization_id: str
                          ) -> list[WorkflowVersion]:
        """Every version of a workflow, newest first. Raises NotFoundError."""
        from engine.contracts.records import WorkflowVersion

        with self.db.read(f"reading the versions of {workflow_id}") as conn:
            row = _owned(conn, workflow_id, organization_id)
            found = conn.execute(
                "SELECT id, definition, yaml, created_at FROM workflow_versions WHERE "
                "workflow_id = ? ORDER BY created_at DESC, id DESC", (row[0],)).fetchall()
        return [WorkflowVersion(workflow_id=row[0], id=v[0],
                                definition=dict(json.loads(v[1]) if v[1] else {}),
                                yaml=v[2] or "", created_at=v[3]) for v in found]

    def workflow_version(self, workflow_id: str, organization_id: str,
                         selector: str | None = None) -> WorkflowVersion:
        """The version a selector names (see
        :meth:`~engine.contracts.store.WorkflowStore.workflow_version`).

        Raises:
            NotFoundError: no such workflow, no such version of it, or nothing published.
        """
        from engine.contracts.records import WorkflowVersion

        with self.db.read(f"reading workflow {workflow_id}") as conn:
            row = _owned(conn, workflow_id, organization_id)
            wanted = wanted_version(selector, row[2], row[9], workflow_id)
            found = conn.execute(
                "SELECT id, definition, yaml, created_at FROM workflow_versions "
                "WHERE workflow_id = ? AND id = ?", (row[0], wanted)).fetchone()
        if found is None:
            raise version_not_found(selector, workflow_id)
        return WorkflowVersion(workflow_id=row[0], id=found[0],
                               definition=dict(json.loads(found[1]) if found[1] else {}),
                               yaml=found[2] or "", created_at=found[3])

    def list_workflows(self, organization_id: str, *, limit: int = 10,
                       after: str | None = None, before: str | None = None,
                       descending: bool = True, project_id: str | None = None,
                       sort_by: str = "created_at") -> RecordPage[RegisteredWorkflow]:
        """One page of an organization's workflows ordered by ``(sort_by, id)``.

        Raises:
            NotFoundError: the cursor is not a workflow of this list.
        """
        from engine.contracts.reads import RecordPage

        order = "DESC" if descending else "ASC"
        where, params = "organization_id = ?", [organization_id]
        if project_id is not None:
            where, params = where + " AND project_id = ?", [*params, project_id]
        key = _SORTS.get(sort_by, "created_at")
        with self.db.read("listing workflows") as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM workflows WHERE {where} "
                                f"ORDER BY {key} {order}, id {order}", params).fetchall()
        start, stop = page_bounds([r[0] for r in rows], limit=limit, after=after, before=before)
        page = [_registered(tuple(r)) for r in rows[start:stop]]
        return RecordPage(items=page, more_before=start > 0, more_after=stop < len(rows))
