"""The compiled graph the scheduler walks: nodes, edges, and scope members.

This module is deliberately light: plain dataclasses over :mod:`engine.contracts`, with
no networkx and no pydantic, so that :mod:`engine.scheduler` can import it alone.
:func:`engine.graph.compile_workflow` builds a :class:`CompiledGraph` from a validated
workflow; tests may build one by hand.

Every edge joins two members of one scope (the top level, or one container), because
compilation rewrites container boundaries onto generated sentinel nodes (see
:mod:`engine.graph`). What a node *is* to the engine (a start block, an end block, a
container, a sentinel) is data on the node, never inferred from its type name.
"""

from __future__ import annotations

from dataclasses import field
from typing import TYPE_CHECKING, Any

from engine.contracts.blocks import BlockRole, HandleKind, JoinMode, SentinelRole
from engine.contracts.frozen import record

if TYPE_CHECKING:
    from blocks.base import BlockType
    from engine.definition import Workflow


@record
class Node:
    """A block (or generated sentinel) as the scheduler sees it.

    Attributes:
        id: the block id (sentinels: ``<container>_sentinel_<role>``).
        type: the block type as written (an alias stays an alias).
        label: the display label.
        parent: the container this node is a member of, or None at the top level.
        config: the parsed config (sentinels get their container's).
        impl: the block type that runs the node.
        inputs, outputs: handle id -> kind, as seen from the node's own scope.
        join: when the node runs given which inputs arrived.
        unfired_reason: the reason prefix a dead output handle gives downstream.
        role: what the block type is to the engine (start, end, or a task).
        container: the container kind (``for_each``, ``while_loop``) of a container node.
        sentinel_of: the container id, for a sentinel node.
        sentinel_role: which boundary of its container a sentinel node stands for.
    """

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
    role: BlockRole = BlockRole.TASK
    container: str | None = None
    sentinel_of: str | None = None
    sentinel_role: SentinelRole | None = None


@record
class Edge:
    """A resolved edge between two members of the same scope."""

    source: str
    source_handle: str
    target: str
    target_handle: str


@record
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
    #: What is computed once per graph and reused by every run of it (the definition
    #: of :func:`engine.graph.compile_shared`, the digest); never compared.
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def start_blocks(self) -> list[Node]:
        """The top-level nodes whose block type has a start role.

        Returns:
            The start nodes (``start_json``, ``start_document`` and their aliases), in
            node order (found once per graph: every run asks).
        """
        # kept with the nodes they came from: a stubbed copy of the graph shares its memo
        nodes, starts = self.memo.get("start_blocks", (None, ()))
        if nodes is not self.nodes:
            starts = tuple(n for n in self.nodes.values()
                           if n.parent is None and n.role.is_start)
            self.memo["start_blocks"] = (self.nodes, starts)
        return list(starts)
