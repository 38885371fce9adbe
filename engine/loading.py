"""Readers for the declarative workflow format (YAML, or the same structure as JSON).

Theory of operation
-------------------
Reading is lenient. Only text that cannot be parsed at all, or whose root is not a
mapping, raises :class:`~engine.contracts.errors.WorkflowLoadError`. Everything else that is wrong
*inside* the structure (an edge without a target, a block entry that is not a mapping,
a block without ``type``) is kept as a :class:`~engine.contracts.errors.Diagnostic` in
``Workflow.load_diagnostics``, and reading carries on, so that validation can report
every problem at once.

Nested ``children`` become flat :class:`~engine.definition.BlockDef` entries with
``parent_id`` set to their container; declaration order is kept (a container, then its
children depth-first), and each block remembers its YAML path (``spec.blocks.loop.
children.item``) for diagnostics. The three edge spellings (``source/target``,
``from/to`` and flat ``source_block/...``) all normalise to one
:class:`~engine.definition.EdgeDef`.

PyYAML and ``json`` silently keep the last of two equal mapping keys, which would hide a
block id written twice; both parsers here record duplicate keys and report them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from engine.contracts.errors import Diagnostic, WorkflowLoadError
from engine.definition import BlockDef, EdgeDef, Workflow

BLOCK_KEYS = ("type", "label", "config", "children", "position", "width", "height")
EDGE_KEYS = frozenset({"id", "source", "target", "from", "to", "source_block",
                       "source_handle", "target_block", "target_handle"})
ROOT_KEYS = frozenset({"apiVersion", "kind", "metadata", "spec"})
_ENDPOINT_NAMES = {"source": ("source", "from"), "target": ("target", "to")}

Duplicate = tuple[str, int | None]  # (key, line of the second occurrence)


class Reporter:
    """Collects diagnostics while reading."""

    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []

    def __call__(self, code: str, path: str, message: str, fix: str,
                 severity: str = "error", **details: Any) -> None:
        self.diagnostics.append(Diagnostic(code=code, message=message, path=path, fix=fix,
                                           severity=severity, details=details))


# ------------------------------------------------------------------ text -> data


class _DuplicateKeyLoader(yaml.SafeLoader):
    """A SafeLoader that records mapping keys written twice (before YAML drops one)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[Duplicate] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = (key_node.tag, key_node.value)
            if key in seen:
                self.duplicates.append((key_node.value, key_node.start_mark.line + 1))
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, source: str) -> tuple[Any, list[Duplicate]]:
    """Parse YAML text, recording duplicate keys.

    Raises:
        WorkflowLoadError: the text is not valid YAML (the message names the line).
    """
    loader: _DuplicateKeyLoader | None = None
    try:
        loader = _DuplicateKeyLoader(text)  # a control character fails right here
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise WorkflowLoadError(
            source, f"invalid YAML{where}: {problem}",
            "Fix the YAML syntax there (check indentation and quoting), then load it again.",
        ) from exc
    finally:
        if loader is not None:
            loader.dispose()
    return data, loader.duplicates


def parse_json(text: str, source: str) -> tuple[Any, list[Duplicate]]:
    """Parse JSON text, recording duplicate keys.

    Raises:
        WorkflowLoadError: the text is not valid JSON (the message names the line).
    """
    duplicates: list[Duplicate] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                duplicates.append((key, None))
            out[key] = value
        return out

    try:
        return json.loads(text, object_pairs_hook=pairs), duplicates
    except json.JSONDecodeError as exc:
        raise WorkflowLoadError(
            source, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            "Fix the JSON syntax there, then load it again.",
        ) from exc


def require_mapping(data: Any, source: str) -> Mapping[str, Any]:
    """``data`` if it is a mapping.

    Raises:
        WorkflowLoadError: the document root is not a mapping.
    """
    if not isinstance(data, Mapping):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise WorkflowLoadError(
            source, f"the document root is {kind}, not a mapping",
            "A workflow starts with `apiVersion:`, `kind:`, `metadata:` and `spec:` keys "
            "(or, for graph JSON, a `blocks` list).",
        )
    return data


# ------------------------------------------------------------------ data -> Workflow


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
    name, description = _metadata(data, report)
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
        name=name, description=description,
        api_version=None if api_version is None else str(api_version),
        kind=None if data.get("kind") is None else str(data.get("kind")),
        blocks=blocks, edges=edges, source=source, load_diagnostics=report.diagnostics,
    )


def _metadata(data: Mapping[str, Any], report: Reporter) -> tuple[str, str]:
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
    return name, description if isinstance(description, str) else ""


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
        config=_config(entry.get("config"), f"{path}.config", report), parent_id=parent,
        path=path, **layout(entry, path, report),
    )


def _config(raw: Any, path: str, report: Reporter) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        report("INVALID_CONFIG", path, f"config must be a mapping, not {type(raw).__name__}.",
               "Write `config:` followed by indented `key: value` lines.")
        return {}
    return {str(k): v for k, v in raw.items()}


