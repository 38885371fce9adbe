"""The workflow model, and the three ways to get one.

1. Retab declarative YAML (``apiVersion: workflows.retab.com/v1alpha2``) or the same
   structure as JSON: :meth:`Workflow.from_yaml`, :func:`load_workflow`.
2. Retab graph JSON (``blocks[]`` with ``parent_id``, ``edges[]``):
   :meth:`Workflow.from_graph`.
3. The Python builder: :meth:`Workflow.builder`.

Loading is lenient on purpose: it keeps everything it can read and records what it
could not read as :class:`~engine.contracts.errors.Diagnostic` objects in ``load_diagnostics``,
so that :func:`engine.graph.compile_workflow` can report *every* problem at once.
Only input that cannot be parsed at all (not YAML, not a mapping) raises
:class:`~engine.contracts.errors.WorkflowLoadError`.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.contracts.bounded import clean_text
from engine.contracts.definition import API_VERSION, BlockDef, EdgeDef
from engine.contracts.errors import Diagnostic


class Workflow(BaseModel):
    """A loaded (not yet validated) workflow. Compile it with engine.graph."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str = "workflow"
    description: str = ""
    #: ``metadata.id``: the workflow's id, when its author chose one (see :meth:`workflow_id`).
    id: str | None = None
    api_version: str | None = API_VERSION
    kind: str | None = "Workflow"
    blocks: list[BlockDef] = Field(default_factory=list)
    edges: list[EdgeDef] = Field(default_factory=list)
    source: str = "<workflow>"
    load_diagnostics: list[Diagnostic] = Field(default_factory=list, exclude=True)

    @field_validator("name")
    @classmethod
    def _printable_name(cls, value: str) -> str:
        """Names reach terminals and logs: control characters are dropped."""
        return clean_text(value, limit=200) or "workflow"

    def workflow_id(self) -> str:
        """The workflow's id: ``metadata.id`` when given, else a stable id from its name.

        The same scheme everywhere (runs started from the CLI or Python, workflows
        applied over HTTP), so a workflow keeps its id across edits; its versions are told
        apart by :meth:`digest`.

        Returns:
            ``metadata.id``, or ``wf_`` and the name in lower case with every run of
            other characters turned into ``_`` (``Ticket triage`` -> ``wf_ticket_triage``);
            a name with no ASCII letter or digit gets 16 hex digits of its sha256.
        """
        if self.id:
            return self.id
        folded = unicodedata.normalize("NFKD", self.name).encode("ascii", "ignore").decode()
        slug = re.sub(r"[^a-z0-9]+", "_", folded.lower()).strip("_")[:60]
        return "wf_" + (slug or hashlib.sha256(self.name.encode()).hexdigest()[:16])

    def block(self, block_id: str) -> BlockDef | None:
        """The block with this id.

        Args:
            block_id: a block id (children included).

        Returns:
            The first block with that id, or None.
        """
        for b in self.blocks:
            if b.id == block_id:
                return b
        return None

    def digest(self) -> str:
        """sha256 of the canonical definition (ids, types, configs, authored edges).

        Generated boundary edges are left out: they are derived from the rest, so a
        workflow and its compiled copy have the same digest.
        """
        body = {
            "blocks": sorted(
                ({"id": b.id, "type": b.type, "config": b.config, "parent": b.parent_id}
                 for b in self.blocks),
                key=lambda d: str(d["id"]),
            ),
            "edges": sorted(
                [e.source_block, e.source_handle, e.target_block, e.target_handle]
                for e in self.edges if not e.generated
            ),
        }
        raw = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(raw.encode()).hexdigest()

    @staticmethod
    def builder(name: str = "workflow") -> WorkflowBuilder:
        """Start a Python-built workflow (for tests and embedding).

        Args:
            name: the workflow's name.

        Returns:
            An empty builder.
        """
        return WorkflowBuilder(name)

    # -------------------------------------------------------------- loaders

    @classmethod
    def from_yaml(cls, text: str, source: str = "<yaml>") -> Workflow:
        """Read a declarative workflow from YAML text.

        Args:
            text: the YAML document (``apiVersion``, ``kind``, ``metadata``, ``spec``).
            source: a file name or label used in messages.

        Returns:
            The workflow; problems inside the structure are in ``load_diagnostics``.

        Raises:
            WorkflowLoadError: the text is not YAML (the message names the line), or its
                root is not a mapping.
        """
        from engine.declarative import read_declarative
        from engine.loading import parse_yaml, require_mapping

        data, duplicates = parse_yaml(text, source)
        return read_declarative(require_mapping(data, source), source, duplicates)

    @classmethod
    def from_json(cls, text_or_dict: str | Mapping[str, Any],
                  source: str = "<json>") -> Workflow:
        """Read a declarative workflow written as JSON (the same structure as the YAML).

        Args:
            text_or_dict: JSON text, or the already parsed mapping.
            source: a file name or label used in messages.

        Returns:
            The workflow; problems inside the structure are in ``load_diagnostics``.

        Raises:
            WorkflowLoadError: the text is not JSON, or its root is not a mapping.
        """
        from engine.declarative import read_declarative
        from engine.loading import parse_json, require_mapping

        duplicates: list[tuple[str, int | None]] = []
        data: Any = text_or_dict
        if isinstance(text_or_dict, str):
            data, duplicates = parse_json(text_or_dict, source)
        return read_declarative(require_mapping(data, source), source, duplicates)

    @classmethod
    def from_graph(cls, graph: Mapping[str, Any], source: str = "<graph>") -> Workflow:
        """Read Retab graph JSON: ``blocks[]`` (with ``parent_id``) and ``edges[]``.

        Args:
            graph: the parsed graph (a mapping with ``blocks`` and ``edges`` lists).
            source: a file name or label used in messages.

        Returns:
            The workflow (``api_version`` None); problems are in ``load_diagnostics``.

        Raises:
            WorkflowLoadError: ``graph`` is not a mapping.
        """
        from engine.graph_json import read_graph
        from engine.loading import require_mapping

        return read_graph(require_mapping(graph, source), source)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> Workflow:
        """Read either form from parsed data, chosen by content (see :func:`load_workflow`).

        Args:
            data: the parsed declarative document or graph JSON.
            source: a file name or label used in messages.

        Returns:
            The workflow; problems inside the structure are in ``load_diagnostics``.

        Raises:
            WorkflowLoadError: ``data`` is not a mapping, or is neither form.
        """
        from engine.loading import read_any

        return read_any(data, source)

    def to_dict(self) -> dict[str, Any]:
        """A JSON form that :meth:`from_dict` (and :func:`load_workflow`) reads back.

        The declarative form (what Retab's ``spec get`` writes: children nested, edges as
        ``source/target``) when the blocks can be nested; the graph form (flat blocks
        with ``parent_id``) when they cannot (a duplicate id, a missing parent, a parent
        cycle). Generated boundary edges are left out: compiling regenerates them.

        Returns:
            A JSON-serialisable dict.
        """
        edges = [e for e in self.edges if not e.generated]
        if _nestable(self.blocks):
            return _declarative_dict(self, edges)
        return {
            "name": self.name,
            "description": self.description,
            "blocks": [_graph_block(b) for b in self.blocks],
            "edges": [
                {"id": e.id, "source": e.source_block, "target": e.target_block,
                 "source_handle": e.source_handle or None,
                 "target_handle": e.target_handle or None}
                for e in edges
            ],
        }


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
        """Add a block.

        Args:
            block_id: its id.
            block_type: its type, as a workflow file writes it.
            config: its config (checked when the workflow is compiled).
            label: its display label.
            parent: the for_each / while_loop that contains it, if any.

        Returns:
            The builder, to chain calls.
        """
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
        """Connect two blocks.

        Args:
            source, target: the block ids.
            source_handle, target_handle: the handles; an omitted one is resolved when
                the workflow is compiled (the block's only fitting handle).

        Returns:
            The builder, to chain calls.
        """
        path = f"edges[{len(self._edges)}]"
        self._edges.append(
            EdgeDef(source_block=source, source_handle=source_handle, target_block=target,
                    target_handle=target_handle, path=path)
        )
        return self

    def build(self) -> Workflow:
        """The workflow built so far.

        Returns:
            A Workflow; validate it with :func:`engine.graph.compile_workflow`.
        """
        return Workflow(name=self._name, blocks=list(self._blocks), edges=list(self._edges),
                        source="<builder>")


