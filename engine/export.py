"""Writing a workflow back out as declarative YAML (what ``stepwell export`` prints).

The writer emits what Retab's ``spec get`` emits: ``apiVersion``, ``kind``,
``metadata``, ``spec.blocks`` as a map keyed by block id with children nested under their
container, and edges in the canonical ``source: {block, handle}`` / ``target: {block,
handle}`` form. Configs are written as they were read (a Retab-form conditional stays in
Retab's form), generated boundary edges are left out, and a workflow read from graph
JSON comes out declarative. Reading the output back gives the same graph:
:func:`round_trip_problems` checks that.

Multi-line strings (function ``code``) are written as YAML block literals so they stay
readable; key order is kept.
"""

from __future__ import annotations

from typing import Any

import yaml

from engine.definition import Workflow


class _Dumper(yaml.SafeDumper):
    """A SafeDumper that writes multi-line strings as ``|`` blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value and not any(c in value for c in "\t\r") and value == value.rstrip(" "):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def to_yaml(workflow: Workflow) -> str:
    """The workflow as declarative YAML.

    Args:
        workflow: a loaded workflow (compiled or not).

    Returns:
        YAML text that :meth:`Workflow.from_yaml` reads back to the same graph. A
        workflow whose blocks cannot be nested (a duplicate id, a missing parent) comes
        out as graph JSON written in YAML, which :func:`engine.definition.load_workflow`
        reads too.
    """
    data = workflow.to_dict()
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False, width=100)


def graph_signature(workflow: Workflow) -> dict[str, Any]:
    """What "the same graph" means for a round trip: blocks and authored edges.

    Returns:
        ``{blocks: {id: (type, label, config, parent)}, edges: sorted endpoint tuples}``
        with empty handles kept empty (they resolve the same way when compiled).
    """
    return {
        "blocks": {b.id: (b.type, b.label, b.config, b.parent_id, b.position, b.width,
                          b.height) for b in workflow.blocks},
        "edges": sorted((e.source_block, e.source_handle, e.target_block, e.target_handle)
                        for e in workflow.edges if not e.generated),
    }


def round_trip_problems(workflow: Workflow) -> list[str]:
    """Differences between ``workflow`` and what reading its YAML export gives.

    Args:
        workflow: the workflow to export.

    Returns:
        One line per difference; ``[]`` when the export reads back to the same graph.
    """
    again = Workflow.from_dict(yaml.safe_load(to_yaml(workflow)), source="<export>")
    before, after = graph_signature(workflow), graph_signature(again)
    problems = [f"block {block_id!r} differs after the round trip"
                for block_id in sorted(set(before["blocks"]) | set(after["blocks"]))
                if before["blocks"].get(block_id) != after["blocks"].get(block_id)]
    if before["edges"] != after["edges"]:
        problems.append("the edges differ after the round trip")
    return problems
