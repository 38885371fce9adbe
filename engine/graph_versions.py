"""Versions of a workflow, of its blocks and of its edges, derived from content.

A workflow version is a stored definition; its id is the definition's digest
(:meth:`engine.definition.Workflow.digest`), the ``workflow_version_id`` runs report.
Only what executes is in the digest (block ids, types, configs, parents, and the
edges), so renaming or moving a block changes the draft but not its version id.

Block and edge versions are not stored: they are read off the workflow versions. A block
version is one executable state of one block (id, type, config, parent); its id is a
hash of the workflow id and that state, so the same block in several workflow versions
is one block version, attributed to the oldest workflow version that has it
(:func:`block_versions`). Edge versions work the same way (:func:`edge_versions`).
:func:`graph_diff` and :func:`field_changes` compare two versions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import field
from typing import Any

from engine.contracts.definition import BlockDef, EdgeDef
from engine.contracts.frozen import record
from engine.definition import Workflow
from engine.graph_edit import authored_edges, canonical, edge_id

#: Prefixes of the derived ids.
BLOCK_VERSION_PREFIX = "bkv_"
EDGE_VERSION_PREFIX = "egv_"


@record
class StoredVersion:
    """A workflow version as the derivations read it."""

    id: str
    workflow: Workflow
    created_at: float


@record
class BlockVersion:
    """One executable state of one block, first seen in ``workflow_version_id``."""

    id: str
    workflow_id: str
    workflow_version_id: str
    block: BlockDef
    config_hash: str
    created_at: float


@record
class EdgeVersion:
    """One state of one edge, first seen in ``workflow_version_id``."""

    id: str
    edge_id: str
    workflow_id: str
    workflow_version_id: str
    edge: EdgeDef
    created_at: float


@record
class GraphDiff:
    """Block and edge ids added, removed and changed from one version to another."""

    added_block_ids: list[str] = field(default_factory=list)
    removed_block_ids: list[str] = field(default_factory=list)
    changed_block_ids: list[str] = field(default_factory=list)
    added_edge_ids: list[str] = field(default_factory=list)
    removed_edge_ids: list[str] = field(default_factory=list)
    changed_edge_ids: list[str] = field(default_factory=list)


def config_hash(config: Mapping[str, Any]) -> str:
    """sha256 of a block config's canonical JSON."""
    return hashlib.sha256(canonical(config).encode()).hexdigest()


def block_state(block: BlockDef) -> dict[str, Any]:
    """What makes a block version: id, type, config, parent."""
    return {"id": block.id, "type": block.type, "config": block.config,
            "parent_id": block.parent_id}


def edge_state(edge: EdgeDef) -> dict[str, Any]:
    """What makes an edge version: its endpoints and handles."""
    return {"source": edge.source_block, "source_handle": edge.source_handle or None,
            "target": edge.target_block, "target_handle": edge.target_handle or None}


def block_version_id(workflow_id: str, block: BlockDef) -> str:
    """``bkv_`` and 24 hex of the workflow id and the block's executable state."""
    raw = f"{workflow_id}\0{canonical(block_state(block))}"
    return BLOCK_VERSION_PREFIX + hashlib.sha256(raw.encode()).hexdigest()[:24]


def edge_version_id(workflow_id: str, edge: EdgeDef) -> str:
    """``egv_`` and 24 hex of the workflow id, the edge id and its endpoints."""
    raw = f"{workflow_id}\0{edge_id(edge)}\0{canonical(edge_state(edge))}"
    return EDGE_VERSION_PREFIX + hashlib.sha256(raw.encode()).hexdigest()[:24]


def block_versions(workflow_id: str, versions: Iterable[StoredVersion]) -> list[BlockVersion]:
    """Every block version of a workflow, oldest first.

    Args:
        workflow_id: the workflow.
        versions: its versions in any order.

    Returns:
        One entry per distinct block state, attributed to the oldest version having it.
    """
    seen: dict[str, BlockVersion] = {}
    for version in sorted(versions, key=lambda v: (v.created_at, v.id)):
        for block in version.workflow.blocks:
            ident = block_version_id(workflow_id, block)
            if ident not in seen:
                seen[ident] = BlockVersion(
                    id=ident, workflow_id=workflow_id, workflow_version_id=version.id,
                    block=block, config_hash=config_hash(block.config),
                    created_at=version.created_at)
    return list(seen.values())


def edge_versions(workflow_id: str, versions: Iterable[StoredVersion]) -> list[EdgeVersion]:
    """Every edge version of a workflow, oldest first (see :func:`block_versions`)."""
    seen: dict[str, EdgeVersion] = {}
    for version in sorted(versions, key=lambda v: (v.created_at, v.id)):
        for edge in authored_edges(version.workflow):
            ident = edge_version_id(workflow_id, edge)
            if ident not in seen:
                seen[ident] = EdgeVersion(
                    id=ident, edge_id=edge_id(edge), workflow_id=workflow_id,
                    workflow_version_id=version.id, edge=edge, created_at=version.created_at)
    return list(seen.values())


def version_block_ids(workflow_id: str, workflow: Workflow) -> list[str]:
    """The block version ids of one workflow version, in block order."""
    return [block_version_id(workflow_id, b) for b in workflow.blocks]


def version_edge_ids(workflow_id: str, workflow: Workflow) -> list[str]:
    """The edge version ids of one workflow version, in edge order."""
    return [edge_version_id(workflow_id, e) for e in authored_edges(workflow)]


def _changes(old: Mapping[str, str], new: Mapping[str, str]
             ) -> tuple[list[str], list[str], list[str]]:
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = sorted(k for k in set(old) & set(new) if old[k] != new[k])
    return added, removed, changed


def graph_diff(old: Workflow, new: Workflow) -> GraphDiff:
    """Which blocks and edges ``new`` adds, removes and changes relative to ``old``.

    A block is changed when its executable state differs; an edge, when its endpoints do.
    """
    blocks = _changes({b.id: canonical(block_state(b)) for b in old.blocks},
                      {b.id: canonical(block_state(b)) for b in new.blocks})
    edges = _changes({edge_id(e): canonical(edge_state(e)) for e in authored_edges(old)},
                     {edge_id(e): canonical(edge_state(e)) for e in authored_edges(new)})
    return GraphDiff(added_block_ids=blocks[0], removed_block_ids=blocks[1],
                     changed_block_ids=blocks[2], added_edge_ids=edges[0],
                     removed_edge_ids=edges[1], changed_edge_ids=edges[2])


def field_changes(old: Mapping[str, Any], new: Mapping[str, Any],
                  fields: Sequence[str]) -> list[dict[str, Any]]:
    """``[{field, from_value, to_value}]`` for each of ``fields`` that differs."""
    return [{"field": name, "from_value": old.get(name), "to_value": new.get(name)}
            for name in fields if canonical(old.get(name)) != canonical(new.get(name))]
