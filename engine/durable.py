"""Durable-run operations: resume, cancel, review decisions and rerun.

All of them work from what is in the database, so they can be called from any process:
the one that started the run may be gone (killed, or exited while waiting for a review).

* **resume**: rebuild the run's scheduler from its persisted steps (engine.replay) and
  continue. Completed steps are never executed again; in-flight steps run again.
* **cancel**: flag the run; its live owner notices within a second and interrupts its
  steps. When no live process owns the run (it died, or it is waiting for a review), the
  caller cancels the unfinished steps itself.
* **decide**: record an approve/reject decision, then resume the run so the decision
  takes effect.
* **rerun**: a new run that reuses the recorded outputs of everything upstream of a
  chosen step and executes the rest.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import networkx as nx

from engine.definition import Workflow
from engine.errors import ConflictError, InputError, UsageError
from engine.events import NewRun, RunUpdate, StepEvent
from engine.graph import CompiledGraph, compile_workflow
from engine.replay import Replay, ReviewDecision
from engine.values import RunStatus, StepStatus
from store.base import PersistedRun

if TYPE_CHECKING:
    from engine.core import Engine, RunResult

STALE_HEARTBEAT_S = 15.0


def owner_alive(run: PersistedRun, now: float | None = None) -> bool:
    """True when the run's owner process still exists and its heartbeat is fresh."""
    if not run.owner_pid:
        return False
    if run.owner_pid == os.getpid():
        return True
    try:
        os.kill(run.owner_pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    beat = run.heartbeat_at or 0.0
    return (now or time.time()) - beat < STALE_HEARTBEAT_S


def _ended(run: PersistedRun, verb: str) -> UsageError:
    return UsageError(
        f"Run {run.run_id} already ended {run.status.value}; there is nothing to {verb}. "
        f"Use `stepwell runs rerun {run.run_id} --from STEP_ID` to run it again.")


async def resume(engine: Engine, run_id: str) -> RunResult:
    """Continue ``run_id`` from its persisted steps (see the module docstring).

    Raises:
        NotFoundError: no such run.
        UsageError: the run already ended.
        ConflictError: another live process is executing it.
    """
    store = engine.store
    run = store.load_run(run_id)
    if run.status.terminal:
        raise _ended(run, "resume")
    if run.status is RunStatus.RUNNING and owner_alive(run) and run.owner_pid != os.getpid():
        raise ConflictError(
            f"Run {run_id} is being executed by process {run.owner_pid} (heartbeat "
            f"{time.time() - (run.heartbeat_at or 0):.0f}s ago). Cancel it first with "
            f"`stepwell runs cancel {run_id}`, or wait for it to finish.")
    graph = compile_workflow(Workflow.from_dict(run.definition), engine.registry)
    steps = {s.step_id: s for s in store.load_steps(run_id)}
    decisions = review_decisions(store, run_id)
    store.set_owner(run_id, os.getpid(), time.time())
    replay = Replay(steps=steps, decisions=decisions)
    return await engine._execute(graph, run_id, run.inputs, replay=replay)


def review_decisions(store: Any, run_id: str) -> dict[str, ReviewDecision]:
    """Decided reviews of a run, keyed by step id."""
    out: dict[str, ReviewDecision] = {}
    for review in store.reviews(run_id=run_id):
        if review.decision is None:
            continue
        has_data = review.decision_data is not None
        out[review.step_id] = ReviewDecision(
            approved=review.decision == "approved",
            data=(review.decision_data or {}).get("data") if has_data else None,
            has_data=has_data, reason=review.reason or "")
    return out


def cancel(engine: Engine, run_id: str, reason: str = "cancelled by request") -> bool:
    """Cancel ``run_id``. Returns True when this process cancelled it directly.

    Raises:
        NotFoundError: no such run.
        UsageError: the run already ended.
    """
    store = engine.store
    run = store.load_run(run_id)
    if run.status.terminal:
        raise _ended(run, "cancel")
    store.request_cancel(run_id)
    if run.status is RunStatus.RUNNING and owner_alive(run):
        return False  # the owner polls the flag and stops within a second
    events = [
        StepEvent(step_id=s.step_id, block_id=s.block_id, block_type="", label="",
                  status=StepStatus.CANCELLED, retry_count=s.retry_count, reason=reason)
        for s in store.load_steps(run_id) if not s.status.terminal
    ]
    store.apply(run_id, events, RunUpdate(status=RunStatus.CANCELLED, reason=reason),
                now=time.time())
    return True


def decide(engine: Engine, review_id: str, *, approved: bool, data: Any = None,
           has_data: bool = False, reason: str = "") -> tuple[Any, bool]:
    """Record a review decision. Returns ``(review, changed)``; resume the run after it.

    Raises:
        NotFoundError: no such review.
        ConflictError: the review was already decided differently.
        UsageError: the run already ended, or data given with a rejection.
    """
    store = engine.store
    review = store.review(review_id)
    run = store.load_run(review.run_id)
    if run.status.terminal and review.decision is None:
        raise _ended(run, "review")
    return store.decide_review(review_id, approved=approved, data=data, has_data=has_data,
                               reason=reason, now=time.time())


async def rerun(engine: Engine, run_id: str, from_step: str,
                inputs: Mapping[str, Any] | None = None,
                workflow: Workflow | None = None) -> RunResult:
    """A new run reusing the outputs of every step upstream of ``from_step``.

    Raises:
        NotFoundError: no such run.
        UsageError: ``from_step`` is not a top-level step of the run, or the workflow
            changed upstream of it.
    """
    store = engine.store
    old = store.load_run(run_id)
    stored = Workflow.from_dict(old.definition)
    graph = compile_workflow(workflow or stored, engine.registry)
    if from_step not in graph.nodes or graph.nodes[from_step].parent is not None:
        raise UsageError(
            f"--from {from_step!r} is not a top-level step of run {run_id}. Pick one of: "
            f"{', '.join(sorted(n for n, v in graph.nodes.items() if v.parent is None))}.")
    upstream = _ancestors(graph, from_step)
    if workflow is not None:
        _check_unchanged(stored, workflow, upstream, from_step)
    changed = set(inputs or {})
    unknown = changed - {n.id for n in graph.start_blocks()}
    if unknown:
        raise InputError(f"--input for {sorted(unknown)}, which are not start blocks.")
    new_inputs = engine._prepare_inputs(graph, {**old.inputs, **(inputs or {})})
    stale = set().union(*(_descendants(graph, s) | {s} for s in changed)) if changed else set()
    records = {s.step_id: s for s in store.load_steps(run_id)
               if s.step_id in upstream - stale and s.status is StepStatus.COMPLETED}
    from engine.core import new_run_id

    new_id = new_run_id()
    wf = workflow or stored
    store.create_run(NewRun(
        run_id=new_id, workflow_id=old.workflow_id, workflow_name=wf.name,
        workflow_digest=wf.digest(), definition=wf.to_dict(), inputs=new_inputs,
        metadata={"rerun_of": run_id, "rerun_from": from_step},
        organization_id=old.organization_id, trigger="restart", parent_run_id=run_id,
    ), now=time.time())
    replay = Replay(steps=records, rewrite=True)
    return await engine._execute(graph, new_id, new_inputs, replay=replay)


def _top_graph(graph: CompiledGraph) -> nx.DiGraph:
    g = nx.DiGraph()
    for node_id, node in graph.nodes.items():
        if node.parent is None:
            g.add_node(node_id)
    for source, handles in graph.outgoing.items():
        for edges in handles.values():
            for e in edges:
                if graph.nodes[e.source].parent is None and graph.nodes[e.target].parent is None:
                    g.add_edge(e.source, e.target)
    return g


def _ancestors(graph: CompiledGraph, step: str) -> set[str]:
    return set(nx.ancestors(_top_graph(graph), step))


def _descendants(graph: CompiledGraph, step: str) -> set[str]:
    return set(nx.descendants(_top_graph(graph), step))


def _check_unchanged(stored: Workflow, new: Workflow, upstream: set[str], from_step: str) -> None:
    def fingerprint(wf: Workflow, block_id: str) -> Any:
        block = wf.block(block_id)
        return None if block is None else (block.type, block.config)

    changed = sorted(b for b in upstream if fingerprint(stored, b) != fingerprint(new, b))
    if changed:
        raise UsageError(
            f"The workflow changed upstream of {from_step!r} (blocks {', '.join(changed)}), so "
            "their recorded outputs cannot be reused. Rerun from the first changed block, "
            "or start a new run.")
