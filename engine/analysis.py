"""What validation learns about a workflow, shared by its phases and by compilation.

:class:`BlockInfo` holds one block's resolved type, parsed config and handles;
:class:`Analysis` holds every block's info, the resolved edges and the diagnostics found
so far. engine.validation fills it (phases 1-4), engine.edge_rules checks edges and
cycles, and engine.graph generates boundary edges into it and compiles it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.containers import CONTAINERS, ContainerHandles, sentinel_ends
from engine.contracts.blocks import HandleKind
from engine.contracts.definition import BlockDef, EdgeDef
from engine.contracts.errors import Diagnostic

if TYPE_CHECKING:
    from blocks.base import BlockType
    from blocks.registry import BlockRegistry
    from engine.definition import Workflow

@dataclass(slots=True, kw_only=True)
class BlockInfo:
    """What validation learned about one block."""

    block: BlockDef
    index: int
    impl: BlockType | None = None
    config: Any = None
    ok: bool = False  # type known and config parsed: handles are known
    inputs: dict[str, HandleKind] = field(default_factory=dict)
    outputs: dict[str, HandleKind] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """The block id."""
        return self.block.id

    @property
    def container_kind(self) -> str | None:
        """The container kind of the block's type, or None."""
        return self.impl.container if self.impl else None

    @property
    def spec(self) -> ContainerHandles | None:
        """The container handles, for a container block."""
        return CONTAINERS.get(self.container_kind or "")

    @property
    def outer_inputs(self) -> dict[str, HandleKind]:
        """Inputs seen from the block's own scope (a container's inner ones excluded)."""
        spec = self.spec
        if spec is None:
            return self.inputs
        return {spec.left_in: self.inputs[spec.left_in]}

    @property
    def outer_outputs(self) -> dict[str, HandleKind]:
        """Outputs seen from the block's own scope (a container's inner ones excluded)."""
        spec = self.spec
        if spec is None:
            return self.outputs
        return {spec.right_out: self.outputs[spec.right_out]}

    @property
    def executes(self) -> bool:
        """False for notes (and other blocks that never run)."""
        return self.impl is None or self.impl.executes


@dataclass(slots=True, kw_only=True)
class Analysis:
    """The result of :func:`engine.validation.analyse`: diagnostics, and what compiling needs."""

    workflow: Workflow
    registry: BlockRegistry
    diagnostics: list[Diagnostic] = field(default_factory=list)
    blocks: dict[str, BlockInfo] = field(default_factory=dict)
    edges: list[EdgeDef] = field(default_factory=list)  # resolved; generated ones last
    troubled: set[str] = field(default_factory=set)  # blocks with a reported edge problem
    # resolved edges reported as a second edge into one input: kept out of the graph, but
    # the cycle check still sees them, so a cycle through one is reported too
    duplicates: list[EdgeDef] = field(default_factory=list)

    def report(self, code: str, path: str, message: str, fix: str, *,
               severity: str = "error", **details: Any) -> None:
        """Record one diagnostic.

        Args:
            code: the diagnostic code (``UNKNOWN_BLOCK_TYPE``, ...).
            path: where in the workflow the problem is.
            message: what is wrong.
            fix: what to do about it.
            severity: ``error`` or ``warning``.
            details: machine-readable facts kept with the diagnostic.
        """
        self.diagnostics.append(Diagnostic(code=code, message=message, path=path, fix=fix,
                                           severity=severity, details=details))

    @property
    def has_errors(self) -> bool:
        """True when at least one diagnostic is an error."""
        return any(d.severity == "error" for d in self.diagnostics)

    def rewrite(self, edge: EdgeDef) -> tuple[str, str]:
        """Source and target node ids of ``edge`` after the sentinel rewrite.

        Args:
            edge: a resolved edge between known blocks.

        Returns:
            ``(source node id, target node id)`` (see engine.containers.sentinel_ends).
        """
        return sentinel_ends(edge, self.blocks[edge.source_block].container_kind,
                             self.blocks[edge.target_block].container_kind)
