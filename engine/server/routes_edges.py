"""Edges of a workflow's draft, one at a time (``client.workflows.edges``).

An edge is validated with the whole draft when it is created: both blocks must exist,
handles must exist and fit (a JSON output into a file input is refused), container rules
hold. Edge ids are the ones given at creation, else generated; an edge applied from YAML
without an id gets one derived from its workflow and endpoints.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from engine.contracts.definition import EdgeDef
from engine.contracts.errors import InputError
from engine.graph_edit import add_edge, authored_edges, find_edge, put_edge, remove_edge
from engine.graph_edit import edge_id as ident_of
from engine.graph_versions import edge_versions, field_changes
from engine.server.auth import Org
from engine.server.drafts import (
    draft_of,
    edge_owner,
    find_edge_version,
    save_draft,
    server,
    stored_versions,
)
from engine.server.graph_shapes import edge_fields, edge_json, edge_version_json
from engine.server.lists import page, required
from engine.server.params import reject_unknown_query
from engine.server.schemas import ERRORS, PageOut, ok
from engine.server.schemas_graph import (
    EdgeCreateBody,
    EdgeOut,
    EdgeVersionDiffOut,
    EdgeVersionOut,
)

router = APIRouter(prefix="/v1/workflows/edges", dependencies=[Depends(reject_unknown_query)],
                   responses=ERRORS)
Limit = Annotated[int, Query(ge=1, le=1000, description="Page size (1..1000).")]
_DIFF_FIELDS = ("source", "source_handle", "target", "target_handle")


def _stamp(registered: Any, ident: str) -> float:
    return float(registered.stamps.get(f"edge:{ident}", registered.created_at))


@router.get("", responses=ok(PageOut[EdgeOut]), summary="List a workflow's draft edges")
def list_edges(request: Request, org: Org, workflow_id: str | None = None,
               source_block: str | None = None, target_block: str | None = None,
               before: str | None = None, after: str | None = None, limit: Limit = 100) -> Any:
    """The draft's edges, most recently changed first, optionally from or to one block."""
    wid = required("workflow_id", workflow_id, "the workflow whose edges to list")
    registered, draft = draft_of(server(request), org, wid)
    edges = [e for e in authored_edges(draft)
             if source_block in (None, e.source_block) and target_block in (None, e.target_block)]
    edges.sort(key=lambda e: (_stamp(registered, ident_of(e)), ident_of(e)), reverse=True)
    return page(edges, [ident_of(e) for e in edges], limit=limit, after=after, before=before,
                shape=lambda e: edge_json(wid, e, _stamp(registered, ident_of(e))))


@router.post("", responses=ok(EdgeOut), summary="Connect two blocks of a workflow's draft")
def create_edge(request: Request, body: EdgeCreateBody, org: Org) -> Any:
    """Add an edge; 422 ``INVALID_WORKFLOW`` says why when it does not fit."""
    state = server(request)
    registered, draft = draft_of(state, org, body.workflow_id)
    edge = EdgeDef(source_block=body.source_block, source_handle=body.source_handle or "",
                   target_block=body.target_block, target_handle=body.target_handle or "",
                   id=body.id or f"edge_{os.urandom(8).hex()}", path="edges.new")
    saved = save_draft(state, org, registered, add_edge(draft, edge))
    return edge_json(saved.id, edge, _stamp(saved, ident_of(edge)))


@router.get("/versions", responses=ok(PageOut[EdgeVersionOut]), summary="List edge versions")
def list_edge_versions(request: Request, org: Org, workflow_id: str | None = None,
                       edge_id: str | None = None, workflow_version_id: str | None = None,
                       before: str | None = None, after: str | None = None,
                       limit: Limit = 50) -> Any:
    """Edge versions of a workflow, newest first; filtered by edge or workflow version."""
    state = server(request)
    wid = required("workflow_id", workflow_id, "the workflow whose edge versions to list")
    state.store.get_workflow(wid, org)
    versions = stored_versions(state, org, wid)
    found = list(reversed(edge_versions(wid, versions)))
    if edge_id is not None:
        found = [v for v in found if v.edge_id == edge_id]
    if workflow_version_id is not None:
        wanted = state.store.workflow_version(wid, org, workflow_version_id).id
        members = {v.id for v in edge_versions(wid, [x for x in versions if x.id == wanted])}
        found = [v for v in found if v.id in members]
    return page(found, [v.id for v in found], limit=limit, after=after, before=before,
                shape=edge_version_json)


@router.get("/versions/diff", responses=ok(EdgeVersionDiffOut),
            summary="Compare two versions of an edge")
def diff_edge_versions(request: Request, org: Org, from_edge_version_id: str | None = None,
                       to_edge_version_id: str | None = None) -> Any:
    """The fields that differ between two versions of the same edge."""
    state = server(request)
    old = find_edge_version(state, org, required(
        "from_edge_version_id", from_edge_version_id, "the version to compare from"))
    new = find_edge_version(state, org, required(
        "to_edge_version_id", to_edge_version_id, "the version to compare to"))
    if (old.workflow_id, old.edge_id) != (new.workflow_id, new.edge_id):
        raise InputError("Both versions must be versions of the same edge of the same "
                         f"workflow (got {old.edge_id!r} and {new.edge_id!r}).")
    return {"from_edge_version_id": old.id, "to_edge_version_id": new.id,
            "edge_id": old.edge_id,
            "changes": field_changes(edge_fields(old.edge), edge_fields(new.edge),
                                     _DIFF_FIELDS)}


@router.get("/versions/{edge_version_id}", responses=ok(EdgeVersionOut),
            summary="Get an edge version")
def get_edge_version(request: Request, edge_version_id: str, org: Org) -> Any:
    """One edge version."""
    return edge_version_json(find_edge_version(server(request), org, edge_version_id))


@router.post("/versions/{edge_version_id}/restore", responses=ok(EdgeOut),
             summary="Put an edge version back into the draft")
def restore_edge_version(request: Request, edge_version_id: str, org: Org) -> Any:
    """The draft's edge takes that version's endpoints (added back if it was deleted)."""
    state = server(request)
    found = find_edge_version(state, org, edge_version_id)
    registered, draft = draft_of(state, org, found.workflow_id)
    edge = found.edge.model_copy(update={"id": found.edge_id})
    saved = save_draft(state, org, registered, put_edge(draft, edge))
    return edge_json(saved.id, edge, _stamp(saved, found.edge_id))


@router.get("/{edge_id}", responses=ok(EdgeOut), summary="Get a draft edge")
def get_edge(request: Request, edge_id: str, org: Org, workflow_id: str | None = None) -> Any:
    """One edge of a draft."""
    registered, draft = edge_owner(server(request), org, edge_id, workflow_id)
    return edge_json(registered.id, find_edge(draft, edge_id), _stamp(registered, edge_id))


@router.delete("/{edge_id}", status_code=204, response_class=Response,
               summary="Delete a draft edge")
def delete_edge(request: Request, edge_id: str, org: Org,
                workflow_id: str | None = None) -> Response:
    """Delete the edge (the draft must stay valid)."""
    state = server(request)
    registered, draft = edge_owner(state, org, edge_id, workflow_id)
    save_draft(state, org, registered, remove_edge(draft, edge_id))
    return Response(status_code=204)
