"""Validation of edges (phase 4) and of cycles (phase 6); see engine.validation.

An edge is checked end to end: its blocks exist and are not notes, its handles resolve
(target aliases, an empty handle is the only fitting one), the kinds match, each input
handle has one edge, and the edge stays in one scope (a container's inner handles are
inside it). After boundary edges are generated, :func:`check_unfed` reports blocks that
nothing feeds and :func:`check_cycles` every cycle left by the sentinel rewrite: a legal
loop always goes through a while_loop.
"""

from __future__ import annotations

from engine.analysis import Analysis, BlockInfo
from engine.containers import ANY_KIND_INPUTS
from engine.contracts.blocks import HandleKind
from engine.contracts.definition import EdgeDef


def check_edges(a: Analysis) -> None:
    """Resolve and check every authored edge (phase 4); keep the good ones in ``a.edges``.

    Args:
        a: the analysis of phases 1-3; diagnostics and resolved edges are added to it.
    """
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
            a.duplicates.append(resolved)
            continue
        fed[key] = resolved
        a.edges.append(resolved)


def check_unfed(a: Analysis) -> None:
    """Report every block that has input handles but no incoming edge (after phase 5).

    Such a block would start with nothing on its inputs and fail at run time (``received
    nothing on 'input-json-0'``); a draft that deleted the block upstream of it must not
    validate or publish. Start blocks, notes and block types marked ``runs_unfed``
    (``api_call``) are left out, and nothing is reported while other errors stand (a
    misplaced edge or a bad block would be echoed as "not connected").

    Args:
        a: the analysis after boundary edges were generated.
    """
    if a.has_errors:
        return  # the structure is wrong already: "not connected" would mostly echo that
    fed = {edge.target_block for edge in a.edges}
    fed.update(edge.target_block for edge in a.duplicates)
    for info in a.blocks.values():
        impl = info.impl
        if (not info.ok or impl is None or not impl.executes or impl.role.is_start
                or impl.runs_unfed or info.id in fed or info.id in a.troubled):
            continue
        handles = list(impl.input_handles(info.config))
        if not handles:
            continue
        a.report("BLOCK_NOT_CONNECTED", info.block.path,
                 f"Block {info.id!r} ({info.block.type}) has no incoming edge, so it would "
                 f"run with nothing on {', '.join(handles)}.",
                 f"Connect an edge to {handles[0]!r} (from a start block or an upstream "
                 "block), or remove the block.", block=info.id, handles=handles)


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
        import difflib  # here: only a dangling edge needs suggestions

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


def _endpoint_scope(info: BlockInfo, handle: str, role: str) -> str | None:
    """The scope an edge endpoint lives in: a container's inner handles are inside it."""
    spec = info.spec
    if spec is not None and (
            (role == "source" and handle == spec.left_out)
            or (role == "target" and handle in spec.feedback)):
        return info.id
    return info.block.parent_id


def _check_scope(a: Analysis, edge: EdgeDef, src: BlockInfo, sh: str, tgt: BlockInfo,
                 th: str) -> bool:
    outer, inner = _endpoint_scope(src, sh, "source"), _endpoint_scope(tgt, th, "target")
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
    """Report every cycle left after the sentinel rewrite (phase 6), with its path.

    Args:
        a: the analysis, boundary edges generated; a ``CYCLE`` diagnostic is added per
            strongly connected component, in block order.
    """
    successors: dict[str, set[str]] = {}
    waiting: dict[str, int] = {}
    for edge in a.edges + a.duplicates:  # a duplicate edge can close a cycle too
        source, target = a.rewrite(edge)
        targets = successors.setdefault(source, set())
        if target not in targets:
            targets.add(target)
            waiting[target] = waiting.get(target, 0) + 1
            waiting.setdefault(source, 0)
    free = [node for node, count in waiting.items() if not count]
    placed = 0
    while free:  # Kahn: every node gets placed exactly when the graph has no cycle
        placed += 1
        for target in successors.get(free.pop(), ()):
            waiting[target] -= 1
            if not waiting[target]:
                free.append(target)
    if placed < len(waiting):
        _report_cycles(a)


def _report_cycles(a: Analysis) -> None:
    """One ``CYCLE`` diagnostic per strongly connected component (networkx, only here)."""
    import networkx as nx

    graph: nx.DiGraph = nx.DiGraph()
    for edge in a.edges + a.duplicates:
        source, target = a.rewrite(edge)
        if not graph.has_edge(source, target):
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
