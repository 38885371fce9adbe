"""Validation of a loaded workflow: every rule of SPEC section 1, all problems at once.

Theory of operation
-------------------
:func:`analyse` walks the workflow in phases and never stops at the first problem:

1. header: ``apiVersion`` pin (declarative input only; builder and graph forms carry
   None) and ``kind``;
2. blocks: id syntax, unique ids (children included), known and authorable type,
   ``review`` only on reviewable types, config parsed by the type's pydantic model, the
   type's own ``check()``; handles are derived from the parsed config;
3. structure: parents exist and are containers, no start block inside a container, at
   most one start block of each kind, no user id equal to a generated sentinel id;
4. edges: endpoints exist and are not notes, handles resolve (target aliases, empty
   handle = the only fitting one), kinds match, one edge per input handle, and the edge
   stays in one scope (see :data:`CONTAINERS` for the handles that cross a boundary);
5. container boundary edges the author did not write are generated;
6. cycles: after the sentinel rewrite every legal loop goes through a while_loop, so any
   cycle left is an error.

A phase skips what an earlier phase already reported (an edge to a block whose config
is invalid is not checked again), so one mistake gives one diagnostic.
"""

from __future__ import annotations

import difflib
import re
import typing
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
from pydantic import BaseModel, ValidationError

from blocks.base import BlockType
from blocks.registry import BlockRegistry
from engine.contracts.blocks import HandleKind
from engine.contracts.errors import Diagnostic
from engine.definition import API_VERSION, BlockDef, EdgeDef, Workflow

ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")
START_TYPES = ("start_document", "start_json")
FILE_MAP_METHODS = frozenset({"iterate_pages", "split_by_key"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerHandles:
    """The handles of one container kind.

    ``left_in`` (outside -> container) and ``right_out`` (container -> outside) are the
    external handles; ``left_out`` feeds the children and ``feedback`` receives from them.
    """

    left_in: str
    right_out: str
    left_out: str
    right_in: str
    feedback: tuple[str, ...]


CONTAINERS: dict[str, ContainerHandles] = {
    "for_each": ContainerHandles(left_in="fe-left-in", right_out="fe-right-out",
                                 left_out="fe-left-out", right_in="fe-right-in",
                                 feedback=("fe-right-in",)),
    "while_loop": ContainerHandles(left_in="loop-left-in", right_out="loop-right-out",
                                   left_out="loop-left-out", right_in="loop-right-in",
                                   feedback=("loop-right-in", "loop-termination")),
}
#: Inputs that accept either kind: a for_each collects files as their document refs.
ANY_KIND_INPUTS = frozenset({"fe-right-in"})


def sentinel_id(container_id: str, role: str) -> str:
    """``<container>_sentinel_start`` / ``<container>_sentinel_end``."""
    return f"{container_id}_sentinel_{role}"


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
    def spec(self) -> ContainerHandles | None:
        """The container handles, for a container block."""
        return CONTAINERS.get(self.impl.container or "") if self.impl else None

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
    """The result of :func:`analyse`: diagnostics plus what compilation needs."""

    workflow: Workflow
    registry: BlockRegistry
    diagnostics: list[Diagnostic] = field(default_factory=list)
    blocks: dict[str, BlockInfo] = field(default_factory=dict)
    edges: list[EdgeDef] = field(default_factory=list)  # resolved; generated ones last
    troubled: set[str] = field(default_factory=set)  # blocks with a reported edge problem

    def report(self, code: str, path: str, message: str, fix: str, *,
               severity: str = "error", **details: Any) -> None:
        """Record one diagnostic."""
        self.diagnostics.append(Diagnostic(code=code, message=message, path=path, fix=fix,
                                           severity=severity, details=details))

    @property
    def has_errors(self) -> bool:
        """True when at least one diagnostic is an error."""
        return any(d.severity == "error" for d in self.diagnostics)

    def rewrite(self, edge: EdgeDef) -> tuple[str, str]:
        """Source and target node ids of ``edge`` after the sentinel rewrite."""
        source, target = edge.source_block, edge.target_block
        src_spec = self.blocks[source].spec
        tgt_spec = self.blocks[target].spec
        if src_spec and edge.source_handle == src_spec.left_out:
            source = sentinel_id(source, "start")
        if tgt_spec and edge.target_handle in tgt_spec.feedback:
            target = sentinel_id(target, "end")
        return source, target


def analyse(workflow: Workflow, registry: BlockRegistry) -> Analysis:
    """Run phases 1-4 (see the module docstring) on ``workflow``.

    engine.graph then generates boundary edges (phase 5) and calls
    :func:`check_cycles` (phase 6).

    Args:
        workflow: a loaded workflow (its ``load_diagnostics`` are included).
        registry: the block types available.

    Returns:
        The analysis; ``analysis.diagnostics`` lists every problem found.
    """
    analysis = Analysis(workflow=workflow, registry=registry,
                        diagnostics=list(workflow.load_diagnostics))
    _check_header(analysis)
    _check_blocks(analysis)
    _check_structure(analysis)
    _check_edges(analysis)
    return analysis


# ------------------------------------------------------------------ header


def _check_header(a: Analysis) -> None:
    wf = a.workflow
    if wf.api_version is not None and wf.api_version != API_VERSION:
        a.report("INVALID_API_VERSION", "apiVersion",
                 f"apiVersion is {wf.api_version!r}; stepwell reads {API_VERSION!r}.",
                 f"Write `apiVersion: {API_VERSION}`.", api_version=wf.api_version)
    if wf.kind is not None and wf.kind != "Workflow":
        a.report("INVALID_KIND", "kind", f"kind is {wf.kind!r}, not 'Workflow'.",
                 "Write `kind: Workflow`.")


# ------------------------------------------------------------------ blocks


def _check_blocks(a: Analysis) -> None:
    loaded = {d.path for d in a.workflow.load_diagnostics}
    for index, block in enumerate(a.workflow.blocks):
        info = BlockInfo(block=block, index=index)
        if not ID_PATTERN.match(block.id):
            a.report("INVALID_BLOCK_ID", block.path,
                     f"Block id {block.id!r} has characters other than letters, digits, "
                     "'_' and '-'.", "Rename it, e.g. "
                     f"{re.sub(r'[^A-Za-z0-9_-]+', '_', block.id) or 'block_1'!r}.")
        first = a.blocks.get(block.id)
        if first is not None:
            a.report("DUPLICATE_BLOCK_ID", block.path,
                     f"Block id {block.id!r} is already used at {first.block.path}; ids must "
                     "be unique across the whole workflow, children included.",
                     "Rename one of them.", block_id=block.id, first_path=first.block.path)
        else:
            a.blocks[block.id] = info
        if _resolve_type(a, info, loaded):
            _parse_config(a, info)


def _resolve_type(a: Analysis, info: BlockInfo, loaded: set[str]) -> bool:
    block = info.block
    if not block.type:
        if block.path not in loaded and f"{block.path}.type" not in loaded:
            a.report("MISSING_BLOCK_TYPE", f"{block.path}.type",
                     f"Block {block.id!r} has no type.", "Set its type.")
        return False
    if block.type not in a.registry:
        known = a.registry.names()
        close = difflib.get_close_matches(block.type, known, n=1)
        hint = f"Did you mean {close[0]!r}? " if close else ""
        a.report("UNKNOWN_BLOCK_TYPE", f"{block.path}.type",
                 f"Block {block.id!r} has unknown type {block.type!r}.",
                 f"{hint}Known types: {', '.join(known)}.", type=block.type,
                 known_types=known)
        return False
    impl = a.registry.get(block.type)
    if not impl.authorable:
        a.report("BLOCK_TYPE_NOT_AUTHORABLE", f"{block.path}.type",
                 f"Block {block.id!r} has type {block.type!r}, which the engine generates "
                 "itself (loop sentinels are added for every container).",
                 "Remove the block; containers get their sentinels automatically.")
        return False
    info.impl = impl
    return True


def _parse_config(a: Analysis, info: BlockInfo) -> None:
    block, impl = info.block, info.impl
    assert impl is not None
    raw = dict(block.config)
    if "review" in raw and not impl.reviewable:
        a.report("REVIEW_NOT_SUPPORTED", f"{block.path}.config.review",
                 f"Block {block.id!r} ({block.type}) cannot be reviewed.",
                 "Remove config.review; review is available on extract, split, classifier "
                 "and split_by_key for_each blocks (or add a hil block after this one).")
        raw.pop("review")
    try:
        config = impl.parse_config(raw)
    except ValidationError as exc:
        _config_errors(a, info, exc)
        return
    info.config = config
    a.diagnostics.extend(impl.check(block, config, block.path))
    info.inputs = dict(impl.input_handles(config))
    info.outputs = dict(impl.output_handles(config))
    info.aliases = dict(impl.input_aliases(config))
    spec = info.spec
    if spec is not None:
        left_out = _left_out_kind(impl.container or "", config)
        info.inputs.setdefault(spec.left_in, left_out)
        for handle in spec.feedback:
            info.inputs.setdefault(handle, "json")
        info.outputs.setdefault(spec.right_out, "json")
        info.outputs[spec.left_out] = left_out
    info.ok = True


def _left_out_kind(kind: str, config: Any) -> HandleKind:
    method = getattr(config, "map_method", None)
    method = getattr(method, "value", method)
    return "file" if kind == "for_each" and method in FILE_MAP_METHODS else "json"


def _config_errors(a: Analysis, info: BlockInfo, exc: ValidationError) -> None:
    block, impl = info.block, info.impl
    assert impl is not None
    extras: dict[tuple[Any, ...], list[str]] = {}
    for error in exc.errors():
        loc = tuple(error["loc"])
        if error["type"] == "extra_forbidden":
            extras.setdefault(loc[:-1], []).append(str(loc[-1]))
            continue
        dotted = ".".join(str(p) for p in loc)
        where = f"config.{dotted}" if dotted else "config"
        a.report("INVALID_CONFIG", f"{block.path}.{where}",
                 f"Invalid config for {block.type!r} block {block.id!r}: {where}: "
                 f"{error['msg']}.", f"Correct {where} (see the {block.type} block "
                 "reference).", field=dotted, error_type=error["type"])
    for parent, keys in extras.items():
        valid = _valid_fields(impl.config_model, parent)
        inside = f"config.{'.'.join(map(str, parent))}" if parent else "config"
        a.report("INVALID_CONFIG_FIELD", f"{block.path}.{inside}.{keys[0]}",
                 f"Invalid config fields for {block.type!r} block {block.id!r}"
                 f"{'' if not parent else ' in ' + inside}: {', '.join(keys)}. "
                 f"Valid fields: {', '.join(valid) or '(none)'}.",
                 "Remove or rename the unknown fields.", fields=keys, valid_fields=valid)


def _valid_fields(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return []
        if isinstance(part, int):
            continue
        fields = {(f.alias or n): f for n, f in current.model_fields.items()}
        fields.update(current.model_fields)
        found = fields.get(str(part))
        current = _model_in(found.annotation) if found else None
    if current is None:
        return []
    return sorted(f.alias or n for n, f in current.model_fields.items())


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


# ------------------------------------------------------------------ structure


def _check_structure(a: Analysis) -> None:
    for info in a.blocks.values():
        _check_parent(a, info)
        spec = info.spec
        if info.impl is not None and info.impl.container and spec is None:
            a.report("UNSUPPORTED_CONTAINER", info.block.path,
                     f"Block type {info.block.type!r} declares container kind "
                     f"{info.impl.container!r}, which the engine does not know.",
                     f"Use one of: {', '.join(CONTAINERS)}.")
        if spec is not None:
            _check_sentinels(a, info)
    _check_start_counts(a)


def _check_parent(a: Analysis, info: BlockInfo) -> None:
    block = info.block
    if block.parent_id is None:
        return
    if a.registry.canonical(block.type) in START_TYPES:
        a.report("START_BLOCK_IN_CONTAINER", block.path,
                 f"Start block {block.id!r} is inside container {block.parent_id!r}.",
                 "Move it to the top level; feed the container through its left-in handle.")
    parent = a.blocks.get(block.parent_id)
    if parent is None:
        a.report("UNKNOWN_PARENT_BLOCK", block.path,
                 f"Block {block.id!r} names parent {block.parent_id!r}, which does not exist.",
                 "Nest the block under an existing for_each or while_loop.")
        return
    if parent.impl is not None and parent.spec is None:
        a.report("PARENT_NOT_CONTAINER", block.path,
                 f"Block {block.id!r} is a child of {parent.id!r} ({parent.block.type}), "
                 "which is not a container.",
                 "Only for_each and while_loop blocks have children; move it out.")
    seen = {block.id}
    current: str | None = block.parent_id
    while current is not None and current in a.blocks:
        if current in seen:
            a.report("PARENT_CYCLE", block.path,
                     f"Block {block.id!r} is (indirectly) its own parent.",
                     "Give the containers a tree shape.")
            return
        seen.add(current)
        current = a.blocks[current].block.parent_id


def _check_sentinels(a: Analysis, info: BlockInfo) -> None:
    kind = info.impl.container if info.impl else None
    for role in ("start", "end"):
        sid = sentinel_id(info.id, role)
        if sid in a.blocks:
            a.troubled.add(info.id)  # generating its boundary edges would add noise
            a.report("RESERVED_BLOCK_ID", a.blocks[sid].block.path,
                     f"Block id {sid!r} is reserved for the {role} sentinel of container "
                     f"{info.id!r}.", "Rename the block.", block_id=sid)
        if f"{kind}_sentinel_{role}" not in a.registry:
            a.report("MISSING_SENTINEL_TYPE", info.block.path,
                     f"The registry has no {kind}_sentinel_{role} type, needed to run "
                     f"container {info.id!r}.",
                     "Use blocks.registry.default_registry(), or register the sentinels.")


def _check_start_counts(a: Analysis) -> None:
    for start_type in START_TYPES:
        found = [i for i in a.blocks.values()
                 if i.impl is not None and a.registry.canonical(i.block.type) == start_type]
        if len(found) > 1:
            ids = [i.id for i in found]
            a.report("MULTIPLE_START_BLOCKS", found[1].block.path,
                     f"The workflow has {len(found)} {start_type} blocks ({', '.join(ids)}); "
                     "at most one is allowed.",
                     f"Keep one {start_type} block and connect everything that needs its "
                     "input to it.", block_ids=ids)


# ------------------------------------------------------------------ edges


def _check_edges(a: Analysis) -> None:
    fed: dict[tuple[str, str], EdgeDef] = {}
    for edge in a.workflow.edges:
        if edge.generated:
            continue  # a compiled copy: boundary edges are generated again
        resolved = _check_edge(a, edge)
        if resolved is None:
            a.troubled.update((edge.source_block, edge.target_block))
            continue
        key = (resolved.target_block, resolved.target_handle)
        first = fed.get(key)
        if first is not None:
            a.report("DUPLICATE_INPUT_EDGE", edge.path,
                     f"Input handle {key[0]}.{key[1]} already has an edge ({first.path}); "
                     "each input handle accepts only one connection.",
                     "Remove one of the edges, or combine the values with a merge_dicts "
                     "block first.", block=key[0], handle=key[1], first_path=first.path)
            a.troubled.add(key[0])
            continue
        fed[key] = resolved
        a.edges.append(resolved)


def _check_edge(a: Analysis, edge: EdgeDef) -> EdgeDef | None:
    src = _endpoint(a, edge, "source")
    tgt = _endpoint(a, edge, "target")
    # a written handle is checked even when the other end has its own problem
    sh = _explicit_source(a, edge, src) if src and edge.source_handle else ""
    th = _explicit_target(a, edge, tgt) if tgt and edge.target_handle else ""
    if src is None or tgt is None or sh is None or th is None:
        return None
    if not sh:
        sh = _default_handle(a, edge, src, tgt, "source", tgt.inputs.get(th))
    if not th and sh:
        th = _default_handle(a, edge, tgt, src, "target", src.outputs.get(sh))
    if not sh or not th:
        return None
    kinds_ok = _check_kinds(a, edge, src, sh, tgt, th)
    if not _check_scope(a, edge, src, sh, tgt, th) or not kinds_ok:
        return None
    return edge.model_copy(update={"source_handle": sh, "target_handle": th})


def _endpoint(a: Analysis, edge: EdgeDef, role: str) -> BlockInfo | None:
    block_id = edge.source_block if role == "source" else edge.target_block
    info = a.blocks.get(block_id)
    path = f"{edge.path}.{role}.block"
    if info is None:
        close = difflib.get_close_matches(block_id, list(a.blocks), n=1)
        hint = f"Did you mean {close[0]!r}? " if close else ""
        a.report("UNKNOWN_BLOCK_REFERENCE", path,
                 f"Edge references a missing block: {role} {block_id!r} does not exist.",
                 f"{hint}Use a block id from spec.blocks.", block=block_id)
        return None
    if not info.executes:
        a.report("NOTE_CONNECTED", path,
                 f"Block {block_id!r} is a {info.block.type}; it has no handles and cannot "
                 "be connected.", "Remove the edge; notes are annotations only.",
                 block=block_id)
        return None
    return info if info.ok else None  # its own problem is already reported


def _explicit_source(a: Analysis, edge: EdgeDef, src: BlockInfo) -> str | None:
    handle = edge.source_handle
    if handle in src.outputs:
        return handle
    available = sorted(src.outputs)
    near = [h for h in available
            if h.lower() == handle.lower() or h.split("-", 2)[-1] == handle]
    path = f"{edge.path}.source.handle"
    if near:
        a.report("INVALID_EDGE_HANDLE", path,
                 f"Source handle {handle!r} must be an exact runtime handle id.",
                 f"Write {near[0]!r}.", handle=handle, available_handles=available)
    else:
        a.report("UNKNOWN_OUTPUT_HANDLE", path,
                 f"Block {src.id!r} has no output handle {handle!r}.",
                 f"Use one of: {', '.join(available) or '(it has no outputs)'}.",
                 handle=handle, available_handles=available)
    return None


def _explicit_target(a: Analysis, edge: EdgeDef, tgt: BlockInfo) -> str | None:
    handle = edge.target_handle
    if handle in tgt.inputs:
        return handle
    alias = tgt.aliases.get(handle)
    if alias in tgt.inputs:
        return alias
    available = sorted(tgt.inputs)
    a.report("UNKNOWN_INPUT_HANDLE", f"{edge.path}.target.handle",
             f"Block {tgt.id!r} has no input handle {handle!r}.",
             f"Use one of: {', '.join(available) or '(it has no inputs)'}.",
             handle=handle, available_handles=available, aliases=dict(tgt.aliases))
    return None


def _default_handle(a: Analysis, edge: EdgeDef, info: BlockInfo, peer: BlockInfo, role: str,
                    peer_kind: HandleKind | None) -> str:
    """The only fitting handle of ``info`` for an edge that names none, or '' (reported)."""
    handles = info.outputs if role == "source" else info.inputs
    spec = info.spec
    if spec is not None:
        inside = peer.block.parent_id == info.id
        if role == "source":
            options = [spec.left_out if inside else spec.right_out]
        else:
            options = list(spec.feedback) if inside else [spec.left_in]
    else:
        options = list(handles)
    if len(options) > 1 and peer_kind is not None:
        options = [h for h in options if handles[h] == peer_kind] or options
    if len(options) == 1:
        return options[0]
    side = "output" if role == "source" else "input"
    code = "MISSING_EDGE_HANDLE" if options else f"UNKNOWN_{side.upper()}_HANDLE"
    problem = (f"several {side} handles ({', '.join(options)})" if options
               else f"no {side} handles")
    a.report(code, f"{edge.path}.{role}.handle",
             f"The edge names no {role} handle and block {info.id!r} has {problem}.",
             f"Add `handle: <one of {', '.join(options)}>` to the {role} endpoint."
             if options else "Remove the edge.", available_handles=options)
    return ""


def _check_kinds(a: Analysis, edge: EdgeDef, src: BlockInfo, sh: str, tgt: BlockInfo,
                 th: str) -> bool:
    out_kind, in_kind = src.outputs[sh], tgt.inputs[th]
    if out_kind == in_kind or (tgt.spec is not None and th in ANY_KIND_INPUTS):
        return True
    a.report("HANDLE_KIND_MISMATCH", edge.path,
             f"Edge connects a {out_kind} output ({src.id}.{sh}) to a {in_kind} input "
             f"({tgt.id}.{th}); files connect to files and JSON to JSON.",
             f"Connect {src.id}.{sh} to a {out_kind} input"
             + (" (a parse block turns a file into JSON)." if out_kind == "file" else "."),
             source_kind=out_kind, target_kind=in_kind)
    return False


def endpoint_scope(info: BlockInfo, handle: str, role: str) -> str | None:
    """The scope an edge endpoint lives in: a container's inner handles are inside it."""
    spec = info.spec
    if spec is not None and (
            (role == "source" and handle == spec.left_out)
            or (role == "target" and handle in spec.feedback)):
        return info.id
    return info.block.parent_id


def _check_scope(a: Analysis, edge: EdgeDef, src: BlockInfo, sh: str, tgt: BlockInfo,
                 th: str) -> bool:
    outer, inner = endpoint_scope(src, sh, "source"), endpoint_scope(tgt, th, "target")
    if outer == inner:
        return True

    def where(scope: str | None) -> str:
        return "at the top level" if scope is None else f"inside {scope!r}"

    a.report("CONTAINER_BOUNDARY", edge.path,
             f"Edge {src.id}.{sh} -> {tgt.id}.{th} crosses a container boundary: its source "
             f"is {where(outer)} and its target {where(inner)}.",
             "Enter a container only through its fe-left-in/loop-left-in handle and leave "
             "it through fe-right-out/loop-right-out. Inside, children connect to siblings, "
             "receive from fe-left-out/loop-left-out and send to fe-right-in/loop-right-in/"
             "loop-termination.", source_scope=outer, target_scope=inner)
    return False


# ------------------------------------------------------------------ cycles


def check_cycles(a: Analysis) -> None:
    """Report every cycle left after the sentinel rewrite (phase 6), with its path."""
    graph: nx.DiGraph = nx.DiGraph()
    for edge in a.edges:
        source, target = a.rewrite(edge)
        graph.add_edge(source, target, path=edge.path)
    order = {block_id: info.index for block_id, info in a.blocks.items()}
    components = [c for c in nx.strongly_connected_components(graph)
                  if len(c) > 1 or graph.has_edge(next(iter(c)), next(iter(c)))]
    for component in sorted(components, key=lambda c: min(order.get(n, 0) for n in c)):
        start = min(component, key=lambda n: order.get(n, 0))
        cycle = nx.find_cycle(graph.subgraph(component), source=start)
        nodes = [u for u, _ in cycle] + [cycle[0][0]]
        a.report("CYCLE", graph.edges[cycle[0]]["path"],
                 f"Cycle outside a loop container: {' -> '.join(nodes)}.",
                 "Remove one of these edges. To repeat blocks, put them in a while_loop and "
                 "feed the next round through loop-right-in.", cycle=nodes)
