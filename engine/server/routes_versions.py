"""A workflow's life: create, rename, delete, publish, discard the draft, and its versions.

A workflow has a draft (what ``apply`` and the block and edge routes change) and at most
one published version (what runs get by default, ``version="production"``). ``publish``
makes the draft the published version; ``discard-draft`` puts the published version
back into the draft; restoring a version puts it into the draft. Version ids are the
definitions' digests (see docs/http.md).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from engine.contracts.bounded import clean_text
from engine.contracts.errors import ConflictError
from engine.definition import Workflow
from engine.graph_versions import graph_diff
from engine.server.auth import Org
from engine.server.drafts import (
    check_definition,
    definition_of,
    draft_of,
    save_draft,
    server,
    stored_versions,
    version_of,
)
from engine.server.errors import ApiError
from engine.server.graph_shapes import version_json
from engine.server.lists import page, required
from engine.server.params import reject_unknown_query
from engine.server.paths import WorkflowId
from engine.server.schemas import ERRORS, PageOut, WorkflowOut, ok
from engine.server.schemas_graph import (
    CreateWorkflowBody,
    PublishBody,
    UpdateWorkflowBody,
    VersionDiffOut,
    VersionOut,
)
from engine.server.shapes import workflow_json
from store.workflows import new_workflow_id

router = APIRouter(prefix="/v1/workflows", dependencies=[Depends(reject_unknown_query)],
                   responses=ERRORS)
#: The start block a new workflow gets (Retab: a default "Document" input block).
DEFAULT_START = ("document", "start_document", "Document")


@router.post("", responses=ok(WorkflowOut), summary="Create an empty workflow")
def create_workflow(request: Request, body: CreateWorkflowBody, org: Org) -> Any:
    """A new unpublished workflow whose draft has one ``Document`` start block."""
    state = server(request)
    block_id, block_type, label = DEFAULT_START
    name, description = _printable_name(body.name), _printable_description(body.description)
    draft = (Workflow.builder(name).block(block_id, block_type, label=label).build()
             .model_copy(update={"description": description}))
    check_definition(state, draft)
    created = state.store.create_workflow(
        workflow_id=new_workflow_id(), name=name, description=description,
        project_id=body.project_id,
        definition=draft.to_dict(), yaml="", version_id=draft.digest(),
        organization_id=org, publish=False, now=time.time())
    return workflow_json(created)


@router.get("/versions", responses=ok(PageOut[VersionOut]), summary="List workflow versions")
def list_versions(request: Request, org: Org, workflow_id: str | None = None,
                  before: str | None = None, after: str | None = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> Any:
    """Every definition the workflow had (applied, edited, published), newest first."""
    wid = required("workflow_id", workflow_id, "the workflow whose versions to list")
    versions = stored_versions(server(request), org, wid)
    return page(versions, [v.id for v in versions], limit=limit, after=after, before=before,
                shape=lambda v: version_json(wid, v))


@router.get("/versions/diff", responses=ok(VersionDiffOut), summary="Compare two versions")
def diff_versions(request: Request, org: Org, workflow_id: str | None = None,
                  from_workflow_version_id: str | None = None,
                  to_workflow_version_id: str | None = None) -> Any:
    """Blocks and edges added, removed and changed from one version to the other."""
    state = server(request)
    wid = required("workflow_id", workflow_id, "the workflow the versions belong to")
    old = version_of(state, org, wid, required(
        "from_workflow_version_id", from_workflow_version_id, "the version to compare from"))
    new = version_of(state, org, wid, required(
        "to_workflow_version_id", to_workflow_version_id, "the version to compare to"))
    diff = graph_diff(old.workflow, new.workflow)
    return {"from_workflow_version_id": old.id, "to_workflow_version_id": new.id,
            **{f: getattr(diff, f) for f in diff.__dataclass_fields__}}


@router.get("/versions/{workflow_version_id}", responses=ok(VersionOut),
            summary="Get a workflow version")
def get_version(request: Request, workflow_version_id: str, org: Org,
                workflow_id: str | None = None) -> Any:
    """One version: its blocks and edges, and their version ids."""
    wid = required("workflow_id", workflow_id, "the workflow the version belongs to")
    return version_json(wid, version_of(server(request), org, wid, workflow_version_id))


@router.post("/versions/{workflow_version_id}/restore", responses=ok(WorkflowOut),
             summary="Put a version back into the draft")
def restore_version(request: Request, workflow_version_id: str, org: Org,
                    workflow_id: str | None = None) -> Any:
    """The draft becomes that version (the published version does not change)."""
    state = server(request)
    wid = required("workflow_id", workflow_id, "the workflow to restore into")
    registered, _ = draft_of(state, org, wid)
    found = version_of(state, org, wid, workflow_version_id)
    return workflow_json(save_draft(state, org, registered, found.workflow))


@router.patch("/{workflow_id}", responses=ok(WorkflowOut), summary="Rename a workflow")
def update_workflow(request: Request, workflow_id: WorkflowId, org: Org,
                    body: Annotated[UpdateWorkflowBody, Body()]) -> Any:
    """Change the name and/or description."""
    name = None if body.name is None else _printable_name(body.name)
    description = None if body.description is None else _printable_description(body.description)
    return workflow_json(server(request).store.update_workflow(
        workflow_id, org, name=name, description=description, now=time.time()))


def _printable_name(name: str) -> str:
    """``name`` without control characters or bidi overrides (names are printed in
    terminals and pages), as block labels are cleaned.

    Raises:
        ApiError: 422 when nothing printable is left.
    """
    cleaned = clean_text(name, limit=200).strip()
    if name and not cleaned:
        raise ApiError(422, "INVALID_REQUEST", "name has no printable characters; send a "
                       "name of letters, digits or punctuation.")
    return cleaned


def _printable_description(description: str) -> str:
    """``description`` without control characters or bidi overrides (newlines stay)."""
    return clean_text(description, multiline=True)


@router.delete("/{workflow_id}", status_code=204, response_class=Response,
               summary="Delete a workflow")
def delete_workflow(request: Request, workflow_id: WorkflowId, org: Org) -> Response:
    """Delete the workflow, its versions and its evals. Its runs stay readable."""
    server(request).store.delete_workflow(workflow_id, org)
    return Response(status_code=204)


@router.post("/{workflow_id}/publish", responses=ok(WorkflowOut), summary="Publish the draft")
def publish(request: Request, workflow_id: WorkflowId, org: Org,
            body: Annotated[PublishBody | None, Body()] = None) -> Any:
    """The draft becomes the version runs get by default (``version="production"``)."""
    state = server(request)
    _, draft = draft_of(state, org, workflow_id)
    check_definition(state, draft)
    return workflow_json(state.store.publish_workflow(
        workflow_id, org, description=(body or PublishBody()).description, now=time.time()))


@router.post("/{workflow_id}/discard-draft", responses=ok(WorkflowOut),
             summary="Discard the draft's changes")
def discard_draft(request: Request, workflow_id: WorkflowId, org: Org) -> Any:
    """The draft goes back to the published version (409 when nothing was published)."""
    state = server(request)
    registered, _ = draft_of(state, org, workflow_id)
    if registered.published_version_id is None:
        raise ConflictError(f"Workflow {workflow_id} was never published, so there is no "
                            "published state to go back to. Publish it first.")
    published = state.store.workflow_version(workflow_id, org, registered.published_version_id)
    return workflow_json(save_draft(state, org, registered, definition_of(published)))
