"""The handles of the loop container kinds, and the sentinel rewrite of an edge.

A container kind (``for_each``, ``while_loop``) is engine knowledge: the scheduler runs
its iterations (engine.iteration). A block type declares which kind it is through
``BlockType.container``; the handles of each kind are listed here, once, for
validation, compilation and rendering.
"""

from __future__ import annotations

from engine.contracts.blocks import SentinelRole, sentinel_id
from engine.contracts.definition import EdgeDef
from engine.contracts.frozen import record


@record
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


def sentinel_type(kind: str, role: SentinelRole) -> str:
    """The registry name of a container kind's sentinel type.

    Args:
        kind: the container kind (``for_each``, ``while_loop``).
        role: which boundary the sentinel stands for.

    Returns:
        ``<kind>_sentinel_<role>``, e.g. ``for_each_sentinel_start``.
    """
    return f"{kind}_sentinel_{role.value}"


def sentinel_ends(edge: EdgeDef, source_kind: str | None,
                  target_kind: str | None) -> tuple[str, str]:
    """Source and target node ids of ``edge`` after the sentinel rewrite.

    A container's ``left_out`` is sent by its sentinel start; its feedback handles are
    received by its sentinel end; every other endpoint stays as written.

    Args:
        edge: an edge between blocks.
        source_kind, target_kind: the container kind of each endpoint, or None.

    Returns:
        ``(source node id, target node id)``.
    """
    source, target = edge.source_block, edge.target_block
    src_spec = CONTAINERS.get(source_kind or "")
    tgt_spec = CONTAINERS.get(target_kind or "")
    if src_spec is not None and edge.source_handle == src_spec.left_out:
        source = sentinel_id(source, SentinelRole.START)
    if tgt_spec is not None and edge.target_handle in tgt_spec.feedback:
        target = sentinel_id(target, SentinelRole.END)
    return source, target
