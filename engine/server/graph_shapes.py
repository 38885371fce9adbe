"""Wire shapes of the graph-editing API: blocks, edges and their versions, workflow
versions, in the Retab SDK's models (``WorkflowBlock``, ``WorkflowEdgeDoc``,
``WorkflowGraphVersion``, ``WorkflowBlockVersion``, ``WorkflowEdgeVersion``).

Block types outside the SDK's enum are shown as their SDK equivalent (``start`` as
``start_document``, ``end`` and ``hil`` as ``note``, ...; see docs/http.md), the true type
kept in ``stepwell_block_type``.
"""

from __future__ import annotations

from typing import Any

from engine.contracts.definition import BlockDef, EdgeDef
from engine.definition import Workflow
from engine.graph_edit import authored_edges, edge_id
from engine.graph_versions import (
    BlockVersion,
    EdgeVersion,
    StoredVersion,
    config_hash,
    version_block_ids,
    version_edge_ids,
)
from engine.server.shapes import SDK_STEP_TYPES, iso
from store.api import sdk_block_type

#: Block types a block can be created with (the SDK's create enum), and what they are.
CREATE_TYPES = ("start_document", "start_json", "note", "parse", "edit", "extract", "split",
                "classifier", "conditional", "api_call", "function", "while_loop", "for_each",
                "merge_dicts")


def sdk_type(block_type: str) -> str:
    """The SDK-enum type of a stepwell block type (``function`` for unknown ones)."""
    mapped = sdk_block_type(block_type)
    return mapped if mapped in SDK_STEP_TYPES else "function"


def _position(block: BlockDef) -> tuple[float, float]:
    position = block.position or {}
    return float(position.get("x", 0.0)), float(position.get("y", 0.0))


def block_json(workflow_id: str, block: BlockDef, updated_at: float,
               resolved: dict[str, Any] | None = None) -> dict[str, Any]:
    """A draft block (``WorkflowBlock``)."""
    x, y = _position(block)
    return {
        "id": block.id, "workflow_id": workflow_id, "type": sdk_type(block.type),
        "stepwell_block_type": block.type, "label": block.label, "position_x": x,
        "position_y": y, "width": block.width, "height": block.height,
        "config": block.config, "parent_id": block.parent_id,
        "declarative_path": block.id, "declarative_source_block_id": block.id,
        "updated_at": iso(updated_at), "resolved_schemas": resolved,
    }


def edge_json(workflow_id: str, edge: EdgeDef, updated_at: float) -> dict[str, Any]:
    """A draft edge (``WorkflowEdgeDoc``)."""
    return {"id": edge_id(edge), "workflow_id": workflow_id, "source_block": edge.source_block,
            "target_block": edge.target_block, "source_handle": edge.source_handle or None,
            "target_handle": edge.target_handle or None, "updated_at": iso(updated_at)}


def config_block(block: BlockDef) -> dict[str, Any]:
    """A block inside a workflow version (``WorkflowConfigBlock``)."""
    x, y = _position(block)
    return {"id": block.id, "type": sdk_type(block.type), "stepwell_block_type": block.type,
            "position": {"x": x, "y": y}, "label": block.label, "config": block.config,
            "width": block.width, "height": block.height, "parent_id": block.parent_id}


def config_edge(edge: EdgeDef) -> dict[str, Any]:
    """An edge inside a workflow version (``WorkflowConfigEdge``)."""
    return {"id": edge_id(edge), "source": edge.source_block, "target": edge.target_block,
            "source_handle": edge.source_handle or None,
            "target_handle": edge.target_handle or None, "animated": True}


def version_json(workflow_id: str, version: StoredVersion) -> dict[str, Any]:
    """A workflow version (``WorkflowGraphVersion``)."""
    wf: Workflow = version.workflow
    return {"id": version.id, "workflow_id": workflow_id,
            "blocks": [config_block(b) for b in wf.blocks],
            "edges": [config_edge(e) for e in authored_edges(wf)],
            "block_version_ids": version_block_ids(workflow_id, wf),
            "edge_version_ids": version_edge_ids(workflow_id, wf),
            "created_at": iso(version.created_at)}


def block_version_json(version: BlockVersion) -> dict[str, Any]:
    """A block version (``WorkflowBlockVersion``)."""
    block = version.block
    x, y = _position(block)
    return {"id": version.id, "block_id": block.id, "workflow_id": version.workflow_id,
            "workflow_version_id": version.workflow_version_id, "type": sdk_type(block.type),
            "stepwell_block_type": block.type, "label": block.label, "position_x": x,
            "position_y": y, "width": block.width, "height": block.height,
            "parent_id": block.parent_id, "config": block.config, "resolved_schemas": None,
            "config_hash": config_hash(block.config), "created_at": iso(version.created_at)}


def edge_version_json(version: EdgeVersion) -> dict[str, Any]:
    """An edge version (``WorkflowEdgeVersion``)."""
    edge = version.edge
    return {"id": version.id, "edge_id": version.edge_id, "workflow_id": version.workflow_id,
            "workflow_version_id": version.workflow_version_id, "source": edge.source_block,
            "source_handle": edge.source_handle or None, "target": edge.target_block,
            "target_handle": edge.target_handle or None, "animated": True,
            "created_at": iso(version.created_at)}


def block_fields(block: BlockDef) -> dict[str, Any]:
    """The fields a block version diff compares."""
    x, y = _position(block)
    return {"type": block.type, "label": block.label, "config": block.config,
            "parent_id": block.parent_id, "position_x": x, "position_y": y,
            "width": block.width, "height": block.height}


def edge_fields(edge: EdgeDef) -> dict[str, Any]:
    """The fields an edge version diff compares."""
    return {"source": edge.source_block, "source_handle": edge.source_handle or None,
            "target": edge.target_block, "target_handle": edge.target_handle or None}
