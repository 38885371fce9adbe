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

Validation (engine.validation) collects every problem, never stopping at the first, as
Diagnostics; :func:`compile_workflow` raises them all in one
:class:`~engine.contracts.errors.WorkflowValidationError`.

Boundary edges
--------------
A container whose ``fe-left-out`` (``loop-left-out``) has no edge gets one to each *entry
child* (no incoming sibling edge), on that child's only unconnected input of the
left-out kind (``input-<kind>-0`` or ``input-file-document`` when there are several).
A container whose ``fe-right-in`` (``loop-right-in``) has no edge gets one from its *exit
child* (no outgoing sibling edge), from ``output-json-0`` or its only output.
``loop-termination`` is never generated. When the choice is not clear the author is
asked to write the edge (``AMBIGUOUS_BOUNDARY_EDGE``). Generated edges are marked
``generated=True`` and appended to ``CompiledGraph.workflow.edges``.
"""

from __future__ import annotations

import heapq
import threading
from collections import OrderedDict
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from engine.analysis import Analysis, BlockInfo
from engine.compiled import CompiledGraph, Edge, Node
from engine.containers import ANY_KIND_INPUTS, sentinel_type
from engine.contracts.blocks import HandleKind, SentinelRole, sentinel_id
from engine.contracts.definition import EdgeDef
from engine.contracts.errors import Diagnostic, WorkflowValidationError
from engine.edge_rules import check_cycles, check_unfed
from engine.mermaid import to_mermaid
from engine.validation import analyse

if TYPE_CHECKING:
    from blocks.registry import BlockRegistry
    from engine.definition import Workflow

#: Node, Edge and CompiledGraph live in engine.compiled (light enough for the scheduler);
#: to_mermaid lives in engine.mermaid. They are re-exported here for one release.
__all__ = ["CompiledGraph", "Edge", "Node", "compile_shared", "compile_workflow", "to_mermaid",
           "validate_workflow"]


# ------------------------------------------------------------------ public API


def validate_workflow(workflow: Workflow, registry: BlockRegistry) -> list[Diagnostic]:
    """Every problem of ``workflow`` (errors and warnings); empty when it is clean.

    Args:
        workflow: a loaded workflow.
        registry: the block types available.

    Returns:
        The diagnostics, load problems first, in a stable order.
    """
    return _analysis(workflow, registry).diagnostics


def compile_workflow(workflow: Workflow, registry: BlockRegistry) -> CompiledGraph:
    """Validate ``workflow`` and compile it into the graph the scheduler walks.

    Args:
        workflow: a loaded workflow.
        registry: the block types available (sentinel types included).

    Returns:
        The compiled graph (see the module docstring for the sentinel rewrite).

    Raises:
        WorkflowValidationError: the workflow has errors; every one is listed.
    """
    analysis = _analysis(workflow, registry)
    if analysis.has_errors:
        raise WorkflowValidationError(analysis.diagnostics, source=workflow.source)
    return _build(analysis)


def compile_shared(workflow: Workflow, registry: BlockRegistry) -> CompiledGraph:
    """:func:`compile_workflow` once per definition and block types, per process.

    Runs of one workflow (a server, a worker, a test suite, the bench) share one compiled
    graph, and with it the caches that blocks keep per config (schema validators, input
    models). The key is the workflow's JSON form (every field, labels included); a
    workflow whose config holds a value JSON cannot is compiled each time, and so is one
    whose loading found errors. ``NaN`` and infinities are written ``null`` in that form,
    as ``None`` is: a workflow differing from a compiled one only there gets its graph. A hit also
    needs the registry to resolve every type the graph uses to the same block type: the
    same instance, or an instance of the same class that holds no state of its own. The
    graph is compiled from a private copy of ``workflow``, so editing the
    workflow later changes nothing here; callers treat the graph as read-only (the run
    path does: :func:`engine.launch.stand_ins` copies before it changes anything).
    Its ``memo`` carries the definition (``to_dict``) for the run row.

    Raises:
        WorkflowValidationError: the workflow has errors (nothing is cached).
    """
    key = _shared_key(workflow)
    if key is None or any(d.severity == "error" for d in workflow.load_diagnostics):
        # a config value JSON cannot hold; or what loading it found wrong, which the key
        # (its JSON form) does not hold: compile_workflow reports it
        return compile_workflow(workflow, registry)
    with _SHARED_LOCK:
        for graph, used in _SHARED.get(key, ()):
            if all(_same_type(registry, name, impl) for name, impl in used):
                _SHARED.move_to_end(key)
                return graph
    graph = compile_workflow(workflow.model_copy(deep=True), registry)
    graph.memo["definition"] = graph.workflow.to_dict()
    used = tuple({(n.type, n.impl) for n in graph.nodes.values()})
    with _SHARED_LOCK:
        _SHARED.setdefault(key, []).append((graph, used))
        _SHARED.move_to_end(key)
        while len(_SHARED) > _SHARED_LIMIT:
            _SHARED.popitem(last=False)
    return graph


def _shared_key(workflow: Workflow) -> bytes | None:
    """:func:`compile_shared`'s key: every field of the workflow, its blocks and its
    edges, as orjson writes them (five times faster than ``model_dump_json`` on a
    1,000-block workflow, which cost a chain 2 us per step). A value orjson refuses (an
    integer beyond 64 bits, a mapping with keys that are not strings, an object) falls
    back to ``model_dump_json``; None when that fails too."""
    import orjson

    try:
        return orjson.dumps((_getter(type(workflow), _NESTED)(workflow),
                             _rows(workflow.blocks), _rows(workflow.edges)))
    except TypeError:
        pass
    try:
        return workflow.model_dump_json().encode()
    except ValueError:
        return None


def _rows(models: list[Any]) -> list[Any]:
    """The field values of each of ``models`` (blocks or edges), in order."""
    if not models:
        return []
    kind = type(models[0])
    if all(type(m) is kind for m in models):
        return list(map(_getter(kind), models))
    return [_getter(type(m))(m) for m in models]


#: The workflow's fields its key spells out itself.
_NESTED = frozenset({"blocks", "edges"})
_NOTHING: frozenset[str] = frozenset()
#: A getter of every dumped field (not excluded) of a model, by class and fields left out.
_GETTERS: dict[tuple[type, frozenset[str]], Any] = {}


def _getter(cls: type, leave: frozenset[str] = _NOTHING) -> Any:
    """A function of a ``cls`` model returning its dumped fields (those not excluded and
    not in ``leave``), as a tuple."""
    getter = _GETTERS.get((cls, leave))
    if getter is None:
        names = [name for name, info in cls.model_fields.items()  # type: ignore[attr-defined]
                 if not info.exclude and name not in leave]
        whole = attrgetter(*names)
        getter = _GETTERS[(cls, leave)] = (whole if len(names) > 1
                                           else lambda model: (whole(model),))
    return getter


#: :func:`compile_shared`'s graphs by definition, least recently used first.
_SHARED: OrderedDict[bytes, list[tuple[CompiledGraph, tuple[Any, ...]]]] = OrderedDict()
_SHARED_LIMIT = 32
_SHARED_LOCK = threading.Lock()


def _same_type(registry: BlockRegistry, name: str, impl: Any) -> bool:
    """True when ``registry`` runs type ``name`` with ``impl`` or an equivalent of it."""
    if name not in registry:
        return False
    found = registry.get(name)
    return found is impl or (type(found) is type(impl) and not _state(found)
                             and not _state(impl))


def _state(impl: Any) -> bool:
    """True unless ``impl`` provably holds no instance state (an empty ``__dict__``)."""
    try:
        return bool(vars(impl)) or bool(getattr(type(impl), "__slots__", ()))
    except TypeError:
        return True


def _analysis(workflow: Workflow, registry: BlockRegistry) -> Analysis:
    analysis = analyse(workflow, registry)
    _generate_boundary_edges(analysis)
    check_unfed(analysis)
    check_cycles(analysis)
    return analysis


# ------------------------------------------------------------------ boundary edges


def _generate_boundary_edges(a: Analysis) -> None:
    for info in list(a.blocks.values()):
        spec = info.spec
        if spec is None or not info.ok:
            continue
        children = [c for c in a.blocks.values()
                    if c.block.parent_id == info.id and c.executes]
        if not children:
            a.report("EMPTY_CONTAINER", info.block.path,
                     f"Container {info.id!r} has no children, so it does nothing.",
                     "Add children under `children:`, or remove the container.",
                     severity="warning")
            continue
        if info.id in a.troubled or any(not c.ok or c.id in a.troubled for c in children):
            continue  # the problems around it are reported; guessing would add noise
        ids = {c.id for c in children}
        sibling = [e for e in a.edges if e.source_block in ids and e.target_block in ids]
        if not any(e.source_block == info.id and e.source_handle == spec.left_out
                   for e in a.edges):
            _generate_entry_edges(a, info, children, sibling)
        if not any(e.target_block == info.id and e.target_handle == spec.right_in
                   for e in a.edges):
            _generate_exit_edge(a, info, children, sibling)


def _generate_entry_edges(a: Analysis, info: BlockInfo, children: list[BlockInfo],
                          sibling: list[EdgeDef]) -> None:
    spec = info.spec
    assert spec is not None
    kind = info.outputs[spec.left_out]
    fed = {(e.target_block, e.target_handle) for e in a.edges}
    for child in children:
        inputs = child.outer_inputs
        if not inputs or any(e.target_block == child.id for e in sibling):
            continue
        free = [h for h, k in inputs.items() if k == kind and (child.id, h) not in fed]
        preferred = [h for h in (f"input-{kind}-0", "input-file-document") if h in free]
        pick = free[0] if len(free) == 1 else (preferred[0] if preferred else None)
        if pick is None:
            found = f"several: {', '.join(free)}" if free else f"no free {kind} input"
            _ambiguous(a, info, f"entry child {child.id!r} has {found} to receive "
                       f"{spec.left_out} ({kind})",
                       f"source: {{block: {info.id}, handle: {spec.left_out}}}, "
                       f"target: {{block: {child.id}, handle: <input>}}")
            continue
        a.edges.append(EdgeDef(source_block=info.id, source_handle=spec.left_out,
                               target_block=child.id, target_handle=pick,
                               path=info.block.path, generated=True))


def _generate_exit_edge(a: Analysis, info: BlockInfo, children: list[BlockInfo],
                        sibling: list[EdgeDef]) -> None:
    spec = info.spec
    assert spec is not None
    exits = [c for c in children
             if c.outer_outputs and not any(e.source_block == c.id for e in sibling)]
    write = (f"source: {{block: <child>, handle: <output>}}, "
             f"target: {{block: {info.id}, handle: {spec.right_in}}}")
    if len(exits) != 1:
        if exits:
            _ambiguous(a, info, f"it has several exit children "
                       f"({', '.join(c.id for c in exits)}) for {spec.right_in}", write)
        return
    child = exits[0]
    outputs = [h for h, k in child.outer_outputs.items()
               if k == "json" or spec.right_in in ANY_KIND_INPUTS]
    pick = ("output-json-0" if "output-json-0" in outputs
            else outputs[0] if len(outputs) == 1 else None)
    if pick is None:
        found = f"several outputs: {', '.join(outputs)}" if outputs else "no JSON output"
        _ambiguous(a, info, f"exit child {child.id!r} has {found} for {spec.right_in}", write)
        return
    a.edges.append(EdgeDef(source_block=child.id, source_handle=pick, target_block=info.id,
                           target_handle=spec.right_in, path=info.block.path, generated=True))


def _ambiguous(a: Analysis, info: BlockInfo, problem: str, write: str) -> None:
    a.report("AMBIGUOUS_BOUNDARY_EDGE", info.block.path,
             f"Cannot generate the boundary edge of container {info.id!r}: {problem}.",
             f"Write the edge yourself: `{write}`.", container=info.id)


# ------------------------------------------------------------------ build


def _build(a: Analysis) -> CompiledGraph:
    nodes: dict[str, Node] = {}
    keys: dict[str, tuple[int, int]] = {}
    for info in a.blocks.values():
        if not info.executes:
            continue
        nodes[info.id] = _node(info)
        keys[info.id] = (0, info.index)
        if info.spec is not None:
            for role, rank in ((SentinelRole.START, -1), (SentinelRole.END, 1)):
                sentinel = _sentinel(a, info, role)
                nodes[sentinel.id] = sentinel
                keys[sentinel.id] = (rank, info.index)
    edges = []
    for edge in a.edges:
        source, target = a.rewrite(edge)
        edges.append(Edge(source=source, source_handle=edge.source_handle, target=target,
                          target_handle=edge.target_handle))
    incoming: dict[str, dict[str, Edge]] = {}
    outgoing: dict[str, dict[str, list[Edge]]] = {}
    for e in edges:
        incoming.setdefault(e.target, {})[e.target_handle] = e
        outgoing.setdefault(e.source, {}).setdefault(e.source_handle, []).append(e)
    generated = [e for e in a.edges if e.generated]
    authored = [e for e in a.workflow.edges if not e.generated]
    workflow = a.workflow.model_copy(update={"edges": authored + generated})
    return CompiledGraph(workflow=workflow, nodes=nodes, incoming=incoming, outgoing=outgoing,
                         members=_members(nodes, edges, keys),
                         input_schemas=_input_schemas(nodes, incoming))


def _node(info: BlockInfo) -> Node:
    impl = info.impl
    assert impl is not None
    # a container keeps its outer handles; the inner ones belong to its sentinels
    return Node(id=info.id, type=info.block.type, label=info.block.display_label,
                parent=info.block.parent_id, config=info.config, impl=impl,
                inputs=dict(info.outer_inputs), outputs=dict(info.outer_outputs),
                join=impl.join, unfired_reason=impl.unfired_reason, role=impl.role,
                container=impl.container)


def _sentinel(a: Analysis, info: BlockInfo, role: SentinelRole) -> Node:
    spec, kind = info.spec, info.container_kind
    assert spec is not None and kind is not None
    impl = a.registry.get(sentinel_type(kind, role))
    sid = sentinel_id(info.id, role)
    if role is SentinelRole.START:
        inputs: dict[str, HandleKind] = {}
        outputs: dict[str, HandleKind] = {spec.left_out: info.outputs[spec.left_out]}
    else:
        inputs = {h: info.inputs[h] for h in spec.feedback}
        outputs = {}
    return Node(id=sid, type=sentinel_type(kind, role), label=sid, parent=info.id,
                config=info.config, impl=impl, inputs=inputs, outputs=outputs,
                join=impl.join, unfired_reason=impl.unfired_reason, role=impl.role,
                sentinel_of=info.id, sentinel_role=role)


def _members(nodes: dict[str, Node], edges: list[Edge],
             keys: dict[str, tuple[int, int]]) -> dict[str | None, tuple[str, ...]]:
    """Each scope's node ids in topological order, ties broken by ``keys`` (block order).

    Kahn's algorithm with a heap: of the nodes whose predecessors are all placed, the
    one with the smallest key comes next (networkx's lexicographical topological sort,
    without building a graph object per scope). Validation has rejected cycles.
    """
    scopes: dict[str | None, list[str]] = {}
    for node in nodes.values():
        scopes.setdefault(node.parent, []).append(node.id)
        if node.container:
            scopes.setdefault(node.id, [])
    successors: dict[str, set[str]] = {}
    waiting = dict.fromkeys(nodes, 0)
    for edge in edges:  # validation guarantees both ends share a scope
        targets = successors.setdefault(edge.source, set())
        if edge.target not in targets:
            targets.add(edge.target)
            waiting[edge.target] += 1
    out: dict[str | None, tuple[str, ...]] = {}
    for scope, members in scopes.items():
        heap = [(keys[m], m) for m in members if not waiting[m]]
        heapq.heapify(heap)
        order: list[str] = []
        while heap:
            _key, node_id = heapq.heappop(heap)
            order.append(node_id)
            for target in successors.get(node_id, ()):
                waiting[target] -= 1
                if not waiting[target]:
                    heapq.heappush(heap, (keys[target], target))
        out[scope] = tuple(order)
    return out


def _input_schemas(nodes: dict[str, Node], incoming: dict[str, dict[str, Edge]]
                   ) -> dict[str, dict[str, dict[str, Any] | None]]:
    schemas: dict[str, dict[str, dict[str, Any] | None]] = {}
    for node in nodes.values():
        per_handle: dict[str, dict[str, Any] | None] = {}
        for handle in node.inputs:
            edge = incoming.get(node.id, {}).get(handle)
            upstream = nodes[edge.source] if edge else None
            per_handle[handle] = (upstream.impl.output_schema(upstream.config,
                                                              edge.source_handle)
                                  if upstream is not None and edge is not None else None)
        schemas[node.id] = per_handle
    return schemas
