"""Compile a :class:`~engine.definition.Workflow` into the graph the scheduler walks.

Theory of operation
-------------------
Compilation resolves every block's handles from its parsed config (through the block
registry), resolves friendly target-handle aliases, generates missing container
boundary edges, and then *rewrites container boundaries onto sentinel nodes*:

* each container ``C`` gets two generated nodes, ``C_sentinel_start`` (type
  ``<kind>_sentinel_start``) and ``C_sentinel_end`` (``<kind>_sentinel_end``), both
  members of ``C``;
* an edge ``C.fe-left-out -> child`` becomes ``C_sentinel_start.fe-left-out -> child``
  (``loop-left-out`` likewise);
* an edge ``child -> C.fe-right-in`` becomes ``child -> C_sentinel_end.fe-right-in``
  (``loop-right-in`` and ``loop-termination`` likewise).

After the rewrite every edge joins two members of the same scope (the top level, or one
container), so one iteration of a container is simply a fresh copy of its member set.

Validation collects every problem (never stopping at the first) as Diagnostics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from blocks.base import BlockType, HandleKind, JoinMode
from engine.definition import Workflow

TOP = None  # the scope key of top-level members


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    """A block (or generated sentinel) as the scheduler sees it."""

    id: str
    type: str
    label: str
    parent: str | None
    config: Any
    impl: BlockType
    inputs: dict[str, HandleKind]
    outputs: dict[str, HandleKind]
    join: JoinMode
    unfired_reason: str
    container: str | None = None  # 'for_each' | 'while_loop' for container nodes
    sentinel_of: str | None = None  # container id, for sentinel nodes
    sentinel_role: str | None = None  # 'start' | 'end'


@dataclass(frozen=True, slots=True, kw_only=True)
class Edge:
    """A resolved edge between two members of the same scope."""

    source: str
    source_handle: str
    target: str
    target_handle: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CompiledGraph:
    """The validated, rewritten graph.

    Attributes:
        workflow: the source definition.
        nodes: every executable node by id, sentinels included, notes excluded.
        incoming: ``node -> {input handle -> Edge}`` (connected inputs only).
        outgoing: ``node -> {output handle -> [Edge, ...]}`` (connected outputs only).
        members: ``scope -> node ids in deterministic topological order``; scope is
            None for the top level, else a container id. Sentinels are members of their
            container.
        input_schemas: ``node -> {input handle -> upstream JSON schema or None}``.
    """

    workflow: Workflow
    nodes: dict[str, Node]
    incoming: dict[str, dict[str, Edge]]
    outgoing: dict[str, dict[str, list[Edge]]]
    members: dict[str | None, tuple[str, ...]]
    input_schemas: dict[str, dict[str, dict[str, Any] | None]] = field(default_factory=dict)

    def start_blocks(self) -> list[Node]:
        """Top-level nodes of type start_document / start_json (or alias ``start``)."""
        return [
            n for n in self.nodes.values()
            if n.parent is None and n.type in ("start_document", "start_json", "start")
        ]
