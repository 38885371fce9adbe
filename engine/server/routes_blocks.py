"""Blocks of a workflow's draft, one at a time (``client.workflows.blocks``).

Every change is made to the draft (:mod:`engine.server.drafts`): it is validated like an
applied spec and refused, with every problem listed and nothing changed, when the graph
would break. Block versions are read off the workflow's stored versions
(:mod:`engine.graph_versions`); restoring one puts that block state into the draft.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from engine.contracts.errors import InputError
from engine.graph_edit import (
    BlockChange,
    add_block,
    change_block,
    find_block,
    merge_config,
    new_block,
    put_block,
    remove_block,
)
from engine.graph_versions import block_versions, config_hash, field_changes
from engine.server.auth import Org
from engine.server.drafts import (
    block_owner,
    check_definition,
    definition_of,
    draft_of,
    find_block_version,
    save_draft,
    server,
    stored_versions,
)
from engine.server.graph_shapes import (
    CREATE_TYPES,
    block_fields,
    block_json,
    block_version_json,
)
from engine.server.lists import page, required
from engine.server.params import reject_unknown_query
from engine.server.schemas import ERRORS, PageOut, ok
from engine.server.schemas_graph import (
    BlockCreateBody,
    BlockOut,
    BlockUpdateBody,
    BlockVersionDiffOut,
    BlockVersionOut,
    ValidateConfigBody,
    ValidateConfigOut,
)

router = APIRouter(prefix="/v1/workflows/blocks", dependencies=[Depends(reject_unknown_query)],
                   responses=ERRORS)
Limit = Annotated[int, Query(ge=1, le=1000, description="Page size (1..1000).")]
_DIFF_FIELDS = ("type", "label", "config", "parent_id", "position_x", "position_y", "width",
                "height")


def _stamp(registered: Any, block_id: str) -> float:
    return float(registered.stamps.get(f"block:{block_id}", registered.created_at))


def _resolved(state: Any, draft: Any, block_id: str) -> dict[str, Any] | None:
    """Input and output schemas of a block in its compiled draft."""
    graph = state.engine.compile(draft)
    node = graph.nodes.get(block_id)
    if node is None:
        return None
    outputs = {h: node.impl.output_schema(node.config, h) for h in node.outputs}
    return {"input_schemas": graph.input_schemas.get(block_id, {}), "output_schemas": outputs}


def _check_type(state: Any, block_type: str) -> None:
    known = set(CREATE_TYPES) | set(state.engine.registry.names())
    if block_type not in known:
        raise InputError(f"type: unknown block type {block_type!r}. Use one of: "
                         f"{', '.join(sorted(known))}.")


@router.get("", responses=ok(PageOut[BlockOut]), summary="List a workflow's draft blocks")
def list_blocks(request: Request, org: Org, workflow_id: str | None = None,
                before: str | None = None, after: str | None = None, limit: Limit = 100) -> Any:
    """The draft's blocks, most recently changed first (``id`` breaks ties)."""
    wid = required("workflow_id", workflow_id, "the workflow whose blocks to list")
    registered, draft = draft_of(server(request), org, wid)
    blocks = sorted(draft.blocks, key=lambda b: (_stamp(registered, b.id), b.id), reverse=True)
    return page(blocks, [b.id for b in blocks], limit=limit, after=after, before=before,
                shape=lambda b: block_json(wid, b, _stamp(registered, b.id)))


@router.post("", responses=ok(BlockOut), summary="Add a block to a workflow's draft")
def create_block(request: Request, body: BlockCreateBody, org: Org) -> Any:
    """Add a block; the draft must stay valid (422 ``INVALID_WORKFLOW`` otherwise)."""
    state = server(request)
    _check_type(state, body.type)
    registered, draft = draft_of(state, org, body.workflow_id)
    block = new_block(block_id=body.id or f"{body.type}_{os.urandom(4).hex()}",
                      block_type=body.type, label=body.label, config=body.config,
                      parent_id=body.parent_id, position_x=body.position_x,
                      position_y=body.position_y, width=body.width, height=body.height)
    saved = save_draft(state, org, registered, add_block(draft, block))
    return block_json(saved.id, block, _stamp(saved, block.id))


@router.get("/versions", responses=ok(PageOut[BlockVersionOut]),
            summary="List block versions")
def list_block_versions(request: Request, org: Org, workflow_id: str | None = None,
                        block_id: str | None = None, workflow_version_id: str | None = None,
                        before: str | None = None, after: str | None = None,
                        limit: Limit = 50) -> Any:
    """Block versions of a workflow, newest first; filtered by block or by the workflow
    version that has them."""
    state = server(request)
    wid = required("workflow_id", workflow_id, "the workflow whose block versions to list")
    state.store.get_workflow(wid, org)
    versions = stored_versions(state, org, wid)
    found = list(reversed(block_versions(wid, versions)))
    if block_id is not None:
        found = [v for v in found if v.block.id == block_id]
    if workflow_version_id is not None:
        wanted = state.store.workflow_version(wid, org, workflow_version_id).id
        members = {v.id for v in block_versions(wid, [x for x in versions if x.id == wanted])}
        found = [v for v in found if v.id in members]
    return page(found, [v.id for v in found], limit=limit, after=after, before=before,
                shape=block_version_json)


