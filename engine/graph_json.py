"""Retab graph JSON (``blocks[]`` with ``parent_id``, ``edges[]``), read leniently.

Blocks are flat already; ``position_x`` / ``position_y`` become ``position``. Problems
inside the structure are diagnostics (see engine.loading), never exceptions.

Both edge shapes Retab returns are read: the graph version's ``{source, target,
source_handle, target_handle}`` and the REST edge object's ``{source_block,
target_block, ...}``. The bookkeeping keys Retab's REST API adds to blocks and edges
(``workflow_id``, ``organization_id``, ``draft_version``, ``updated_at``...) are
accepted and ignored, each with an ``IGNORED_BLOCK_FIELD`` / ``IGNORED_EDGE_FIELD``
warning; other unknown keys warn ``UNKNOWN_BLOCK_FIELD`` / ``UNKNOWN_EDGE_FIELD``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.contracts.definition import BlockDef, EdgeDef
from engine.definition import Workflow
from engine.load_fields import Reporter, block_config, checked_endpoint, layout

GRAPH_BLOCK_KEYS = frozenset({"id", "type", "label", "config", "parent_id", "position",
                              "position_x", "position_y", "width", "height",
                              "resolved_schemas"})
#: Keys Retab's server adds to the objects it returns: accepted, ignored, warned about.
SERVER_BLOCK_KEYS = frozenset({"workflow_id", "organization_id", "draft_version",
                               "updated_at", "created_at", "declarative_path",
                               "declarative_source_block_id", "config_hash"})
GRAPH_EDGE_KEYS = frozenset({"id", "source", "target", "source_block", "target_block",
                             "source_handle", "target_handle", "animated"})
SERVER_EDGE_KEYS = frozenset({"workflow_id", "organization_id", "updated_at", "created_at"})


def read_graph(data: Mapping[str, Any], source: str) -> Workflow:
    """Build a Workflow from Retab graph JSON (``blocks[]`` with ``parent_id``, ``edges[]``).

    Args:
        data: the parsed graph; optional top-level ``name`` and ``description``.
        source: file name or label used in messages.

    Returns:
        The workflow (``api_version`` None); problems are in ``load_diagnostics``.
    """
    report = Reporter()
    blocks: list[BlockDef] = []
    raw_blocks = data.get("blocks")
    if not isinstance(raw_blocks, list):
        report("INVALID_BLOCKS", "blocks", "Graph JSON needs a `blocks` list.",
               "Write `\"blocks\": [{\"id\": ..., \"type\": ...}, ...]`.")
        raw_blocks = []
    for index, entry in enumerate(raw_blocks):
        block = _graph_block(entry, f"blocks[{index}]", report)
        if block is not None:
            blocks.append(block)
    edges: list[EdgeDef] = []
    raw_edges = data.get("edges") or []
    if not isinstance(raw_edges, list):
        report("INVALID_EDGES", "edges", "Graph JSON `edges` must be a list.",
               "Write `\"edges\": [{\"source\": ..., \"target\": ...}, ...]`.")
        raw_edges = []
    for index, entry in enumerate(raw_edges):
        edge = _graph_edge(entry, f"edges[{index}]", report)
        if edge is not None:
            edges.append(edge)
    name = data.get("name")
    description = data.get("description")
    return Workflow(
        name=name if isinstance(name, str) and name else "workflow",
        description=description if isinstance(description, str) else "",
        api_version=None, kind=None, blocks=blocks, edges=edges, source=source,
        load_diagnostics=report.diagnostics,
    )


def _graph_block(entry: Any, path: str, report: Reporter) -> BlockDef | None:
    if not isinstance(entry, Mapping):
        report("INVALID_BLOCK_DEFINITION", path, "A graph block must be an object.",
               "Write `{\"id\": ..., \"type\": ..., \"config\": {...}}`.")
        return None
    block_id = entry.get("id")
    if not isinstance(block_id, str) or not block_id:
        report("MISSING_BLOCK_ID", f"{path}.id", "The block has no id.",
               "Give every block a unique string id.")
        return None
    for key in entry:
        if key in SERVER_BLOCK_KEYS:
            report("IGNORED_BLOCK_FIELD", f"{path}.{key}",
                   f"Block {block_id!r}: {key!r} is a field Retab's server adds; stepwell "
                   "ignores it.", "Nothing to do; drop it to silence this warning.",
                   severity="warning")
        elif key not in GRAPH_BLOCK_KEYS:
            report("UNKNOWN_BLOCK_FIELD", f"{path}.{key}",
                   f"Unknown key {key!r} in block {block_id!r} is ignored.",
                   "Block settings go under `config`.", severity="warning")
    block_type = entry.get("type")
    if not isinstance(block_type, str) or not block_type:
        report("MISSING_BLOCK_TYPE", f"{path}.type", f"Block {block_id!r} has no type.",
               "Add `\"type\"` (start_document, extract, function, ...).")
        block_type = ""
    shape = dict(entry)
    if "position" not in shape and ("position_x" in shape or "position_y" in shape):
        shape["position"] = {"x": shape.get("position_x", 0), "y": shape.get("position_y", 0)}
    parent = entry.get("parent_id")
    label = entry.get("label")
    return BlockDef(
        id=block_id, type=block_type, label=str(label) if label is not None else "",
        config=block_config(entry.get("config"), f"{path}.config", report),
        parent_id=str(parent) if parent else None, path=path, **layout(shape, path, report),
    )


def _graph_edge(entry: Any, path: str, report: Reporter) -> EdgeDef | None:
    if not isinstance(entry, Mapping):
        report("INVALID_EDGE_ENDPOINT", path, "A graph edge must be an object.",
               "Write `{\"source\": <block id>, \"target\": <block id>, \"source_handle\": "
               "..., \"target_handle\": ...}`.")
        return None
    for key in entry:
        if key in SERVER_EDGE_KEYS:
            report("IGNORED_EDGE_FIELD", f"{path}.{key}",
                   f"{key!r} is a field Retab's server adds to edges; stepwell ignores it.",
                   "Nothing to do; drop it to silence this warning.", severity="warning")
        elif key not in GRAPH_EDGE_KEYS:
            report("UNKNOWN_EDGE_FIELD", f"{path}.{key}", f"Unknown edge key {key!r} is "
                   "ignored.", "An edge has source, target, source_handle, target_handle "
                   "(or source_block/target_block) and optionally id.", severity="warning")
    ends: list[tuple[str, str]] = []
    for role in ("source", "target"):
        block = _edge_block(entry, role, path, report)
        if block is _CLASH:
            return None
        end = checked_endpoint(block, entry.get(f"{role}_handle"), role,
                                f"{path}.{role}", report)
        if end is None:
            return None
        ends.append(end)
    edge_id = entry.get("id")
    return EdgeDef(source_block=ends[0][0], source_handle=ends[0][1], target_block=ends[1][0],
                   target_handle=ends[1][1], id=None if edge_id is None else str(edge_id),
                   path=path)


_CLASH: Any = object()


def _edge_block(entry: Mapping[str, Any], role: str, path: str, report: Reporter) -> Any:
    """The block id of one end: ``source``/``target`` or ``source_block``/``target_block``
    (``_CLASH``, reported, when both are given and differ)."""
    plain, rest = entry.get(role), entry.get(f"{role}_block")
    if plain is not None and rest is not None and plain != rest:
        report("INVALID_EDGE_ENDPOINT", f"{path}.{role}",
               f"The {role} endpoint is given twice: {role} {plain!r} and {role}_block "
               f"{rest!r}.", f"Keep one of `{role}` and `{role}_block`.")
        return _CLASH
    return plain if plain is not None else rest
