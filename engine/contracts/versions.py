"""Drafts and published versions of registered workflows: the :class:`VersionStore`.

A registered workflow (:class:`~engine.contracts.records.RegisteredWorkflow`) has a
draft, the definition edits change, and at most one published version, what runs get
by default. Every definition saved as the draft is also kept as a version under its
id (the definition's digest), once: saving a definition whose version exists keeps the
version as first stored. Versions are read back with
:meth:`~engine.contracts.store.WorkflowStore.workflow_version` and :meth:`workflow_versions`.

Rules every implementation keeps (``tests/store/test_contract_drafts.py``):

- Another organization's workflow is ``NotFoundError``, like an unknown id.
- :meth:`VersionStore.save_draft` with ``expected_revision`` is a compare-and-set: it
  raises ``ConflictError`` when the draft was saved since that revision was read; every
  save adds one to ``revision``.
- Publishing makes the draft's version the published one; nothing else changes it.
- Deleting a workflow deletes its versions, evals, eval runs and results (its runs stay).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from engine.contracts.records import RegisteredWorkflow, WorkflowVersion


@runtime_checkable
class VersionStore(Protocol):
    """Workflow drafts, publishing and versions, one organization at a time."""

    def create_workflow(self, *, workflow_id: str, name: str, description: str,
                        project_id: str | None, definition: dict[str, Any], yaml: str,
                        version_id: str, organization_id: str, publish: bool,
                        now: float) -> RegisteredWorkflow:
        """Register a workflow whose draft is ``definition`` (published at once when
        ``publish``). Committed.

        Raises:
            ConflictError: ``workflow_id`` exists.
        """
        ...

    def save_draft(self, workflow_id: str, organization_id: str, *,
                   definition: dict[str, Any], yaml: str, version_id: str,
                   stamps: dict[str, float], expected_revision: int | None,
                   now: float) -> RegisteredWorkflow:
        """Make ``definition`` the draft (and a version, when ``version_id`` is new).

        Raises:
            NotFoundError: no such workflow in this organization.
            ConflictError: ``expected_revision`` is given and is not the draft's.
        """
        ...

    def publish_workflow(self, workflow_id: str, organization_id: str, *,
                         description: str, now: float) -> RegisteredWorkflow:
        """Publish the draft's version with a release note.

        Raises:
            NotFoundError: no such workflow in this organization.
        """
        ...

    def update_workflow(self, workflow_id: str, organization_id: str, *,
                        name: str | None = None, description: str | None = None,
                        now: float) -> RegisteredWorkflow:
        """Rename and/or describe a workflow (None leaves a field as it is).

        Raises:
            NotFoundError: no such workflow in this organization.
        """
        ...

    def delete_workflow(self, workflow_id: str, organization_id: str) -> None:
        """Delete a workflow, its versions and its evals (with their runs and results).

        Raises:
            NotFoundError: no such workflow in this organization.
        """
        ...

    def workflow_versions(self, workflow_id: str, organization_id: str
                          ) -> list[WorkflowVersion]:
        """Every version of a workflow, newest first (``created_at``, then id).

        Raises:
            NotFoundError: no such workflow in this organization.
        """
        ...
