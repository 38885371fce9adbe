"""The run queue: what workers ask of a store on top of :class:`~engine.contracts.store.RunStore`.

A queued run is an ordinary run row with status ``queued`` and no owner. Ownership is
a lease: the owner (a pid on a host) renews it with every heartbeat
(:meth:`~engine.contracts.store.RunStore.heartbeat`); a run whose last heartbeat is
older than the lease is claimable again, so the runs of a worker that died are taken
over by another one, which resumes them (completed steps are never executed again).

Rules every implementation keeps (``tests/store/test_queue.py`` checks them):

- :meth:`QueueStore.claim_next` is atomic: of any number of workers, on any number of
  machines, claiming at once, each run goes to one; a worker never waits for another
  one's claim (PostgreSQL: ``FOR UPDATE SKIP LOCKED``; SQLite: one write transaction).
- The oldest claimable run (by creation time, then id) is claimed first.
- Every call returns once its change is committed.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class QueueStore(Protocol):
    """Claiming, handing back and re-queueing runs."""

    def claim_next(self, pid: int, *, now: float, stale_before: float) -> str | None:
        """Make ``pid`` (of this host) the owner of the oldest claimable run.

        Claimable: status ``pending``, ``queued`` or ``running``, and no heartbeat at or
        after ``stale_before`` (a queued run has none; a dead owner's is old).

        Returns:
            The id of the run now owned, with heartbeat ``now``; None when none is
            claimable.
        """
        ...

    def release(self, run_id: str, pid: int) -> bool:
        """Hand a run back to the queue when ``pid`` (of this host) still owns it: the
        owner and heartbeat are cleared, a ``pending`` run becomes ``queued``, any other
        status stays.

        Returns:
            True when the run was released; False when ``pid`` no longer owned it (or
            there is no such run).
        """
        ...

    def requeue(self, run_id: str) -> bool:
        """Queue a run that waits for a review again (a decision was recorded): status
        ``queued``, no owner, no heartbeat.

        Returns:
            True when the run was waiting for a review and is now queued.
        """
        ...
