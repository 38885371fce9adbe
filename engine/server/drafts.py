"""A registered workflow's draft and versions, as the graph-editing routes use them.

The draft is the definition edits change (``apply``, block and edge edits, restoring a
version); every saved draft is also stored as a version under its digest, so any
``workflow_version_id`` a run reports stays readable. A draft is saved only when it
validates like an applied spec (:func:`check_definition`): an edit that would break the
graph is refused with 422 ``INVALID_WORKFLOW`` listing every problem, and nothing
changes. Saves are compare-and-set on the draft's revision, so of two concurrent edits
the second is refused with 409 instead of silently undoing the first.

Block and edge ids are looked up across the caller's workflows when the request does not
name the workflow (Retab's flat routes): one match is used, several are a 400 asking for
``workflow_id``.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from fastapi import Request

from engine.contracts.bounded import check_json
from engine.contracts.errors import NotFoundError, WorkflowValidationError
from engine.contracts.records import RegisteredWorkflow, WorkflowVersion
from engine.definition import Workflow
from engine.graph_edit import authored_edges, edge_id, name_edges, stamps_after
from engine.graph_versions import (
    BlockVersion,
    EdgeVersion,
    StoredVersion,
    block_versions,
    edge_versions,
)
from engine.server.errors import ApiError
from engine.server.security import policy_problems


def server(request: Request) -> Any:
    """The :class:`~engine.server.state.ServerState` of the app."""
    return request.app.state.stepwell


#: Problems a draft being edited block by block may have for a while: they are warnings
#: after a graph edit, and errors for an applied spec, a publish and a run.
DRAFT_TOLERATED = frozenset({"BLOCK_NOT_CONNECTED"})


def check_definition(state: Any, workflow: Workflow, *, draft: bool = False
                     ) -> dict[str, Any]:
    """Validate a definition (an applied spec, or a draft after an edit), then check it
    against the server's code policy.

    Args:
        state: the server state.
        workflow: the definition.
        draft: a graph edit of the draft: :data:`DRAFT_TOLERATED` problems (a block not
            connected yet) are warnings, so a graph can be built one block at a time.

    Returns:
        ``{"errors": [], "warnings": [...]}``.

    Raises:
        WorkflowValidationError: it has errors (every one listed).
        ApiError: 403 ``CODE_NOT_ALLOWED`` when the server's policy forbids something in it.
    """
    diagnostics = state.engine.validate(workflow)
    if draft:
        diagnostics = [replace(d, severity="warning") if d.code in DRAFT_TOLERATED else d
                       for d in diagnostics]
    if any(d.severity == "error" for d in diagnostics):
        raise WorkflowValidationError(diagnostics, source=workflow.source)
    problems = policy_problems(workflow, state.engine.registry, state.config.policy)
    if problems:
        first = problems[0]
        raise ApiError(403, "CODE_NOT_ALLOWED",
                       f"{first.path}: {first.message}. Fix: {first.fix}"
                       + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                       {"diagnostics": [d.to_dict() for d in problems]})
    return {"errors": [], "warnings": [d.to_dict() for d in diagnostics]}


def definition_of(record: RegisteredWorkflow | WorkflowVersion) -> Workflow:
    """The workflow a stored definition (a draft, or a version) describes."""
    source = record.workflow_id if isinstance(record, WorkflowVersion) else record.id
    return Workflow.from_dict(record.definition, source=source)


def draft_of(state: Any, org: str, workflow_id: str) -> tuple[RegisteredWorkflow, Workflow]:
    """A workflow of ``org`` and its draft. Raises NotFoundError."""
    registered = state.store.get_workflow(workflow_id, org)
    return registered, definition_of(registered)


def save_draft(state: Any, org: str, registered: RegisteredWorkflow, new: Workflow
               ) -> RegisteredWorkflow:
    """Validate ``new`` and store it as the draft of ``registered``.

    Raises:
        WorkflowValidationError: ``new`` has errors; nothing was stored.
        ConflictError: the draft changed since ``registered`` was read.
    """
    new = name_edges(new, registered.id)
    definition = new.to_dict()
    # Graph edits bring JSON the YAML budget never saw (configs, schemas): bounded before
    # it is stored, so a listing of the draft can always be served.
    check_json(definition, what="the workflow draft")
    check_definition(state, new, draft=True)
    now = time.time()
    stamps = stamps_after(definition_of(registered), new, registered.stamps, now,
                          since=registered.created_at)
    return state.store.save_draft(registered.id, org, definition=definition, yaml="",
                                  version_id=new.digest(), stamps=stamps,
                                  expected_revision=registered.revision, now=now)


def stored_versions(state: Any, org: str, workflow_id: str) -> list[StoredVersion]:
    """Every version of a workflow, newest first."""
    return [StoredVersion(id=v.id, workflow=definition_of(v), created_at=v.created_at)
            for v in state.store.workflow_versions(workflow_id, org)]


def version_of(state: Any, org: str, workflow_id: str, version_id: str) -> StoredVersion:
    """One version of a workflow (an id of another workflow is not found).

    Raises:
        NotFoundError: no such workflow, or no such version of it.
    """
    if version_id in ("draft", "production", "latest", "current"):
        raise NotFoundError("workflow version", version_id,
                            "Pass a version id (list them with client.workflows.list_versions).")
    found = state.store.workflow_version(workflow_id, org, version_id)
    return StoredVersion(id=found.id, workflow=definition_of(found), created_at=found.created_at)


def all_workflows(state: Any, org: str) -> list[RegisteredWorkflow]:
    """Every workflow of ``org``, oldest first."""
    out: list[RegisteredWorkflow] = []
    after = None
    while True:
        found = state.store.list_workflows(org, limit=1000, after=after, descending=False)
        out.extend(found.items)
        if not found.more_after:
            return out
        after = found.items[-1].id


def _ambiguous(kind: str, ident: str, owners: list[str]) -> ApiError:
    return ApiError(400, "AMBIGUOUS_ID",
                    f"{kind.capitalize()} {ident!r} exists in several of your workflows "
                    f"({', '.join(owners)}). Pass workflow_id to say which one.",
                    {"workflow_ids": owners})


def block_owner(state: Any, org: str, block_id: str, workflow_id: str | None
                ) -> tuple[RegisteredWorkflow, Workflow]:
    """The workflow whose draft has ``block_id`` (``workflow_id`` when given).

    Raises:
        NotFoundError: no such block (in that workflow).  ApiError: 400 when several
            workflows have it and ``workflow_id`` is missing.
    """
    if workflow_id is not None:
        registered, draft = draft_of(state, org, workflow_id)
        if draft.block(block_id) is None:
            raise NotFoundError("block", block_id, f"It is not a block of {workflow_id}'s draft.")
        return registered, draft
    owners = [(r, definition_of(r)) for r in all_workflows(state, org)]
    found = [(r, d) for r, d in owners if d.block(block_id) is not None]
    if not found:
        raise NotFoundError("block", block_id, "List blocks with client.workflows.blocks.list.")
    if len(found) > 1:
        raise _ambiguous("block", block_id, [r.id for r, _ in found])
    return found[0]


def edge_owner(state: Any, org: str, ident: str, workflow_id: str | None
               ) -> tuple[RegisteredWorkflow, Workflow]:
    """The workflow whose draft has edge ``ident`` (see :func:`block_owner`)."""
    candidates = ([draft_of(state, org, workflow_id)] if workflow_id is not None
                  else [(r, definition_of(r)) for r in all_workflows(state, org)])
    found = [(r, d) for r, d in candidates
             if any(edge_id(e) == ident for e in authored_edges(d))]
    if not found:
        raise NotFoundError("edge", ident, "List edges with client.workflows.edges.list.")
    if len(found) > 1:
        raise _ambiguous("edge", ident, [r.id for r, _ in found])
    return found[0]


def find_block_version(state: Any, org: str, version_id: str) -> BlockVersion:
    """A block version of one of ``org``'s workflows. Raises NotFoundError."""
    for registered in all_workflows(state, org):
        for found in block_versions(registered.id, stored_versions(state, org, registered.id)):
            if found.id == version_id:
                return found
    raise NotFoundError("block version", version_id,
                        "List them with client.workflows.blocks.list_versions.")


def find_edge_version(state: Any, org: str, version_id: str) -> EdgeVersion:
    """An edge version of one of ``org``'s workflows. Raises NotFoundError."""
    for registered in all_workflows(state, org):
        for found in edge_versions(registered.id, stored_versions(state, org, registered.id)):
            if found.id == version_id:
                return found
    raise NotFoundError("edge version", version_id,
                        "List them with client.workflows.edges.list_versions.")
