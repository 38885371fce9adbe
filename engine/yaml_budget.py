"""The expansion budget of YAML documents: count what aliases expand to, not the aliases.

A YAML alias (``*name``) reuses an anchored node. The parsed data shares that node, so a
few hundred bytes can describe billions of values (the "billion laughs"): harmless while
shared, ruinous once anything walks, copies or serialises the data. Counting aliases does
not bound that (nine nested aliases of nine items each are 387 million values).

:func:`check_expansion` walks the composed node graph once, memoising each node's
expanded size and depth, and refuses the document when the fully expanded tree would
exceed :data:`MAX_YAML_NODES` nodes or :data:`MAX_YAML_DEPTH` levels, or when an alias
refers to a node that contains it (a recursive structure JSON cannot hold). It runs
between composing and constructing, so nothing is built from a refused document; its
cost is linear in the number of distinct nodes written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.contracts.bounded import MAX_JSON_DEPTH

if TYPE_CHECKING:  # PyYAML is imported by the YAML documents that need it, not by JSON ones
    import yaml

#: Largest accepted number of nodes after alias expansion (scalars, sequences, mappings
#: and mapping keys all count). A workflow of 500 blocks is about 30,000.
MAX_YAML_NODES = 200_000
#: Deepest accepted nesting after expansion.
MAX_YAML_DEPTH = MAX_JSON_DEPTH + 16


class YamlBudgetExceeded(ValueError):
    """The document expands past the budget; ``problem`` says how."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(problem)


def _children(node: yaml.Node, sequence: type[yaml.Node], mapping: type[yaml.Node]
              ) -> list[yaml.Node]:
    if isinstance(node, sequence):
        return list(node.value)
    if isinstance(node, mapping):
        return [part for pair in node.value for part in pair]
    return []


def check_expansion(root: yaml.Node | None, *, max_nodes: int = MAX_YAML_NODES,
                    max_depth: int = MAX_YAML_DEPTH) -> int:
    """Refuse a composed document whose expansion is too large, deep or recursive.

    Args:
        root: the node from ``loader.get_single_node()`` (None for an empty document).
        max_nodes: the largest expanded size accepted.
        max_depth: the deepest expanded nesting accepted.

    Returns:
        The expanded node count.

    Raises:
        YamlBudgetExceeded: with the reason and the limit that was passed.
    """
    if root is None:
        return 0
    from yaml import MappingNode, SequenceNode

    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            kids = _children(node, SequenceNode, MappingNode)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            open_nodes.discard(key)
            if size[key] > max_nodes:
                raise YamlBudgetExceeded(
                    f"the document expands to more than {max_nodes:,} nodes once its "
                    "aliases (*name) are resolved")
            if depth[key] > max_depth:
                raise YamlBudgetExceeded(f"the document nests deeper than {max_depth} levels")
            continue
        if key in size:
            continue
        if key in open_nodes:
            raise YamlBudgetExceeded("an alias (*name) refers to a node that contains it")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((kid, False) for kid in _children(node, SequenceNode, MappingNode)
                     if id(kid) not in size)
    return size[id(root)]
