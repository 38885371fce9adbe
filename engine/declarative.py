"""The declarative workflow format (``apiVersion``, ``metadata``, ``spec``), read leniently.

Nested ``children`` become flat :class:`~engine.contracts.definition.BlockDef` entries
with ``parent_id`` set to their container; declaration order is kept (a container, then
its children depth-first), and each block remembers its YAML path (``spec.blocks.loop.
children.item``) for diagnostics. The three edge spellings (``source/target``,
``from/to`` and flat ``source_block/...``) all normalise to one
:class:`~engine.contracts.definition.EdgeDef`. Problems inside the structure are
diagnostics (see engine.loading), never exceptions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from engine.contracts.definition import BlockDef, EdgeDef
from engine.definition import Workflow
from engine.load_fields import (
    Duplicate,
    Reporter,
    block_config,
    checked_endpoint,
    layout,
)

BLOCK_KEYS = ("type", "label", "config", "children", "position", "width", "height")
EDGE_KEYS = frozenset({"id", "source", "target", "from", "to", "source_block",
                       "source_handle", "target_block", "target_handle"})
ROOT_KEYS = frozenset({"apiVersion", "kind", "metadata", "spec"})
_ENDPOINT_NAMES = {"source": ("source", "from"), "target": ("target", "to")}


def read_declarative(data: Mapping[str, Any], source: str,
                     duplicates: list[Duplicate] | None = None) -> Workflow:
    """Build a Workflow from parsed declarative data (``apiVersion``, ``metadata``, ``spec``).

    Args:
        data: the parsed document root.
        source: file name or label used in messages.
        duplicates: mapping keys the parser saw twice, reported as diagnostics.

    Returns:
        The workflow; problems inside the structure are in ``load_diagnostics``.
    """
    report = Reporter()
    name, description, workflow_id = _metadata(data, report)
    api_version = data.get("apiVersion")
    if api_version is None:
        report("MISSING_API_VERSION", "apiVersion", "The workflow has no apiVersion.",
               "Add `apiVersion: workflows.retab.com/v1alpha2` (Retab rejects files "
               "without it).", severity="warning")
    for key in data:
        if key not in ROOT_KEYS:
            report("UNKNOWN_FIELD", str(key), f"Unknown top-level key {key!r} is ignored.",
                   "Remove it; a workflow has apiVersion, kind, metadata and spec.",
                   severity="warning")
    spec = data.get("spec")
    blocks: list[BlockDef] = []
    edges: list[EdgeDef] = []
    if not isinstance(spec, Mapping):
        report("INVALID_SPEC", "spec", "The workflow has no `spec` mapping.",
               "Add `spec:` with `blocks:` (a map keyed by block id) and `edges:` (a list). "
               "For Retab graph JSON (a top-level `blocks` list) use Workflow.from_graph or "
               "load_workflow.")
    else:
        _read_blocks(spec.get("blocks"), "spec.blocks", None, blocks, report)
        edges = _read_edges(spec.get("edges"), report)
        for key in spec:
            if key not in ("blocks", "edges"):
                report("UNKNOWN_FIELD", f"spec.{key}", f"Unknown key spec.{key} is ignored.",
                       "Remove it; spec holds `blocks` and `edges`.", severity="warning")
    _report_duplicates(duplicates or [], blocks, report)
    return Workflow(
        name=name, description=description, id=workflow_id,
        api_version=None if api_version is None else str(api_version),
        kind=None if data.get("kind") is None else str(data.get("kind")),
        blocks=blocks, edges=edges, source=source, load_diagnostics=report.diagnostics,
    )


#: What a ``metadata.id`` may be: it appears in URLs and command lines.
WORKFLOW_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def _metadata(data: Mapping[str, Any], report: Reporter) -> tuple[str, str, str | None]:
    meta = data.get("metadata")
    if meta is None:
        meta = {}
    if not isinstance(meta, Mapping):
        report("INVALID_METADATA", "metadata", "metadata must be a mapping.",
               "Write `metadata: {name: my-workflow}`.")
        meta = {}
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        report("MISSING_WORKFLOW_NAME", "metadata.name", "The workflow has no metadata.name.",
               "Add `metadata: {name: my-workflow}`.", severity="warning")
        name = "workflow"
    description = meta.get("description")
    workflow_id = meta.get("id")
    if workflow_id is not None and not (isinstance(workflow_id, str)
                                        and WORKFLOW_ID.fullmatch(workflow_id)):
        report("INVALID_WORKFLOW_ID", "metadata.id",
               f"metadata.id {workflow_id!r} is not a usable workflow id.",
               "Use letters, digits, '_', '-' and '.', starting with a letter or digit "
               "(at most 100), e.g. `id: ticket-triage`; or leave it out to derive the id "
               "from the name.")
        workflow_id = None
    return name, description if isinstance(description, str) else "", workflow_id


def _read_blocks(raw: Any, path: str, parent: str | None, out: list[BlockDef],
                 report: Reporter) -> None:
    """Append the blocks of map ``raw`` (and their children, depth-first) to ``out``."""
    if raw is None:
        return
    if not isinstance(raw, Mapping):
        report("INVALID_BLOCKS", path, f"{path} must be a map keyed by block id, "
               f"not a {type(raw).__name__}.",
               "Write each block as `<block_id>: {type: ..., config: ...}`.")
        return
    for key, entry in raw.items():
        block_id = str(key)
        block_path = f"{path}.{block_id}"
        if not isinstance(entry, Mapping):
            report("INVALID_BLOCK_DEFINITION", block_path,
                   f"Block {block_id!r} must be a mapping with at least `type`.",
                   f"Write `{block_id}: {{type: <block type>}}`.")
            out.append(BlockDef(id=block_id, type="", parent_id=parent, path=block_path))
            continue
        out.append(_block(block_id, entry, block_path, parent, report))
        if "children" in entry:
            _read_blocks(entry["children"], f"{block_path}.children", block_id, out, report)


def _block(block_id: str, entry: Mapping[str, Any], path: str, parent: str | None,
           report: Reporter) -> BlockDef:
    for key in entry:
        if key == "id" and str(entry[key]) == block_id:
            continue
        if key not in BLOCK_KEYS:
            hint = (" Children are nested under their container's `children`, never linked "
                    "with parent_id." if key == "parent_id" else "")
            report("UNKNOWN_BLOCK_FIELD", f"{path}.{key}",
                   f"Unknown key {key!r} in block {block_id!r}.{hint}",
                   f"Use only: {', '.join(BLOCK_KEYS)}. Block settings go under `config`.")
    block_type = entry.get("type")
    if not isinstance(block_type, str) or not block_type:
        report("MISSING_BLOCK_TYPE", f"{path}.type", f"Block {block_id!r} has no type.",
               "Add `type:` (start_document, start_json, extract, function, ...).")
        block_type = ""
    label = entry.get("label")
    return BlockDef(
        id=block_id, type=block_type, label=str(label) if label is not None else "",
        config=block_config(entry.get("config"), f"{path}.config", report), parent_id=parent,
        path=path, **layout(entry, path, report),
    )


def _read_edges(raw: Any, report: Reporter) -> list[EdgeDef]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        report("INVALID_EDGES", "spec.edges", "spec.edges must be a list.",
               "Write each edge as a list item `- source: {block: a, handle: output-json-0}`.")
        return []
    edges: list[EdgeDef] = []
    for index, entry in enumerate(raw):
        edge = read_edge(entry, f"spec.edges[{index}]", report)
        if edge is not None:
            edges.append(edge)
    return edges


def read_edge(entry: Any, path: str, report: Reporter) -> EdgeDef | None:
    """One edge in any of the three spellings, or None (with a diagnostic) if unusable."""
    if not isinstance(entry, Mapping):
        report("INVALID_EDGE_ENDPOINT", path, "An edge must be a mapping.",
               "Write `- source: {block: a, handle: output-json-0}` and "
               "`target: {block: b, handle: input-json-0}`.")
        return None
    for key in entry:
        if key not in EDGE_KEYS:
            report("UNKNOWN_EDGE_FIELD", f"{path}.{key}", f"Unknown edge key {key!r} is ignored.",
                   "Use source/target (or from/to, or source_block/source_handle/"
                   "target_block/target_handle) and optionally id.", severity="warning")
    source = _endpoint(entry, "source", path, report)
    target = _endpoint(entry, "target", path, report)
    if source is None or target is None:
        return None
    edge_id = entry.get("id")
    return EdgeDef(source_block=source[0], source_handle=source[1], target_block=target[0],
                   target_handle=target[1], id=None if edge_id is None else str(edge_id),
                   path=path)


def _endpoint(entry: Mapping[str, Any], role: str, path: str,
              report: Reporter) -> tuple[str, str] | None:
    nested = [n for n in _ENDPOINT_NAMES[role] if n in entry]
    flat = [k for k in (f"{role}_block", f"{role}_handle") if k in entry]
    write = f"`{role}: {{block: <id>, handle: <handle>}}`"
    if len(nested) > 1:
        report("INVALID_EDGE_ENDPOINT", f"{path}.{nested[1]}",
               f"The {role} endpoint is given twice, as `{nested[0]}` and `{nested[1]}`.",
               f"Use one: {write}.")
        return None
    if nested and flat:
        report("INVALID_EDGE_ENDPOINT", f"{path}.{flat[0]}",
               f"The {role} endpoint is given both nested (`{nested[0]}`) and flat "
               f"(`{flat[0]}`).", f"Use one form: {write}.")
        return None
    if nested:
        return _nested_endpoint(entry[nested[0]], role, f"{path}.{nested[0]}", report)
    if not flat:
        report("INVALID_EDGE_ENDPOINT", path, f"The edge is missing the {role} endpoint.",
               f"Write {write}.")
        return None
    return checked_endpoint(entry.get(f"{role}_block"), entry.get(f"{role}_handle"),
                             role, f"{path}.{role}_block", report)


def _nested_endpoint(value: Any, role: str, path: str,
                     report: Reporter) -> tuple[str, str] | None:
    if isinstance(value, str):
        return checked_endpoint(value, None, role, path, report)
    if not isinstance(value, Mapping):
        report("INVALID_EDGE_ENDPOINT", path, f"The {role} endpoint must be a mapping.",
               "Write `{block: <id>, handle: <handle>}`.")
        return None
    extra = sorted(str(k) for k in value if k not in ("block", "handle"))
    if extra:
        report("INVALID_EDGE_ENDPOINT", path,
               f"The {role} endpoint has unknown keys: {', '.join(extra)}.",
               "An endpoint has only `block` and `handle`.")
        return None
    return checked_endpoint(value.get("block"), value.get("handle"), role,
                             f"{path}.block", report)


def _report_duplicates(duplicates: list[Duplicate], blocks: list[BlockDef],
                       report: Reporter) -> None:
    paths = {b.id: b.path for b in blocks}
    for key, line in duplicates:
        where = f" (again at line {line})" if line else ""
        if key in paths:
            report("DUPLICATE_BLOCK_ID", paths[key],
                   f"Block id {key!r} is written twice{where}; only the last one would be "
                   "kept.", "Give every block a unique id.", block_id=key)
        else:
            report("DUPLICATE_KEY", f"line {line}" if line else "",
                   f"Key {key!r} is written twice in one mapping{where}; only the last one "
                   "would be kept.", "Remove or rename one of them.", key=key)
