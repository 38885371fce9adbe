"""The memory store's workflow registry: drafts, published versions, projects
(:class:`~engine.contracts.store.WorkflowStore`, :class:`~engine.contracts.versions.VersionStore`).

Rows live in :class:`store.memory_rows.Tables` (``workflows``, ``workflow_versions``)
under the tables' lock; the rules both stores share (version selectors, paging, messages)
come from :mod:`store.workflows`.
"""

from __future__ import annotations

import copy
from typing import Any

from engine.contracts.errors import ConflictError
from engine.contracts.reads import RecordPage
from engine.contracts.records import ApplyOutcome, RegisteredWorkflow, WorkflowVersion
from store.memory_rows import Tables, WorkflowRow, as_json
from store.workflows import (
    description,
    new_workflow_id,
    page_bounds,
    version_not_found,
    wanted_version,
    workflow_not_found,
)


class MemoryWorkflows:
    """Registered workflows in memory; mixed into :class:`store.memory.MemoryStore`."""

    tables: Tables

    def apply_workflow(self, *, name: str, version_id: str, definition: dict[str, Any],
                       yaml: str, organization_id: str, workflow_id: str | None = None,
                       now: float) -> ApplyOutcome:
        """Register a workflow (published), or make ``definition`` the draft. Raises
        NotFoundError for an unknown ``workflow_id``."""
        with self.tables.lock:
            if workflow_id is None:
                created = self.create_workflow(
                    workflow_id=new_workflow_id(), name=name,
                    description=description(definition), project_id=None,
                    definition=definition, yaml=yaml, version_id=version_id,
                    organization_id=organization_id, publish=True, now=now)
                return ApplyOutcome(workflow=created, action="create")
            row = self._workflow(workflow_id, organization_id)
            if row.digest == version_id:
                return ApplyOutcome(workflow=self._registered(row), action="noop")
            self.save_draft(workflow_id, organization_id, definition=definition, yaml=yaml,
                            version_id=version_id, stamps=row.stamps, expected_revision=None,
                            now=now)
            row.name = name
            return ApplyOutcome(workflow=self._registered(row), action="update")

    def create_workflow(self, *, workflow_id: str, name: str, description: str,
                        project_id: str | None, definition: dict[str, Any], yaml: str,
                        version_id: str, organization_id: str, publish: bool,
                        now: float) -> RegisteredWorkflow:
        """Register a workflow. Raises ConflictError for an existing id."""
        definition = as_json(definition, "definition", name)
        with self.tables.lock:
            if workflow_id in self.tables.workflows:
                raise ConflictError(f"Workflow {workflow_id} already exists; pick another id.")
            row = WorkflowRow(id=workflow_id, name=name, digest=version_id,
                              definition=definition, yaml=yaml,
                              organization_id=organization_id, created_at=now,
                              description=description, project_id=project_id,
                              published_version=version_id if publish else None,
                              published_at=now if publish else None, updated_at=now)
            self.tables.workflows[row.id] = row
            self._keep_version(row, now)
            return self._registered(row)

    def save_draft(self, workflow_id: str, organization_id: str, *,
                   definition: dict[str, Any], yaml: str, version_id: str,
                   stamps: dict[str, float], expected_revision: int | None,
                   now: float) -> RegisteredWorkflow:
        """Make ``definition`` the draft. Raises NotFoundError, ConflictError."""
        definition = as_json(definition, "definition", workflow_id)
        stamps = as_json(stamps, "stamps", workflow_id)
        with self.tables.lock:
            row = self._workflow(workflow_id, organization_id)
            if expected_revision is not None and expected_revision != row.revision:
                raise ConflictError(
                    f"The draft of {workflow_id} changed while this edit was made (revision "
                    f"{row.revision}, the edit read {expected_revision}). Read it again and "
                    "repeat the edit.")
            row.digest, row.definition, row.yaml = version_id, definition, yaml
            row.stamps, row.revision, row.updated_at = stamps, row.revision + 1, now
            self._keep_version(row, now)
            return self._registered(row)

    def publish_workflow(self, workflow_id: str, organization_id: str, *,
                         description: str, now: float) -> RegisteredWorkflow:
        """Publish the draft's version. Raises NotFoundError."""
        with self.tables.lock:
            row = self._workflow(workflow_id, organization_id)
            row.published_version, row.published_at = row.digest, now
            row.published_description, row.updated_at = description, now
            return self._registered(row)

    def update_workflow(self, workflow_id: str, organization_id: str, *,
                        name: str | None = None, description: str | None = None,
                        now: float) -> RegisteredWorkflow:
        """Rename and/or describe a workflow. Raises NotFoundError."""
        with self.tables.lock:
            row = self._workflow(workflow_id, organization_id)
            row.name = row.name if name is None else name
            row.description = row.description if description is None else description
            row.updated_at = now
            return self._registered(row)

    def delete_workflow(self, workflow_id: str, organization_id: str) -> None:
        """Delete a workflow, its versions and evals. Raises NotFoundError."""
        with self.tables.lock:
            self._workflow(workflow_id, organization_id)
            del self.tables.workflows[workflow_id]
            for key in [k for k in self.tables.workflow_versions if k[0] == workflow_id]:
                del self.tables.workflow_versions[key]
            self._forget_workflow_evals(workflow_id, organization_id)

    def get_workflow(self, workflow_id: str, organization_id: str) -> RegisteredWorkflow:
        """One workflow of ``organization_id``. Raises NotFoundError."""
        with self.tables.lock:
            return self._registered(self._workflow(workflow_id, organization_id))

    def workflow_versions(self, workflow_id: str, organization_id: str
                          ) -> list[WorkflowVersion]:
        """Every version of a workflow, newest first. Raises NotFoundError."""
        with self.tables.lock:
            self._workflow(workflow_id, organization_id)
            found = [v for (wid, _), v in self.tables.workflow_versions.items()
                     if wid == workflow_id]
        return [copy.deepcopy(v) for v in
                sorted(found, key=lambda v: (v.created_at, v.id), reverse=True)]

    def workflow_version(self, workflow_id: str, organization_id: str,
                         selector: str | None = None) -> WorkflowVersion:
        """The version a selector names. Raises NotFoundError."""
        with self.tables.lock:
            row = self._workflow(workflow_id, organization_id)
            wanted = wanted_version(selector, row.digest, row.published_version, workflow_id)
            found = self.tables.workflow_versions.get((row.id, wanted))
        if found is None:
            raise version_not_found(selector, workflow_id)
        return copy.deepcopy(found)

    def list_workflows(self, organization_id: str, *, limit: int = 10,
                       after: str | None = None, before: str | None = None,
                       descending: bool = True, project_id: str | None = None,
                       sort_by: str = "created_at") -> RecordPage[RegisteredWorkflow]:
        """One page of an organization's workflows by ``(sort_by, id)``. Raises
        NotFoundError for a cursor that is not a workflow of this list."""
        def key(row: WorkflowRow) -> tuple[float, str]:
            when = row.updated_at if sort_by == "updated_at" else row.created_at
            return (when, row.id)

        with self.tables.lock:
            rows = sorted((w for w in self.tables.workflows.values()
                           if w.organization_id == organization_id
                           and project_id in (None, w.project_id)),
                          key=key, reverse=descending)
            start, stop = page_bounds([w.id for w in rows], limit=limit, after=after,
                                      before=before)
            page = [self._registered(w) for w in rows[start:stop]]
        return RecordPage(items=page, more_before=start > 0, more_after=stop < len(rows))

    def _keep_version(self, row: WorkflowRow, now: float) -> None:
        self.tables.workflow_versions.setdefault((row.id, row.digest), WorkflowVersion(
            workflow_id=row.id, id=row.digest, definition=copy.deepcopy(row.definition),
            yaml=row.yaml, created_at=now))

    def _forget_workflow_evals(self, workflow_id: str, organization_id: str) -> None:
        """Overridden by the evals mixin: drop a deleted workflow's evals."""

    def _workflow(self, workflow_id: str, organization_id: str) -> WorkflowRow:
        row = self.tables.workflows.get(workflow_id)
        if row is None or row.organization_id != organization_id:
            raise workflow_not_found(workflow_id)
        return row

    @staticmethod
    def _registered(row: WorkflowRow) -> RegisteredWorkflow:
        return RegisteredWorkflow(
            id=row.id, name=row.name, description=row.description,
            version_id=row.digest, definition=copy.deepcopy(row.definition),
            yaml=row.yaml, organization_id=row.organization_id, created_at=row.created_at,
            updated_at=row.updated_at or row.created_at, project_id=row.project_id,
            published_version_id=row.published_version, published_at=row.published_at,
            published_description=row.published_description, revision=row.revision,
            stamps=dict(row.stamps))
