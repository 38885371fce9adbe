"""Durable-run helpers: what resume, cancel, review decisions and rerun read and write.

All of them work from what is in the database, so they can be called from any process:
the one that started the run may be gone (killed, or exited while waiting for a review).
They take a store, never an Engine; the Engine's durable methods (``aresume``,
``cancel``, ``adecide``, ``arerun``) compose them with the launch path
(:mod:`engine.launch`).

* **resume**: refuse a run a live process still executes, claim the run atomically (of
  two processes resuming it at once, one wins: :func:`claim`), rebuild its scheduler from
  its persisted steps (:func:`replay_of`) and continue. Completed steps are never
  executed again; in-flight steps run again.
* **cancel**: flag the run; its live owner notices within a second and interrupts its
  steps. When no live process owns the run (it died, or it is waiting for a review), the
  caller cancels the unfinished steps itself (:func:`cancel_run`).
* **decide**: check and record an approve/reject decision, then resume the run so the
  decision takes effect.
* **rerun**: a new run that reuses the recorded outputs of everything upstream of a
  chosen step (:func:`reused_steps`) and executes the rest.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine.contracts.blocks import ReviewDecision
from engine.contracts.errors import ConflictError, InputError, UsageError
from engine.contracts.events import RunUpdate, StepEvent
from engine.contracts.store import PersistedRun, PersistedStep, Store
from engine.contracts.values import RunStatus, StepStatus

if TYPE_CHECKING:  # imported where used: `runs list` needs only owner_alive
    from engine.compiled import CompiledGraph
    from engine.contracts.records import Review
    from engine.definition import Workflow
    from engine.replay import Replay

#: A running run's owner writes a heartbeat every 2 s; one older than this means the
#: owner is stuck or gone (its pid may since belong to another process).
STALE_HEARTBEAT_S = 15.0


def owner_alive(run: PersistedRun, now: float | None = None) -> bool:
    """True when the run's owner process still exists and its heartbeat is fresh."""
    return process_owns(run.owner_pid, run.heartbeat_at, now, host=run.owner_host)


def process_owns(pid: int | None, heartbeat_at: float | None, now: float | None = None,
                 *, host: str | None = None) -> bool:
    """True when process ``pid`` exists and wrote a heartbeat less than
    ``STALE_HEARTBEAT_S`` ago (this process always counts as alive).

    A pid of another machine (``host`` is not this one) cannot be looked up here: there
    the heartbeat alone counts (a lease).
    """
    if not pid:
        return False
    beat = heartbeat_at or 0.0
    fresh = (now or time.time()) - beat < STALE_HEARTBEAT_S
    if host is not None and host != this_host():
        return fresh
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    return fresh


def this_host() -> str:
    """This machine's name, as stores record an owner's host."""
    return socket.gethostname()


def ended(run: PersistedRun, verb: str) -> UsageError:
    """The error for acting (``verb``: resume, cancel, review) on a run that ended."""
    return UsageError(
        f"Run {run.run_id} already ended {run.status.value}; there is nothing to {verb}. "
        f"Use `stepwell runs rerun {run.run_id} --from STEP_ID` to run it again.")


def claim(store: Store, run_id: str) -> PersistedRun:
    """Make this process the owner of ``run_id`` so that it may continue it.

    Returns:
        The run row as read before the claim.

    Raises:
        NotFoundError: no such run.
        UsageError: the run already ended.
        ConflictError: another live process is executing it, or took it over first.
    """
    run = store.load_run(run_id)
    if run.status.terminal:
        raise ended(run, "resume")
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
    return run


def replay_of(store: Store, run_id: str) -> Replay:
    """What a resumed run reuses: its persisted steps and the reviews decided since."""
    from engine.replay import Replay

    steps = {s.step_id: s for s in store.load_steps(run_id)}
    return Replay(steps=steps, decisions=review_decisions(store, run_id), files=store.files)


def review_decisions(store: Store, run_id: str) -> dict[str, ReviewDecision]:
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


