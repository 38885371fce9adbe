"""Durable-run operations: resume, cancel, review decisions and rerun.

All of them work from what is in the database, so they can be called from any process:
the one that started the run may be gone (killed, or exited while waiting for a review).

* **resume**: refuse a run a live process still executes, claim the run atomically (of
  two processes resuming it at once, one wins), rebuild its scheduler from its persisted
  steps (engine.replay) and continue. Completed steps are never executed again;
  in-flight steps run again.
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

from engine.contracts.errors import ConflictError, InputError, UsageError
from engine.contracts.events import NewRun, RunUpdate, StepEvent
from engine.contracts.store import PersistedRun
from engine.contracts.values import RunStatus, StepStatus

if TYPE_CHECKING:  # the rest is imported where used: `runs list` needs only owner_alive
    from engine.core import Engine, RunResult
    from engine.definition import Workflow
    from engine.graph import CompiledGraph
    from engine.replay import ReviewDecision

#: A running run's owner writes a heartbeat every 2 s; one older than this means the
#: owner is stuck or gone (its pid may since belong to another process).
STALE_HEARTBEAT_S = 15.0


def owner_alive(run: PersistedRun, now: float | None = None) -> bool:
    """True when the run's owner process still exists and its heartbeat is fresh."""
    return process_owns(run.owner_pid, run.heartbeat_at, now)


def process_owns(pid: int | None, heartbeat_at: float | None, now: float | None = None) -> bool:
    """True when process ``pid`` exists and wrote a heartbeat less than
    ``STALE_HEARTBEAT_S`` ago (this process always counts as alive).

    Only meaningful on the machine that ran the owner: the pid is a local one.
    """
    if not pid:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    beat = heartbeat_at or 0.0
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
        ConflictError: another live process is executing it, or took it over first.
    """
    store = engine.store
    run = store.load_run(run_id)
    if run.status.terminal:
        raise _ended(run, "resume")
    me = os.getpid()
    if run.status is not RunStatus.AWAITING_REVIEW and run.owner_pid != me and owner_alive(run):
        raise ConflictError(
            f"Run {run_id} is being executed by process {run.owner_pid} (heartbeat "
            f"{time.time() - (run.heartbeat_at or 0):.0f}s ago). Cancel it first with "
            f"`stepwell runs cancel {run_id}`, or wait for it to finish.")
    if not store.claim_owner(run_id, me, time.time(), seen_pid=run.owner_pid,
                             seen_heartbeat=run.heartbeat_at):
        raise ConflictError(
            f"Run {run_id} was taken over by another process just now; it continues "
            f"there. Follow it with `stepwell runs get {run_id}`.")
    from engine.definition import Workflow
    from engine.graph import compile_workflow
    from engine.replay import Replay

    graph = compile_workflow(Workflow.from_dict(run.definition), engine.registry)
    steps = {s.step_id: s for s in store.load_steps(run_id)}
    decisions = review_decisions(store, run_id)
    replay = Replay(steps=steps, decisions=decisions, files=store.files)
    return await engine._execute(graph, run_id, run.inputs, replay=replay)


def review_decisions(store: Any, run_id: str) -> dict[str, ReviewDecision]:
    """Decided reviews of a run, keyed by step id."""
    from engine.replay import ReviewDecision

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
    store.request_cancel(run_id, reason)
    if run.status is not RunStatus.AWAITING_REVIEW and owner_alive(run):
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
        UsageError: the run already ended.
        InputError: data given with a rejection, or corrected split_by_key partitions
            that do not fit the document.
    """
    store = engine.store
    review = store.review(review_id)
    run = store.load_run(review.run_id)
    if run.status.terminal and review.decision is None:
        raise _ended(run, "review")
    proposal = ((review.data or {}).get("review") or {}).get("proposal")
    if approved and has_data and isinstance(proposal, Mapping):
        from blocks.partition import corrected_partitions

        corrected_partitions(proposal, data)  # refuse now rather than when resuming
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
    from engine.definition import Workflow
    from engine.graph import compile_workflow
    from engine.replay import Replay

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


def _top_edges(graph: CompiledGraph, *, reverse: bool) -> dict[str, set[str]]:
    """Top-level block -> the top-level blocks it feeds (or is fed by, ``reverse``)."""
    out: dict[str, set[str]] = {}
    for handles in graph.outgoing.values():
        for edges in handles.values():
            for e in edges:
                if graph.nodes[e.source].parent is None and graph.nodes[e.target].parent is None:
                    a, b = (e.target, e.source) if reverse else (e.source, e.target)
                    out.setdefault(a, set()).add(b)
    return out


def _reachable(edges: Mapping[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _ancestors(graph: CompiledGraph, step: str) -> set[str]:
    return _reachable(_top_edges(graph, reverse=True), step)


def _descendants(graph: CompiledGraph, step: str) -> set[str]:
    return _reachable(_top_edges(graph, reverse=False), step)


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