def load_workflow(path: str | Path) -> Workflow:
    """Read a workflow file, choosing the format by content.

    A mapping with ``spec`` (or ``apiVersion``) is declarative YAML/JSON; one with a
    top-level ``blocks`` list is Retab graph JSON. ``.json`` files are parsed as JSON,
    everything else as YAML (JSON text in a ``.yaml`` file works too).

    Args:
        path: the workflow file.

    Returns:
        The workflow (validate it with :func:`engine.graph.compile_workflow`).

    Raises:
        WorkflowLoadError: the file cannot be read, is not YAML/JSON (the message names
            the file and line), or is not a workflow.
    """
    from engine.loading import load_path

    return load_path(path)


# ------------------------------------------------------------------ writers


def _nestable(blocks: list[BlockDef]) -> bool:
    """True when every parent chain ends at the top level and ids are unique."""
    parents = {b.id: b.parent_id for b in blocks}
    if len(parents) != len(blocks):
        return False
    for block in blocks:
        seen: set[str] = set()
        current = block.parent_id
        while current is not None:
            if current not in parents or current in seen:
                return False
            seen.add(current)
            current = parents[current]
    return True


def _entry(block: BlockDef) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": block.type}
    if block.label:
        entry["label"] = block.label
    if block.config:
        entry["config"] = block.config
    for key in ("position", "width", "height"):
        if getattr(block, key) is not None:
            entry[key] = getattr(block, key)
    return entry


def _graph_block(block: BlockDef) -> dict[str, Any]:
    out = {"id": block.id, **_entry(block), "parent_id": block.parent_id}
    out.setdefault("config", {})
    return out


def _declarative_dict(workflow: Workflow, edges: list[EdgeDef]) -> dict[str, Any]:
    entries = {b.id: _entry(b) for b in workflow.blocks}
    top: dict[str, Any] = {}
    for block in workflow.blocks:  # declaration order is kept inside every map
        siblings = (top if block.parent_id is None
                    else entries[block.parent_id].setdefault("children", {}))
        siblings[block.id] = entries[block.id]
    metadata = {"name": workflow.name}
    if workflow.id:
        metadata["id"] = workflow.id
    if workflow.description:
        metadata["description"] = workflow.description
    out_edges = []
    for edge in edges:
        source = {"block": edge.source_block}
        target = {"block": edge.target_block}
        if edge.source_handle:
            source["handle"] = edge.source_handle
        if edge.target_handle:
            target["handle"] = edge.target_handle
        item: dict[str, Any] = {"source": source, "target": target}
        if edge.id is not None:
            item["id"] = edge.id
        out_edges.append(item)
    return {
        "apiVersion": workflow.api_version or API_VERSION,
        "kind": workflow.kind or "Workflow",
        "metadata": metadata,
        "spec": {"blocks": top, "edges": out_edges},
    }