def layout(entry: Mapping[str, Any], path: str, report: Reporter) -> dict[str, Any]:
    """``position``, ``width`` and ``height`` of a block entry, dropping malformed ones."""
    out: dict[str, Any] = {}
    position = entry.get("position")
    if position is not None:
        if (isinstance(position, Mapping)
                and all(_is_number(v) for v in position.values())):
            out["position"] = {str(k): float(v) for k, v in position.items()}
        else:
            report("INVALID_LAYOUT", f"{path}.position", "position must be {x: <number>, "
                   "y: <number>}; it is ignored.", "Fix or remove it.", severity="warning")
    for key in ("width", "height"):
        value = entry.get(key)
        if value is None:
            continue
        if _is_number(value):
            out[key] = float(value)
        else:
            report("INVALID_LAYOUT", f"{path}.{key}", f"{key} must be a number; it is ignored.",
                   "Fix or remove it.", severity="warning")
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


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
    return _checked_endpoint(entry.get(f"{role}_block"), entry.get(f"{role}_handle"),
                             role, f"{path}.{role}_block", report)


def _nested_endpoint(value: Any, role: str, path: str,
                     report: Reporter) -> tuple[str, str] | None:
    if isinstance(value, str):
        return _checked_endpoint(value, None, role, path, report)
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
    return _checked_endpoint(value.get("block"), value.get("handle"), role,
                             f"{path}.block", report)


def _checked_endpoint(block: Any, handle: Any, role: str, path: str,
                      report: Reporter) -> tuple[str, str] | None:
    if block is None or (isinstance(block, str) and not block):
        report("INVALID_EDGE_ENDPOINT", path, f"The {role} endpoint is missing block.",
               f"Name the {role} block id.")
        return None
    if handle is not None and not isinstance(handle, str):
        report("INVALID_EDGE_ENDPOINT", path.rsplit(".", 1)[0],
               f"The {role} handle must be a string.", "Write a handle id such as "
               "`output-json-0`.")
        return None
    return str(block), handle or ""


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


# ------------------------------------------------------------------ graph JSON

GRAPH_BLOCK_KEYS = frozenset({"id", "type", "label", "config", "parent_id", "position",
                              "position_x", "position_y", "width", "height",
                              "resolved_schemas"})


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
        if key not in GRAPH_BLOCK_KEYS:
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
        config=_config(entry.get("config"), f"{path}.config", report),
        parent_id=str(parent) if parent else None, path=path, **layout(shape, path, report),
    )


def _graph_edge(entry: Any, path: str, report: Reporter) -> EdgeDef | None:
    if not isinstance(entry, Mapping):
        report("INVALID_EDGE_ENDPOINT", path, "A graph edge must be an object.",
               "Write `{\"source\": <block id>, \"target\": <block id>, \"source_handle\": "
               "..., \"target_handle\": ...}`.")
        return None
    ends: list[tuple[str, str]] = []
    for role in ("source", "target"):
        end = _checked_endpoint(entry.get(role), entry.get(f"{role}_handle"), role,
                                f"{path}.{role}", report)
        if end is None:
            return None
        ends.append(end)
    edge_id = entry.get("id")
    return EdgeDef(source_block=ends[0][0], source_handle=ends[0][1], target_block=ends[1][0],
                   target_handle=ends[1][1], id=None if edge_id is None else str(edge_id),
                   path=path)


# ------------------------------------------------------------------ dispatch


def read_any(data: Any, source: str, duplicates: list[Duplicate] | None = None) -> Workflow:
    """Pick the format by content: declarative (``spec``/``apiVersion``) or graph (``blocks``).

    Raises:
        WorkflowLoadError: the root is not a mapping, or is neither format.
    """
    root = require_mapping(data, source)
    if "spec" in root:
        return read_declarative(root, source, duplicates)
    if isinstance(root.get("blocks"), list):
        return read_graph(root, source)
    if "apiVersion" in root:
        return read_declarative(root, source, duplicates)
    raise WorkflowLoadError(
        source, "it is neither a declarative workflow (no `apiVersion`/`spec`) nor graph "
        "JSON (no top-level `blocks` list)",
        "Start the file with `apiVersion: workflows.retab.com/v1alpha2`, `kind: Workflow`, "
        "`metadata:` and `spec:`.",
    )


def load_path(path: str | Path) -> Workflow:
    """Read a workflow file (YAML or JSON; declarative or graph).

    Raises:
        WorkflowLoadError: the file cannot be read or parsed, or is not a workflow.
    """
    file = Path(path)
    source = str(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise WorkflowLoadError(source, "the file does not exist",
                                "Check the path (it is relative to the current "
                                "directory).") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkflowLoadError(source, f"the file cannot be read ({exc})",
                                "Check that it is a readable UTF-8 text file.") from exc
    if file.suffix.lower() == ".json" or (
            file.suffix.lower() not in (".yaml", ".yml") and text.lstrip().startswith("{")):
        data, duplicates = parse_json(text, source)
    else:
        data, duplicates = parse_yaml(text, source)
    return read_any(data, source, duplicates)
