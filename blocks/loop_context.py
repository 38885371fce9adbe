"""A while_loop's ``loop_context_template``: text with loop variables, per iteration.

Retab documents the template as "text with loop variables for contained blocks" and
names three variables, written ``{{name}}``:

* ``iteration_number``: the current iteration and the bound, ``"2 of 10"`` (1-based);
* ``termination_condition_breakdown``: how the termination conditions evaluated after
  the previous iteration, one line per sub-condition (empty on the first iteration);
* ``data``: the iteration's state (what ``loop-left-out`` carries), as JSON.

The while_loop's sentinel start renders it when an iteration begins and records it as
the ``loop_context`` trace span of its step, where contained blocks (and people reading
the run) find it. Unknown variables are left as written and validation warns about them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from engine.contracts.errors import Diagnostic

#: The variables a template may use.
VARIABLES = ("iteration_number", "termination_condition_breakdown", "data")
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def template_diagnostics(template: str | None, path: str, owner: str) -> list[Diagnostic]:
    """``UNKNOWN_TEMPLATE_VARIABLE`` warnings for variables the template cannot use.

    Args:
        template: ``config.loop_context_template`` as written.
        path: its YAML path.
        owner: how messages name the block.
    """
    if not template:
        return []
    unknown = sorted({m.group(1) for m in _VARIABLE.finditer(template)} - set(VARIABLES))
    return [Diagnostic(
        code="UNKNOWN_TEMPLATE_VARIABLE", path=path, severity="warning",
        message=f"{owner}: loop_context_template uses {{{{{name}}}}}, which is not a loop "
        "variable; it stays as written",
        fix=f"use {', '.join('{{' + v + '}}' for v in VARIABLES)}") for name in unknown]


def _lines(evaluations: Iterable[Mapping[str, Any]]) -> Iterable[str]:
    for evaluation in evaluations:
        for sub in _flat(evaluation.get("sub_evaluations") or []):
            verdict = "matched" if sub.get("matched") else "not matched"
            expected = "" if sub.get("expected") is None else f" {json.dumps(sub['expected'])}"
            actual = json.dumps(sub.get("actual"), default=str)
            yield (f"- {sub.get('path') or '(data)'} {sub.get('operator')}{expected}: "
                   f"found {actual}, {verdict}")


def _flat(records: Sequence[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    for record in records:
        if "sub_evaluations" in record:
            yield from _flat(record["sub_evaluations"])
        else:
            yield record


def render(template: str, *, iteration: int, max_iterations: int, data: Any,
           evaluations: Sequence[Mapping[str, Any]] = ()) -> str:
    """The template with its variables filled in.

    Args:
        template: the template text.
        iteration: the 0-based iteration about to run.
        max_iterations: the loop's bound.
        data: the iteration's state.
        evaluations: the termination evaluations of the previous iteration.

    Returns:
        The rendered text; unknown variables are left as written.
    """
    values = {
        "iteration_number": f"{iteration + 1} of {max_iterations}",
        "termination_condition_breakdown": "\n".join(_lines(evaluations)),
        "data": json.dumps(data, default=str),
    }
    return _VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), template)