@router.get("/versions/diff", responses=ok(BlockVersionDiffOut),
            summary="Compare two versions of a block")
def diff_block_versions(request: Request, org: Org, from_block_version_id: str | None = None,
                        to_block_version_id: str | None = None) -> Any:
    """The fields that differ between two versions of the same block."""
    state = server(request)
    old = find_block_version(state, org, required(
        "from_block_version_id", from_block_version_id, "the version to compare from"))
    new = find_block_version(state, org, required(
        "to_block_version_id", to_block_version_id, "the version to compare to"))
    if (old.workflow_id, old.block.id) != (new.workflow_id, new.block.id):
        raise InputError("Both versions must be versions of the same block of the same "
                         f"workflow (got {old.block.id!r} and {new.block.id!r}).")
    return {"from_block_version_id": old.id, "to_block_version_id": new.id,
            "block_id": old.block.id,
            "changes": field_changes(block_fields(old.block), block_fields(new.block),
                                     _DIFF_FIELDS)}


@router.get("/versions/{block_version_id}", responses=ok(BlockVersionOut),
            summary="Get a block version")
def get_block_version(request: Request, block_version_id: str, org: Org) -> Any:
    """One block version."""
    return block_version_json(find_block_version(server(request), org, block_version_id))


@router.post("/versions/{block_version_id}/restore", responses=ok(BlockOut),
             summary="Put a block version back into the draft")
def restore_block_version(request: Request, block_version_id: str, org: Org) -> Any:
    """The draft's block takes that version's state (added back if it was deleted)."""
    state = server(request)
    found = find_block_version(state, org, block_version_id)
    registered, draft = draft_of(state, org, found.workflow_id)
    saved = save_draft(state, org, registered, put_block(draft, found.block))
    return block_json(saved.id, found.block, _stamp(saved, found.block.id))


@router.get("/{block_id}", responses=ok(BlockOut), summary="Get a draft block")
def get_block(request: Request, block_id: str, org: Org, workflow_id: str | None = None) -> Any:
    """One block of a draft, with the schemas its handles carry."""
    state = server(request)
    registered, draft = block_owner(state, org, block_id, workflow_id)
    return block_json(registered.id, find_block(draft, block_id), _stamp(registered, block_id),
                      _resolved(state, draft, block_id))


@router.patch("/{block_id}", responses=ok(BlockOut), summary="Change a draft block")
def update_block(request: Request, block_id: str, body: BlockUpdateBody, org: Org,
                 workflow_id: str | None = None) -> Any:
    """Change the given fields; ``config`` merges unless ``config_mode`` is ``replace``."""
    state = server(request)
    registered, draft = block_owner(state, org, block_id, workflow_id)
    fields = body.model_dump(exclude_unset=True, exclude_none=True)
    change = BlockChange(label=body.label, position_x=body.position_x,
                         position_y=body.position_y, width=body.width, height=body.height,
                         config=body.config, config_mode=body.config_mode or "merge",
                         **({"parent_id": body.parent_id} if "parent_id" in fields else {}))
    saved = save_draft(state, org, registered, change_block(draft, block_id, change))
    return block_json(saved.id, find_block(definition_of(saved), block_id),
                      _stamp(saved, block_id))


@router.delete("/{block_id}", status_code=204, response_class=Response,
               summary="Delete a draft block")
def delete_block(request: Request, block_id: str, org: Org,
                 workflow_id: str | None = None) -> Response:
    """Delete the block, its edges, and what it contains."""
    state = server(request)
    registered, draft = block_owner(state, org, block_id, workflow_id)
    save_draft(state, org, registered, remove_block(draft, block_id))
    return Response(status_code=204)


@router.post("/{block_id}/validate-config", responses=ok(ValidateConfigOut),
             summary="Check a block config without saving it")
def validate_block_config(request: Request, block_id: str, org: Org,
                          body: Annotated[ValidateConfigBody, Body()],
                          workflow_id: str | None = None) -> Any:
    """Validate the draft as it would be with this config (422 listing every problem)."""
    state = server(request)
    registered, draft = block_owner(state, org, block_id, workflow_id)
    block = find_block(draft, block_id)
    config = (body.config if body.config_mode == "replace"
              else merge_config(block.config, body.config))
    check_definition(state, change_block(draft, block_id, BlockChange(
        config=config, config_mode="replace")), draft=True)
    return {"ok": True, "workflow_id": registered.id, "block_id": block_id,
            "block_type": block.type, "config_hash": config_hash(config)}
