"""Render a workflow, or a compiled graph, as a Mermaid flowchart.

Containers are drawn as subgraphs holding their two sentinels (a start and an end
circle); edges are drawn after the sentinel rewrite, so an edge into a container's
feedback handle ends at its end circle. A compiled graph shows resolved handles and its
generated boundary edges (dotted); a plain workflow shows its edges as written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine.compiled import CompiledGraph
from engine.containers import CONTAINERS, sentinel_ends
from engine.contracts.blocks import SentinelRole, sentinel_id
from engine.contracts.definition import EdgeDef

if TYPE_CHECKING:
    from blocks.registry import BlockRegistry
    from engine.definition import Workflow


#: Fill and stroke of a block by the status of its steps (``to_mermaid(statuses=...)``).
STATUS_CLASSES = {
    "completed": "fill:#dcfce7,stroke:#15803d",
    "skipped": "fill:#fef9c3,stroke:#a16207",
    "error": "fill:#fee2e2,stroke:#b91c1c,stroke-width:2px",
    "running": "fill:#dbeafe,stroke:#1d4ed8,stroke-width:2px",
    "queued": "fill:#cffafe,stroke:#0e7490",
    "pending": "fill:#f3f4f6,stroke:#6b7280",
    "awaiting_review": "fill:#fae8ff,stroke:#a21caf,stroke-width:2px",
    "cancelled": "fill:#fee2e2,stroke:#7f1d1d",
}


def to_mermaid(target: Workflow | CompiledGraph, registry: BlockRegistry | None = None, *,
               statuses: Mapping[str, str] | None = None,
               notes: Mapping[str, str] | None = None) -> str:
    """Render a workflow (or a compiled graph, generated edges included) as Mermaid.

    ``flowchart LR``; containers are subgraphs holding a start and an end circle (their
    sentinels); edge labels name the handles; generated edges are dotted; notes (blocks
    that never run) are left out.

    Args:
        target: a loaded Workflow (edges as written, even when it does not validate) or
            a CompiledGraph (handles resolved to their full ids, generated edges drawn).
        registry: the block types that tell containers and notes apart in a Workflow
            (default: the built-in ones); a block of unknown type is drawn as a box.
        statuses: block id -> a step status: the block is coloured by it
            (:data:`STATUS_CLASSES`; a run's statuses, say).
        notes: block id -> a short line added to the block's label (``3/5 completed``).

    Returns:
        The Mermaid source text.
    """
    kinds: dict[str, str | None]
    if isinstance(target, CompiledGraph):
        workflow = target.workflow
        kinds = {n.id: n.container for n in target.nodes.values() if n.container}
        hidden = {b.id for b in workflow.blocks if b.id not in target.nodes}
    else:
        workflow = target
        kinds, hidden = _written_kinds(workflow, registry)
    ids = _mermaid_ids([b.id for b in workflow.blocks]
                       + [sentinel_id(c, r) for c in kinds for r in SentinelRole])
    lines = ["flowchart LR"]
    _mermaid_blocks(workflow, kinds, hidden, ids, lines, notes or {})
    generated = {_rewritten(e, kinds) for e in workflow.edges if e.generated}
    for source, source_handle, dest, target_handle in _mermaid_edges(target, kinds, hidden):
        label = " → ".join(h for h in (source_handle, target_handle) if h)
        text = f'|"{_mermaid_text(label)}"|' if label else ""
        key = (source, source_handle, dest, target_handle)
        arrow = "-.->" if key in generated else "-->"
        lines.append(f"  {ids[source]} {arrow}{text} {ids[dest]}")
    lines += _status_lines(statuses or {}, ids, hidden)
    return "\n".join(lines) + "\n"


def _status_lines(statuses: Mapping[str, str], ids: dict[str, str], hidden: set[str]
                  ) -> list[str]:
    """``classDef`` per status in use, then ``class`` lines naming its blocks."""
    by_status: dict[str, list[str]] = {}
    for block_id, status in statuses.items():
        if block_id in ids and block_id not in hidden and status in STATUS_CLASSES:
            by_status.setdefault(status, []).append(ids[block_id])
    lines: list[str] = []
    for status, members in by_status.items():
        lines.append(f"  classDef {status} {STATUS_CLASSES[status]}")
        lines.append(f"  class {','.join(sorted(members))} {status}")
    return lines


Quad = tuple[str, str, str, str]


def _mermaid_edges(target: Workflow | CompiledGraph, kinds: dict[str, str | None],
                   hidden: set[str]) -> list[Quad]:
    """Edges as (source, handle, target, handle) after the sentinel rewrite."""
    if isinstance(target, CompiledGraph):  # resolved handles, generated edges included
        return [(e.source, e.source_handle, e.target, e.target_handle)
                for per_handle in target.outgoing.values()
                for edges in per_handle.values() for e in edges]
    known = {b.id for b in target.blocks} - hidden
    return [_rewritten(e, kinds) for e in target.edges
            if {e.source_block, e.target_block} <= known]


def _written_kinds(workflow: Workflow, registry: BlockRegistry | None
                   ) -> tuple[dict[str, str | None], set[str]]:
    """The container kind of each container block, and the blocks that never run."""
    if registry is None:
        from blocks.registry import default_registry

        registry = default_registry()
    kinds: dict[str, str | None] = {}
    hidden: set[str] = set()
    for block in workflow.blocks:
        if block.type not in registry:
            continue
        impl = registry.get(block.type)
        if impl.container in CONTAINERS:
            kinds[block.id] = impl.container
        if not impl.executes:
            hidden.add(block.id)
    return kinds, hidden


def _rewritten(edge: EdgeDef, kinds: dict[str, str | None]) -> Quad:
    source, target = sentinel_ends(edge, kinds.get(edge.source_block),
                                   kinds.get(edge.target_block))
    return source, edge.source_handle, target, edge.target_handle


def _mermaid_ids(names: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        base = "b_" + "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)
        candidate, n = base, 1
        while candidate in used:
            n += 1
            candidate = f"{base}_{n}"
        used.add(candidate)
        out.setdefault(name, candidate)
    return out


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def _mermaid_blocks(workflow: Workflow, kinds: dict[str, str | None], hidden: set[str],
                    ids: dict[str, str], lines: list[str], notes: Mapping[str, str]) -> None:
    children: dict[str | None, list[Any]] = {}
    for block in workflow.blocks:
        parent = block.parent_id if block.parent_id in kinds else None
        children.setdefault(parent, []).append(block)

    def emit(parent: str | None, indent: str) -> None:
        for block in children.get(parent, []):
            if block.id in hidden or block.id == parent:
                continue
            note = f"<br/>{notes[block.id]}" if block.id in notes else ""
            label = _mermaid_text(f"{block.display_label}<br/>{block.type}{note}")
            if block.id not in kinds:
                lines.append(f'{indent}{ids[block.id]}["{label}"]')
                continue
            lines.append(f'{indent}subgraph {ids[block.id]}["{label}"]')
            lines.append(f"{indent}  direction LR")
            lines.append(f'{indent}  {ids[sentinel_id(block.id, SentinelRole.START)]}(("start"))')
            emit(block.id, indent + "  ")
            lines.append(f'{indent}  {ids[sentinel_id(block.id, SentinelRole.END)]}(("end"))')
            lines.append(f"{indent}end")

    emit(None, "  ")
