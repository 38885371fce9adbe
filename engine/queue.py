"""The run queue from the engine's side: enqueue a run, hand it back, queue it again.

``stepwell run --detach``, the HTTP server of a deployment with workers and
``reviews approve --detach`` never execute a run themselves: they write it and leave it
to ``stepwell worker`` processes (:mod:`engine.worker`), which claim queued runs from
the shared database (:class:`~engine.contracts.queue.QueueStore`).

- :func:`enqueue`: prepare a run exactly as for an immediate execution (compile,
  check and store the inputs, write the run row; nothing is written when that fails),
  then hand it to the queue.
- :func:`hand_back`: this process owns the run and stops executing it; another worker
  may take it at once (in-flight steps run again there, completed ones never do).
- :func:`requeue`: a review of a waiting run was decided; a worker continues the run.
- :func:`left_to_workers` / :func:`after_decision`: a run a worker handed back to wait for
  a review belongs to the queue, so a decision queues it again (the CLI does not
  continue it in its own process unless asked to).
- :class:`QueueDispatch`: the server's stand-in for executing runs (``serve --queue``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine.contracts.errors import UsageError
from engine.contracts.queue import QueueStore

if TYPE_CHECKING:
    from engine.contracts.store import PersistedRun, Store
    from engine.core import Engine, WorkflowSource
    from engine.launch import RunOrigin


def queue_of(store: Store) -> QueueStore:
    """``store`` as a :class:`~engine.contracts.queue.QueueStore`.

    Raises:
        UsageError: the store has no run queue.
    """
    if not isinstance(store, QueueStore):
        raise UsageError(
            f"{type(store).__name__} has no run queue: queued runs and workers need a "
            "database file or PostgreSQL (--db PATH or --db postgresql://...).")
    return store


def enqueue(engine: Engine, workflow: WorkflowSource, inputs: Mapping[str, Any] | None = None,
            *, run_id: str | None = None, origin: RunOrigin | None = None) -> str:
    """Write a run and leave it to the workers.

    Args:
        engine: the engine whose store the workers share.
        workflow, inputs, run_id, origin: as for :meth:`engine.core.Engine.prepare`.

    Returns:
        The run id (status ``queued``).

    Raises:
        WorkflowValidationError, InputError, UsageError: as ``prepare``; nothing was
            written.
    """
    queue = queue_of(engine.store)
    prepared = engine.prepare(workflow, inputs, run_id=run_id, origin=origin)
    queue.release(prepared.run_id, os.getpid())
    return prepared.run_id


def hand_back(store: Store, run_id: str) -> bool:
    """Give up this process's ownership of ``run_id`` so that a worker takes it.

    Returns:
        True when it was handed back (False: another process owns it now).
    """
    return queue_of(store).release(run_id, os.getpid())


def requeue(store: Store, run_id: str) -> bool:
    """Queue a run waiting for a review again, after a decision.

    Returns:
        True when the run was waiting and is queued now; False when it is running (its
        worker continues it once its other steps settle) or ended.
    """
    return queue_of(store).requeue(run_id)


def left_to_workers(run: PersistedRun) -> bool:
    """True when ``run`` waits for a review and no process owns it: it was queued
    (``stepwell run --detach``, ``serve --queue``) and its worker handed it back when it
    stopped to wait. A run started in the foreground keeps its (exited) owner's pid."""
    from engine.contracts.values import RunStatus

    return run.status is RunStatus.AWAITING_REVIEW and run.owner_pid is None


def after_decision(store: Store, run: PersistedRun, *, detach: bool) -> str | None:
    """After a review decision: queue the run again for the workers when asked to
    (``detach``) or when it was left to them (:func:`left_to_workers`).

    Returns:
        What to tell the user when the run was left to the workers; None when the caller
        continues the run itself (a run started in the foreground, without ``detach``).
    """
    if not (detach or left_to_workers(run)):
        return None
    if requeue(store, run.run_id):
        return f"Decision recorded. Run {run.run_id} is queued; a worker continues it."
    return f"Decision recorded. Run {run.run_id} is still executing; its worker continues it."


class QueueDispatch:
    """What a server of a deployment with workers does instead of executing runs: it
    queues them (same calls as :class:`engine.server.state.RunSupervisor`).

    Args:
        store: the shared database's store.
    """

    def __init__(self, store: Store) -> None:
        self.queue = queue_of(store)

    def drive(self, run_id: str, prepared: Any = None) -> str:
        """Queue a new run (``prepared`` given) or, after a review decision, queue its
        run again.

        Returns:
            ``queued`` when a worker will take it; ``pending`` when it is still running
            (its worker continues it).
        """
        if prepared is not None:
            self.queue.release(run_id, os.getpid())
            return "queued"
        return "queued" if self.queue.requeue(run_id) else "pending"

    def active(self) -> list[str]:
        """Runs executing in this process: none."""
        return []

    def join(self, timeout: float) -> bool:
        """Nothing to wait for."""
        return True
