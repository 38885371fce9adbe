"""The workflow model, and the three ways to get one.

1. Retab declarative YAML (``apiVersion: workflows.retab.com/v1alpha2``) or the same
   structure as JSON: :meth:`Workflow.from_yaml`, :func:`load_workflow`.
2. Retab graph JSON (``blocks[]`` with ``parent_id``, ``edges[]``):
   :meth:`Workflow.from_graph`.
3. The Python builder: :meth:`Workflow.builder`.

Loading is lenient on purpose: it keeps everything it can read and records what it
could not read as :class:`~engine.errors.Diagnostic` objects in ``load_diagnostics``,
so that :func:`engine.graph.compile_workflow` can report *every* problem at once.
Only input that cannot be parsed at all (not YAML, not a mapping) raises
:class:`~engine.errors.WorkflowLoadError`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine.errors import Diagnostic

API_VERSION = "workflows.retab.com/v1alpha2"


class BlockDef(BaseModel):
    """One block as written: declarative id, type, label, config, container parent."""

    model_config = ConfigDict(frozen=True)

    id: str
    type: str
    label: str = ""
    config: dict[str, Any] = Field(default_factory=dict)
    parent_id: str | None = None
    position: dict[str, float] | None = None
    width: float | None = None
    height: float | None = None
    path: str = Field(default="", description="YAML path used in diagnostics")

    @property
    def display_label(self) -> str:
        """The label, or the id when no label was written."""
        return self.label or self.id


class EdgeDef(BaseModel):
    """One edge, normalised to ``source_block/source_handle -> target_block/target_handle``.

    An empty handle means "the block's only handle of the right kind" and is resolved
    at compile time.
    """

    model_config = ConfigDict(frozen=True)

    source_block: str
    source_handle: str = ""
    target_block: str
    target_handle: str = ""
    id: str | None = None
    path: str = ""
    generated: bool = False


class Workflow(BaseModel):
    """A loaded (not yet validated) workflow. Compile it with engine.graph."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str = "workflow"
    description: str = ""
    api_version: str | None = API_VERSION
    kind: str | None = "Workflow"
    blocks: list[BlockDef] = Field(default_factory=list)
    edges: list[EdgeDef] = Field(default_factory=list)
    source: str = "<workflow>"
    load_diagnostics: list[Diagnostic] = Field(default_factory=list, exclude=True)

    def block(self, block_id: str) -> BlockDef | None:
        """The block with this id, or None."""
        for b in self.blocks:
            if b.id == block_id:
                return b
        return None

    def digest(self) -> str:
        """sha256 of the canonical definition (ids, types, configs, edges)."""
        body = {
            "blocks": sorted(
                ({"id": b.id, "type": b.type, "config": b.config, "parent": b.parent_id}
                 for b in self.blocks),
                key=lambda d: d["id"],
            ),
            "edges": sorted(
                [e.source_block, e.source_handle, e.target_block, e.target_handle]
                for e in self.edges
            ),
        }
        raw = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(raw.encode()).hexdigest()

    @staticmethod
    def builder(name: str = "workflow") -> WorkflowBuilder:
        """Start a Python-built workflow (for tests and embedding)."""
        return WorkflowBuilder(name)


class WorkflowBuilder:
    """Fluent construction of a :class:`Workflow`.

    Example::

        wf = (Workflow.builder("demo")
              .block("start", "start_json")
              .block("double", "function", config={"python": "my.mod:double",
                                                   "output_schema": {"type": "object"}})
              .edge("start", "double")
              .build())
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._blocks: list[BlockDef] = []
        self._edges: list[EdgeDef] = []

    def block(
        self,
        block_id: str,
        block_type: str,
        *,
        config: dict[str, Any] | None = None,
        label: str = "",
        parent: str | None = None,
    ) -> WorkflowBuilder:
        """Add a block; ``parent`` names the for_each/while_loop that contains it."""
        path = f"blocks[{len(self._blocks)}]({block_id})"
        self._blocks.append(
            BlockDef(id=block_id, type=block_type, label=label, config=config or {},
                     parent_id=parent, path=path)
        )
        return self

    def edge(
        self,
        source: str,
        target: str,
        *,
        source_handle: str = "",
        target_handle: str = "",
    ) -> WorkflowBuilder:
        """Connect two blocks; omitted handles default to the block's only handle."""
        path = f"edges[{len(self._edges)}]"
        self._edges.append(
            EdgeDef(source_block=source, source_handle=source_handle, target_block=target,
                    target_handle=target_handle, path=path)
        )
        return self

    def build(self) -> Workflow:
        """The workflow (validate it with :func:`engine.graph.compile_workflow`)."""
        return Workflow(name=self._name, blocks=list(self._blocks), edges=list(self._edges),
                        source="<builder>")
