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

PyYAML composes nested collections recursively, so a document nested thousands of levels
deep (``[[[[...]]]]``) exhausts the interpreter's stack before :func:`check_expansion`
sees it. :func:`check_nesting` scans the text first and refuses flow collections
(``[`` / ``{``) nested deeper than :data:`MAX_YAML_DEPTH` outside quoted scalars and
comments; :func:`compose_within_budget` runs that scan, composes, turns a
``RecursionError`` (deep block-style nesting) into :class:`YamlBudgetExceeded` and checks
the expansion.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from engine.contracts.bounded import MAX_JSON_DEPTH

if TYPE_CHECKING:  # PyYAML is imported by the YAML documents that need it, not by JSON ones
    import yaml

#: Largest accepted number of nodes after alias expansion (scalars, sequences, mappings
#: and mapping keys all count). A workflow of 500 blocks is about 30,000.
MAX_YAML_NODES = 200_000
#: Deepest accepted nesting after expansion.
MAX_YAML_DEPTH = MAX_JSON_DEPTH + 16


#: The characters that open or close flow collections, quoted scalars and comments.
_STRUCTURE = re.compile(r"""[\[\]{}'"#\n\\]""")


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


def _deeper_than(max_depth: int) -> YamlBudgetExceeded:
    return YamlBudgetExceeded(f"the document nests deeper than {max_depth} levels")


def check_nesting(text: str, *, max_depth: int = MAX_YAML_DEPTH) -> None:
    """Refuse ``text`` when its flow collections nest deeper than ``max_depth``.

    A cheap scan that runs before PyYAML (whose composer recurses once per level): it
    counts ``[`` and ``{`` outside quoted scalars and comments. It is conservative: a
    bracket it cannot tell from a plain scalar's character counts as nesting.

    Args:
        text: the YAML document.
        max_depth: the deepest flow nesting accepted.

    Raises:
        YamlBudgetExceeded: the flow collections nest too deeply.
    """
    depth = 0
    quote = ""  # the quote character of the quoted scalar being read
    skip_to = -1  # the index up to which a comment or an escape is skipped
    for match in _STRUCTURE.finditer(text):
        at, char = match.start(), match.group()
        if at <= skip_to:
            continue
        if quote:
            if char == "\\" and quote == '"':
                skip_to = at + 1
            elif char == quote:
                if quote == "'" and text.startswith("'", at + 1):
                    skip_to = at + 1  # '' inside a single-quoted scalar
                else:
                    quote = ""
            continue
        before = text[at - 1] if at else "\n"
        if char == "#" and before in " \t\n":
            end = text.find("\n", at)
            skip_to = len(text) if end < 0 else end - 1
        elif char in "'\"" and before in " \t\n[{,:":
            quote = char
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                raise _deeper_than(max_depth)
        elif char in "]}":
            depth = max(depth - 1, 0)


def compose_within_budget(loader: Any, text: str) -> yaml.Node | None:
    """``loader.get_single_node()`` under the budget: nesting, recursion and expansion.

    Args:
        loader: a PyYAML loader built on ``text``.
        text: the document the loader reads (scanned by :func:`check_nesting` first).

    Returns:
        The composed root node (None for an empty document).

    Raises:
        YamlBudgetExceeded: too deep (by the scan or by the composer's recursion), too
            large once aliases are expanded, or recursive.
    """
    check_nesting(text)
    try:
        node = loader.get_single_node()
    except RecursionError:
        raise _deeper_than(MAX_YAML_DEPTH) from None
    check_expansion(node)
    return node
