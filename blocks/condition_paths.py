"""JSON paths of the condition language (pure, sans-IO).

``a.b``, ``a.0.b``, ``a[0].b`` and ``a.*.b`` (also ``a[*].b``). The empty path is the
root itself. A segment reads a key of an object, or, when it is a non-negative integer,
an element of an array. ``*`` fans out over the elements of an array (over an empty
array, to nothing: :func:`lookup` gives ``[]``); anything that is not where the path says
resolves to :data:`MISSING`.

Shared by conditions (:mod:`blocks.conditions`), ``reshape`` mappings and ``for_each``
``map_source_path``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from enum import Enum
from functools import lru_cache
from typing import Any


class _Wildcard(Enum):
    WILDCARD = "*"


class _Missing(Enum):
    MISSING = "missing"

    def __repr__(self) -> str:
        return "MISSING"


#: The fan-out path segment (``*``).
WILDCARD = _Wildcard.WILDCARD
#: What a path resolves to when nothing is there.
MISSING = _Missing.MISSING

Segment = str | _Wildcard
_TOKEN = re.compile(r"\[(\d+|\*)\]|([^.\[\]]+)|(\.)")


class PathSyntaxError(ValueError):
    """A path that does not follow the ``a.b[0].*.c`` grammar."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(
            f"invalid path {path!r}: {problem}. Write dotted keys such as `items.0.price`, "
            "`items[0].price` or `items.*.price` (empty = the whole value)"
        )


@lru_cache(maxsize=4096)  # a condition reads the same few paths at every evaluation
def parse_path(path: str) -> tuple[Segment, ...]:
    """Split a path into segments (cached: the result is a tuple).

    Args:
        path: ``a.b``, ``a.0.b``, ``a[0].b``, ``a.*.b``; ``""`` is the root.

    Returns:
        The segments; array indices stay strings, ``*`` becomes :data:`WILDCARD`.

    Raises:
        PathSyntaxError: empty segments, unbalanced brackets or non-numeric indices.
    """
    if path == "":
        return ()
    segments: list[Segment] = []
    pos, need_segment = 0, True
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if m is None:
            raise PathSyntaxError(path, f"unexpected {path[pos]!r} at position {pos}")
        bracket, key, dot = m.groups()
        if dot is not None:
            if need_segment:
                raise PathSyntaxError(path, f"empty segment before position {pos}")
            need_segment = True
        elif bracket is not None:
            if not segments:
                raise PathSyntaxError(path, "a bracket index needs a key before it")
            segments.append(WILDCARD if bracket == "*" else bracket)
            need_segment = False
        else:
            if not need_segment:
                raise PathSyntaxError(path, f"missing '.' before {key!r}")
            segments.append(WILDCARD if key == "*" else key)
            need_segment = False
        pos = m.end()
    if need_segment:
        raise PathSyntaxError(path, "it ends with '.'")
    return tuple(segments)


def _step(value: Any, segment: str) -> Any:
    if type(value) is dict or isinstance(value, Mapping):  # the ABC check is slow
        return value.get(segment, MISSING)
    if isinstance(value, list) and segment.isdigit():
        index = int(segment)
        return value[index] if index < len(value) else MISSING
    return MISSING


def resolve(root: Any, path: str | Sequence[Segment]) -> list[tuple[tuple[int, ...], Any]]:
    """Every value a path reaches, with the array indices its wildcards took.

    Args:
        root: the JSON value to read.
        path: a path string or already-parsed segments.

    Returns:
        ``[(indices, value)]``: one entry without wildcards (value may be MISSING); one per
        element and nested element with them; ``[]`` when a wildcard meets an empty array.

    Raises:
        PathSyntaxError: ``path`` is a malformed string.
    """
    segments = parse_path(path) if isinstance(path, str) else tuple(path)
    found: list[tuple[tuple[int, ...], Any]] = [((), root)]
    for segment in segments:
        nxt: list[tuple[tuple[int, ...], Any]] = []
        for indices, value in found:
            if segment is WILDCARD:
                if isinstance(value, list):
                    nxt.extend(((*indices, i), item) for i, item in enumerate(value))
                else:
                    nxt.append((indices, MISSING))
            else:
                nxt.append((indices, _step(value, segment)))
        found = nxt
    return found


def lookup(root: Any, path: str | Sequence[Segment]) -> Any:
    """The single value at ``path``: MISSING when absent; a list for wildcard paths.

    Wildcard paths give the list of per-element values (absent elements as ``None``);
    ``[]`` when a ``*`` met an empty array (no elements: an empty list, not a missing
    path); MISSING when elements were reached but none holds the rest of the path, or
    when there is no array where a ``*`` stands. ``reshape`` mappings and ``for_each``
    ``map_source_path`` read paths through here, so both follow this rule (conditions
    test :func:`resolve` and decide for themselves).

    Raises:
        PathSyntaxError: ``path`` is a malformed string.
    """
    segments = parse_path(path) if isinstance(path, str) else tuple(path)
    found = resolve(root, segments)
    if WILDCARD not in segments:
        return found[0][1]
    if not found:  # only a `*` over an empty array leaves nothing to resolve
        return []
    if all(v is MISSING for _, v in found):
        return MISSING
    return [None if v is MISSING else v for _, v in found]


def json_type(value: Any) -> str:
    """The JSON type name of a value (``missing`` for MISSING), for messages."""
    if value is MISSING:
        return "missing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__
