"""Editing a workflow one block or one edge at a time.

The HTTP API lets a client change a workflow's draft piece by piece (Retab's
``workflows.blocks`` and ``workflows.edges``). Every edit here is a pure function from a
:class:`~engine.definition.Workflow` to a new one: nothing is validated or stored. The
caller validates the result exactly like an applied spec and keeps it only when it has
no errors, so an edit that would break the graph is refused with every problem listed.

Rules:

* Block ids are unique within a workflow; creating a second block with an existing id is
  a conflict.
* Deleting a block deletes the edges that touch it, and the blocks inside it when it is a
  container (with their edges).
* Edges have stable ids: the id written in the definition, else one derived from the
  edge's endpoints (:func:`edge_id`), so an edge applied from YAML can be addressed.
* ``config`` updates merge by default: nested objects are combined and a ``None`` value
  deletes a key (:func:`merge_config`); ``replace`` takes the given config as it is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from engine.contracts.definition import BlockDef, EdgeDef
from engine.contracts.errors import ConflictError, NotFoundError
from engine.contracts.frozen import record
from engine.definition import Workflow

#: ``parent_id`` left as it is by :func:`change_block`.
KEEP: Any = object()


@record
class BlockChange:
    """What an update asks to change on a block (None: leave as is).

    Attributes:
        config_mode: ``merge`` (default) or ``replace``.
        parent_id: :data:`KEEP` to leave the parent, None for the top level.
    """

    label: str | None = None
    position_x: float | None = None
    position_y: float | None = None
    width: float | None = None
    height: float | None = None
    config: dict[str, Any] | None = None
    config_mode: str = "merge"
    parent_id: Any = KEEP


def canonical(value: Any) -> str:
    """The JSON text ids and hashes are computed over (sorted keys, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def edge_id(edge: EdgeDef) -> str:
    """The id of ``edge``: its written id, else ``edge_`` and 16 hex of its endpoints."""
    if edge.id:
        return edge.id
    key = canonical([edge.source_block, edge.source_handle, edge.target_block,
                     edge.target_handle])
    return "edge_" + hashlib.sha256(key.encode()).hexdigest()[:16]


def name_edges(workflow: Workflow, scope: str) -> Workflow:
    """``workflow`` with an id on every authored edge: the written one, else ``edge_`` and
    16 hex of ``scope`` (the workflow id) and the endpoints, so ids differ between
    workflows. Ids are not part of the digest."""
    named = []
    for edge in authored_edges(workflow):
        if not edge.id:
            key = canonical([scope, edge.source_block, edge.source_handle, edge.target_block,
                             edge.target_handle])
            edge = edge.model_copy(
                update={"id": "edge_" + hashlib.sha256(key.encode()).hexdigest()[:16]})
        named.append(edge)
    return _with(workflow, list(workflow.blocks), named)


def find_block(workflow: Workflow, block_id: str) -> BlockDef:
    """The block ``block_id`` of ``workflow``.

    Raises:
        NotFoundError: the workflow has no such block.
    """
    block = workflow.block(block_id)
    if block is None:
        raise NotFoundError("block", block_id,
                            "List the workflow's blocks with GET /v1/workflows/blocks"
                            "?workflow_id=... (client.workflows.blocks.list).")
    return block


def find_edge(workflow: Workflow, ident: str) -> EdgeDef:
    """The authored edge whose :func:`edge_id` is ``ident``.

    Raises:
        NotFoundError: the workflow has no such edge.
    """
    for edge in authored_edges(workflow):
        if edge_id(edge) == ident:
            return edge
    raise NotFoundError("edge", ident, "List the workflow's edges with GET /v1/workflows/edges"
                        "?workflow_id=... (client.workflows.edges.list).")


def authored_edges(workflow: Workflow) -> list[EdgeDef]:
    """The edges as written (generated container edges left out)."""
    return [e for e in workflow.edges if not e.generated]


def merge_config(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``patch`` merged in: nested objects combine, ``None`` deletes a key.

    Args:
        base: the current config.
        patch: the changes.

    Returns:
        A new dict; neither argument is modified.
    """
    merged = dict(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = value
    return merged


def _with(workflow: Workflow, blocks: list[BlockDef], edges: list[EdgeDef]) -> Workflow:
    return workflow.model_copy(update={"blocks": blocks, "edges": edges,
                                       "load_diagnostics": []})


def _position(x: float | None, y: float | None, current: dict[str, float] | None
              ) -> dict[str, float] | None:
    if x is None and y is None:
        return current
    base = dict(current or {"x": 0.0, "y": 0.0})
    if x is not None:
        base["x"] = float(x)
    if y is not None:
        base["y"] = float(y)
    return base


def new_block(*, block_id: str, block_type: str, label: str = "", config: Mapping[str, Any]
              | None = None, parent_id: str | None = None, position_x: float = 0.0,
              position_y: float = 0.0, width: float | None = None,
              height: float | None = None) -> BlockDef:
    """A block as an edit creates it (its path names it for diagnostics)."""
    return BlockDef(id=block_id, type=block_type, label=label, config=dict(config or {}),
                    parent_id=parent_id, position={"x": float(position_x),
                                                   "y": float(position_y)},
                    width=width, height=height, path=f"blocks.{block_id}")


def add_block(workflow: Workflow, block: BlockDef) -> Workflow:
    """``workflow`` with ``block`` appended.

    Raises:
        ConflictError: a block with this id exists.
    """
    if workflow.block(block.id) is not None:
        raise ConflictError(f"Block {block.id!r} already exists in this workflow. Pick another "
                            "id, or omit it to get a generated one.")
    return _with(workflow, [*workflow.blocks, block], authored_edges(workflow))


def change_block(workflow: Workflow, block_id: str, change: BlockChange) -> Workflow:
    """``workflow`` with one block changed as ``change`` says.

    Raises:
        NotFoundError: no such block.
    """
    block = find_block(workflow, block_id)
    update: dict[str, Any] = {}
    if change.label is not None:
        update["label"] = change.label
    position = _position(change.position_x, change.position_y, block.position)
    if position != block.position:
        update["position"] = position
    for key in ("width", "height"):
        if getattr(change, key) is not None:
            update[key] = float(getattr(change, key))
    if change.config is not None:
        update["config"] = (dict(change.config) if change.config_mode == "replace"
                            else merge_config(block.config, change.config))
    if change.parent_id is not KEEP:
        update["parent_id"] = change.parent_id
    changed = block.model_copy(update=update)
    blocks = [changed if b.id == block_id else b for b in workflow.blocks]
    return _with(workflow, blocks, authored_edges(workflow))


def _inside(workflow: Workflow, block_id: str) -> set[str]:
    """``block_id`` and every block nested in it."""
    found = {block_id}
    grew = True
    while grew:
        grew = False
        for block in workflow.blocks:
            if block.parent_id in found and block.id not in found:
                found.add(block.id)
                grew = True
    return found


def remove_block(workflow: Workflow, block_id: str) -> Workflow:
    """``workflow`` without the block, what is nested in it, and their edges.

    Raises:
        NotFoundError: no such block.
    """
    find_block(workflow, block_id)
    gone = _inside(workflow, block_id)
    blocks = [b for b in workflow.blocks if b.id not in gone]
    edges = [e for e in authored_edges(workflow)
             if e.source_block not in gone and e.target_block not in gone]
    return _with(workflow, blocks, edges)


def put_block(workflow: Workflow, block: BlockDef) -> Workflow:
    """``workflow`` with ``block`` replacing the block of the same id (or appended)."""
    if workflow.block(block.id) is None:
        return _with(workflow, [*workflow.blocks, block], authored_edges(workflow))
    blocks = [block if b.id == block.id else b for b in workflow.blocks]
    return _with(workflow, blocks, authored_edges(workflow))


def add_edge(workflow: Workflow, edge: EdgeDef) -> Workflow:
    """``workflow`` with ``edge`` appended.

    Raises:
        ConflictError: an edge with the same id exists.
    """
    ident = edge_id(edge)
    if any(edge_id(e) == ident for e in authored_edges(workflow)):
        raise ConflictError(f"Edge {ident!r} already exists in this workflow.")
    return _with(workflow, list(workflow.blocks), [*authored_edges(workflow), edge])


def remove_edge(workflow: Workflow, ident: str) -> Workflow:
    """``workflow`` without the edge ``ident``.

    Raises:
        NotFoundError: no such edge.
    """
    find_edge(workflow, ident)
    edges = [e for e in authored_edges(workflow) if edge_id(e) != ident]
    return _with(workflow, list(workflow.blocks), edges)


def put_edge(workflow: Workflow, edge: EdgeDef) -> Workflow:
    """``workflow`` with ``edge`` replacing the edge of the same id (or appended)."""
    ident = edge_id(edge)
    edges = [e for e in authored_edges(workflow) if edge_id(e) != ident]
    return _with(workflow, list(workflow.blocks), [*edges, edge])


def stamps_after(old: Workflow | None, new: Workflow, stamps: Mapping[str, float],
                 now: float, *, since: float | None = None) -> dict[str, float]:
    """When each block and edge of ``new`` last changed.

    Args:
        old: the previous draft (None for a new workflow).
        new: the draft being saved.
        stamps: ``{"block:<id>" | "edge:<id>": epoch seconds}`` of ``old``.
        now: the time of this change.
        since: the time of an unchanged part ``stamps`` has no entry for (the workflow's
            creation); ``now`` when None.

    Returns:
        The stamps of ``new``: unchanged parts keep theirs, new or changed ones get ``now``.
    """
    before = _parts(old) if old is not None else {}
    out: dict[str, float] = {}
    for key, body in _parts(new).items():
        kept = stamps.get(key, since)
        out[key] = kept if kept is not None and before.get(key) == body else now
    return out


def _parts(workflow: Workflow) -> dict[str, str]:
    parts = {f"block:{b.id}": canonical(b.model_dump(exclude={"path"}))
             for b in workflow.blocks}
    for edge in authored_edges(workflow):
        parts[f"edge:{edge_id(edge)}"] = canonical(edge.model_dump(exclude={"path"}))
    return parts
