"""Reruns: a new run that reuses what an earlier run already did well.

A rerun executes the stored workflow (or an edited one) as a new run; the scheduler is
deterministic, so it proposes the earlier run's step ids again, and the steps given to
its :class:`~engine.replay.Replay` are settled from their records instead of running.
Three ways to say what runs again:

* ``from_step`` a top-level step: that step and everything downstream of it run again;
  only the steps upstream of it are reused (inputs may be replaced, the workflow edited
  upstream-compatibly: :func:`engine.durable.reused_steps`);
* ``from_step`` a step inside a loop (``each_iter_150_work``): that step, what depends on
  it in its iteration, its loop's container step and what depends on the container run
  again; every other completed step (the loop's other iterations included) is reused;
* ``failed``: every step that ended in error runs again, with what depends on it as
  above; every other completed step is reused. A for_each whose iteration failed opens
  its loop again, its completed iterations are settled from their records, and only
  the failed (and never started) items execute.

Nothing here executes anything: :func:`prepare_rerun` returns a prepared run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from engine import durable
from engine.contracts.blocks import SentinelRole, sentinel_id
from engine.contracts.errors import UsageError
from engine.contracts.store import PersistedStep
from engine.contracts.values import StepStatus

if TYPE_CHECKING:
    from engine.compiled import CompiledGraph
    from engine.core import Engine
    from engine.launch import PreparedRun


def prepare_rerun(engine: Engine, run_id: str, from_step: str | None = None, *,
                  failed: bool = False, inputs: Mapping[str, Any] | None = None,
                  workflow: Any = None) -> PreparedRun:
    """A new run reusing the earlier run's results (see the module docstring).

    Args:
        engine: the engine whose store holds ``run_id``.
        run_id: the earlier run.
        from_step: the step to execute again (top level, or inside a loop).
        failed: execute again only what failed (and what depends on it).
        inputs: start block inputs to replace (top-level ``from_step`` only).
        workflow: an edited workflow (top-level ``from_step`` only).

    Returns:
        The prepared run (not started).

    Raises:
        NotFoundError: no such run.  UsageError: neither or both of ``from_step`` and
        ``failed``; a step the run does not have; ``failed`` on a run without failed
        steps; replaced inputs or an edited workflow with a loop step or ``failed``.
        InputError: a replaced input does not fit.
    """
    from engine.compiled import CompiledGraph
    from engine.definition import Workflow
    from engine.launch import RunOrigin
    from engine.replay import Replay

    if failed == (from_step is not None):
        raise UsageError("Pass --from STEP_ID or --failed (one of them) to say what runs again.")
    old = engine.store.load_run(run_id)
    stored = Workflow.from_dict(old.definition)
    source = stored if workflow is None else workflow
    graph = source if isinstance(source, CompiledGraph) else engine.compile(source)
    top_level = from_step in graph.nodes and graph.nodes[from_step].parent is None
    if top_level:
        records = durable.reused_steps(engine.store, graph, run_id, str(from_step),
                                       set(inputs or {}), None if workflow is None else stored)
    else:
        if inputs or workflow is not None:
            raise UsageError("--input and --workflow go with --from a top-level step; a "
                             "rerun of failed or loop steps runs the stored workflow.")
        steps = engine.store.load_steps(run_id)
        seeds = failed_steps(steps, run_id) if failed else [loop_step(graph, steps, run_id,
                                                                      str(from_step))]
        stale = stale_steps(graph, steps, seeds)
        records = {s.step_id: s for s in steps
                   if s.status is StepStatus.COMPLETED and s.step_id not in stale}
    origin = RunOrigin(workflow_id=old.workflow_id, organization_id=old.organization_id,
                       trigger="restart", parent_run_id=run_id,
                       metadata={"rerun_of": run_id,
                                 "rerun_from": "failed" if failed else str(from_step)})
    return engine.prepare(graph, {**old.inputs, **(inputs or {})}, origin=origin,
                          replay=Replay(steps=records, rewrite=True))


def failed_steps(steps: Iterable[PersistedStep], run_id: str) -> list[PersistedStep]:
    """The steps of a run that ended in error.

    Raises:
        UsageError: there are none.
    """
    found = [s for s in steps if s.status is StepStatus.ERROR]
    if not found:
        raise UsageError(f"Run {run_id} has no failed steps, so --failed has nothing to run "
                         f"again. Use `stepwell runs rerun {run_id} --from STEP_ID` to run a "
                         "step again.")
    return found


def loop_step(graph: CompiledGraph, steps: Iterable[PersistedStep], run_id: str,
              step_id: str) -> PersistedStep:
    """The recorded step ``step_id`` of the run (a step inside a loop).

    Raises:
        UsageError: the run has no such step; the message names the top-level ones.
    """
    for step in steps:
        if step.step_id == step_id:
            return step
    top = ", ".join(sorted(n for n, v in graph.nodes.items() if v.parent is None))
    raise UsageError(f"--from {step_id!r} is not a step of run {run_id}. Pick a top-level "
                     f"step ({top}) or a loop step id from `stepwell steps list {run_id}`.")


def stale_steps(graph: CompiledGraph, steps: Iterable[PersistedStep],
                seeds: Iterable[PersistedStep]) -> set[str]:
    """The step ids to execute again when ``seeds`` do: each seed, what depends on it in
    its scope, and, inside a loop, the iteration's end, the container step and what
    depends on that, up to the top level.

    Args:
        graph: the compiled workflow.
        steps: every step of the run (for their block ids).
        seeds: the steps to execute again.
    """
    blocks = {s.step_id: s.block_id for s in steps}
    stale: set[str] = set()
    todo = [(s.step_id, s.block_id) for s in seeds]
    while todo:
        step_id, block_id = todo.pop()
        if step_id in stale:
            continue
        stale.add(step_id)
        prefix = step_id[: len(step_id) - len(block_id)]
        for dependent in _downstream(graph, block_id):
            todo.append((prefix + dependent, dependent))
        parent = graph.nodes[block_id].parent if block_id in graph.nodes else None
        if parent is not None:
            end = sentinel_id(parent, SentinelRole.END)
            todo.append((prefix + end, end))
            outer = prefix[: prefix.rfind(f"{parent}_iter_")]
            todo.append((outer + parent, parent))
    return {s for s in stale if s in blocks}


def _downstream(graph: CompiledGraph, block_id: str) -> set[str]:
    """The blocks of ``block_id``'s scope that depend on it, directly or not."""
    parent = graph.nodes[block_id].parent if block_id in graph.nodes else None
    seen: set[str] = set()
    todo = [block_id]
    while todo:
        for edges in graph.outgoing.get(todo.pop(), {}).values():
            for edge in edges:
                target = edge.target
                if target not in seen and graph.nodes[target].parent == parent:
                    seen.add(target)
                    todo.append(target)
    return seen
