"""Retab's documented condition shapes, normalised to stepwell's condition groups.

Retab's Blocks page writes a conditional branch as::

    {branch_name: if, logical_operator: and,
     sub_conditions: [{path: data.total_amount, operator: is_greater_than, value: 1000}]}

and a while_loop's ``termination_conditions`` as a list of ``{path, operator, value}``.
stepwell's own form is ``{id, name, handle_key?, condition: <group>}`` with
``path_ref: {input, path}`` sub-conditions. Both are accepted; this module turns the
Retab shapes into the group :mod:`blocks.conditions` evaluates. Rules:

* **Form of a branch.** ``branch_name``, ``sub_conditions`` or ``logical_operator`` at the
  branch level make it a Retab-form branch; ``name`` or ``condition`` a stepwell-form
  one; ``id`` and ``handle_key`` belong to both. A branch with keys of both forms, or a
  ``conditions`` list whose branches use different forms, is a validation error.
* **Paths.** A flat ``path`` is read against Retab's evaluation root ``{data: <the
  evaluated payload>}``: ``data.total_amount`` is the payload's ``total_amount`` and
  ``data`` the payload itself. A path that does not start with ``data`` is read from the
  payload directly (so ``total_amount`` works too); a payload that has its own ``data``
  key is reached with ``data.data``.
* **Handle keys.** ``handle_key`` when given; otherwise Retab's rule applied to the
  branch name: lower-cased, each space replaced by ``-`` (``Needs Review`` ->
  ``needs-review``). A branch without ``branch_name`` is named as the docs number them:
  ``if`` for the first, ``else-if-<n>`` for the n-th after it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

#: Branch keys that only Retab's documented form has.
RETAB_BRANCH_KEYS = frozenset({"branch_name", "sub_conditions", "logical_operator"})
#: Branch keys that only stepwell's form has.
STEPWELL_BRANCH_KEYS = frozenset({"name", "condition"})
#: Keys both forms share.
SHARED_BRANCH_KEYS = frozenset({"id", "handle_key"})

Form = Literal["retab", "stepwell", "mixed", "unknown"]


def branch_form(raw: Any) -> Form:
    """Which form a raw branch is written in.

    Returns:
        ``retab``, ``stepwell``, ``mixed`` (keys of both) or ``unknown`` (not a
        mapping, or only shared keys).
    """
    if not isinstance(raw, Mapping):
        return "unknown"
    retab = bool(RETAB_BRANCH_KEYS & raw.keys())
    own = bool(STEPWELL_BRANCH_KEYS & raw.keys())
    if retab and own:
        return "mixed"
    return "retab" if retab else ("stepwell" if own else "unknown")


def retab_handle_key(name: str) -> str:
    """Retab's handle key for a route name: lower-case, each space becomes ``-``."""
    return name.lower().replace(" ", "-")


def default_branch_name(index: int) -> str:
    """The name of an unnamed Retab-form branch: ``if``, then ``else-if-1``, ..."""
    return "if" if index == 0 else f"else-if-{index}"


def flat_path(path: Any) -> Any:
    """A flat ``path`` as a path into the payload (``data.x`` -> ``x``, ``data`` -> ``""``).

    Non-strings are returned unchanged for the condition model to report.
    """
    if not isinstance(path, str):
        return path
    if path == "data":
        return ""
    if path.startswith("data."):
        return path[5:]
    if path.startswith("data["):  # data[0].x: the payload is an array
        return re.sub(r"^\[(\d+|\*)\]", r"\1", path[4:])
    return path


def normalise_condition(raw: Any) -> Any:
    """One Retab sub-condition (or nested group) as a stepwell sub-condition.

    ``{path, operator, value}`` becomes ``{path_ref: {input: default, path}, operator,
    value}``; a nested ``{logical_operator, sub_conditions}`` group is normalised
    recursively; anything else is returned unchanged for validation to report.
    """
    if not isinstance(raw, Mapping):
        return raw
    if "sub_conditions" in raw:
        return normalise_group(raw)
    if "path" in raw and "path_ref" not in raw:
        out = {k: v for k, v in raw.items() if k != "path"}
        out["path_ref"] = {"input": "default", "path": flat_path(raw["path"])}
        return out
    return dict(raw)


def normalise_group(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A Retab group ``{logical_operator?, sub_conditions}`` as a stepwell group.

    Keys other than those two are dropped here; callers validate them.
    """
    subs = raw.get("sub_conditions")
    items = [normalise_condition(c) for c in subs] if isinstance(subs, list) else subs
    group: dict[str, Any] = {"sub_conditions": items}
    if "logical_operator" in raw:
        group["logical_operator"] = raw["logical_operator"]
    return group


def normalise_branch(raw: Mapping[str, Any], index: int) -> dict[str, Any]:
    """A Retab-form branch as a stepwell-form one ``{id?, name, handle_key, condition}``.

    Args:
        raw: the branch as written (form ``retab``).
        index: its position in ``conditions`` (names unnamed branches).

    Returns:
        The stepwell form; ``handle_key`` follows Retab's rule when not written.
    """
    name = raw.get("branch_name")
    name = name if isinstance(name, str) and name else default_branch_name(index)
    out: dict[str, Any] = {"name": name, "condition": normalise_group(raw)}
    key = raw.get("handle_key")
    out["handle_key"] = key if key is not None else retab_handle_key(name)
    if raw.get("id") is not None:
        out["id"] = raw["id"]
    return out


def termination_group(raw: Any) -> Any:
    """One ``termination_conditions`` item as a group: a flat condition becomes a group
    of one; a group is normalised; anything else is returned for validation to report."""
    if isinstance(raw, Mapping) and "sub_conditions" in raw:
        return normalise_group(raw)
    if isinstance(raw, Mapping):
        return {"logical_operator": "and", "sub_conditions": [normalise_condition(raw)]}
    return raw