def cancel_run(store: Store, run_id: str, reason: str = "cancelled by request") -> bool:
    """Cancel ``run_id``. Returns True when this call cancelled it directly.

    Raises:
        NotFoundError: no such run.
        UsageError: the run already ended.
    """
    run = store.load_run(run_id)
    if run.status.terminal:
        raise ended(run, "cancel")
    store.request_cancel(run_id, reason)
    if run.status is not RunStatus.AWAITING_REVIEW and owner_alive(run):
        return False  # the owner polls the flag and stops within a second
    end_run(store, run_id, RunUpdate(status=RunStatus.CANCELLED, reason=reason), reason)
    return True


def end_run(store: Store, run_id: str, update: RunUpdate, reason: str) -> None:
    """Cancel every unfinished step of ``run_id`` with ``reason``, and record ``update``
    (the run's final lifecycle) in the same commit."""
    events = [
        StepEvent(step_id=s.step_id, block_id=s.block_id, block_type="", label="",
                  status=StepStatus.CANCELLED, retry_count=s.retry_count, reason=reason)
        for s in store.load_steps(run_id) if not s.status.terminal
    ]
    store.apply(run_id, events, update, now=time.time())


def proposal_of(review: Review) -> Mapping[str, Any] | None:
    """The ``proposal`` a container recorded on its review (split_by_key), if any."""
    proposal = ((review.data or {}).get("review") or {}).get("proposal")
    return proposal if isinstance(proposal, Mapping) else None


def reused_steps(store: Store, graph: CompiledGraph, run_id: str, from_step: str,
                 changed_inputs: set[str], stored: Workflow | None = None
                 ) -> dict[str, PersistedStep]:
    """The completed steps of ``run_id`` a rerun from ``from_step`` reuses.

    Args:
        store: where the run is.
        graph: the workflow the rerun executes.
        run_id: the earlier run.
        from_step: the top-level step the rerun starts from.
        changed_inputs: start blocks whose input the rerun replaces (their dependents
            run again).
        stored: the earlier run's workflow when ``graph`` is an edited one: refused if
            it changed upstream of ``from_step``.

    Returns:
        The records to replay, by step id.

    Raises:
        UsageError: ``from_step`` is not a top-level step, or the workflow changed
            upstream of it.
        InputError: a replaced input names no start block.
    """
    if from_step not in graph.nodes or graph.nodes[from_step].parent is not None:
        raise UsageError(
            f"--from {from_step!r} is not a top-level step of run {run_id}. Pick one of: "
            f"{', '.join(sorted(n for n, v in graph.nodes.items() if v.parent is None))}.")
    upstream = ancestors(graph, from_step)
    if stored is not None:
        check_unchanged(stored, graph.workflow, upstream, from_step)
    unknown = changed_inputs - {n.id for n in graph.start_blocks()}
    if unknown:
        raise InputError(f"--input for {sorted(unknown)}, which are not start blocks.")
    stale = set().union(*(descendants(graph, s) | {s} for s in changed_inputs))
    return {s.step_id: s for s in store.load_steps(run_id)
            if s.step_id in upstream - stale and s.status is StepStatus.COMPLETED}


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


def ancestors(graph: CompiledGraph, step: str) -> set[str]:
    """The top-level blocks ``step`` depends on, directly or not."""
    return _reachable(_top_edges(graph, reverse=True), step)


def descendants(graph: CompiledGraph, step: str) -> set[str]:
    """The top-level blocks that depend on ``step``, directly or not."""
    return _reachable(_top_edges(graph, reverse=False), step)


def check_unchanged(stored: Workflow, new: Workflow, upstream: set[str], from_step: str) -> None:
    """Refuse an edited workflow whose blocks upstream of ``from_step`` changed.

    Raises:
        UsageError: a block in ``upstream`` differs (type or config) or is gone.
    """
    def fingerprint(wf: Workflow, block_id: str) -> Any:
        block = wf.block(block_id)
        return None if block is None else (block.type, block.config)

    changed = sorted(b for b in upstream if fingerprint(stored, b) != fingerprint(new, b))
    if changed:
        raise UsageError(
            f"The workflow changed upstream of {from_step!r} (blocks {', '.join(changed)}), so "
            "their recorded outputs cannot be reused. Rerun from the first changed block, "
            "or start a new run.")
