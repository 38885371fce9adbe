"""Orphaned runs: their owner process died while they were pending, queued or running.

A run records its owner's pid and a heartbeat (every 2 s). When the owner is gone (no
such process, or a heartbeat older than ``STALE_HEARTBEAT_S``), nobody will finish the
run unless asked: ``stepwell runs resume`` does it by hand; :func:`recover_orphans` does
it for a host that opens the database for writing (``stepwell serve`` at start-up, or
any process that calls it).

For each orphan, recovery first checks that the run *can* resume: its stored
definition still compiles with this host's block types, and the host's ``check`` (a
server's security policy) has nothing against it. Then it is handed to ``drive``
(which resumes it: completed steps are kept, in-flight ones run again). Otherwise the
run ends ``error``, its unfinished steps ``cancelled``, with a reason that starts with
``orphaned:`` and says why it could not resume. :func:`orphan_note` is what readers
show for an orphan not yet recovered.

A process always counts its own runs as owned, which is right for a process that runs
them on its own stack. A server runs them on threads, and a thread can die while the
process lives on: it passes ``driving``, the runs its threads execute now, and a run it
owns that none of them executes is an orphan once its heartbeat is stale.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, MutableMapping
from typing import TYPE_CHECKING, Any

from engine.contracts.errors import ErrorCategory, ErrorStage, StepwellError
from engine.contracts.events import RunUpdate, StepErrorInfo
from engine.contracts.frozen import record
from engine.contracts.reads import RunFilters
from engine.contracts.values import RunStatus
from engine.durable import STALE_HEARTBEAT_S, end_run, process_owns, this_host

if TYPE_CHECKING:
    from engine.contracts.reads import RunRecord
    from engine.core import Engine

#: Run statuses an owner process is responsible for.
ACTIVE_STATUSES = ("pending", "queued", "running")
#: How often one recoverer resumes the same run before it gives up on it.
MAX_RESUMES = 3


@record
class Recovery:
    """What recovery did with one orphan: ``resumed`` or ``ended`` (with the reason)."""

    run_id: str
    action: str
    reason: str


def is_orphan(run: RunRecord, now: float | None = None, *,
              driving: Collection[str] | None = None) -> bool:
    """True for an active run whose owner process is gone or silent.

    Args:
        run: the run as stored.
        now: the time to judge the heartbeat by (default: now).
        driving: given by a process that executes its runs on threads (a server): the
            ids they execute now, never orphans (a resumed run may not have claimed its
            row yet). A run of this process outside them is an orphan once its
            heartbeat is stale (see the module docstring).
    """
    if run.status not in ACTIVE_STATUSES or (driving is not None and run.id in driving):
        return False
    if driving is not None and owned_here(run):
        beat = run.heartbeat_at or run.created_at
        return (now or time.time()) - beat >= STALE_HEARTBEAT_S
    return not process_owns(run.owner_pid, run.heartbeat_at, now, host=run.owner_host)


def owned_here(run: RunRecord) -> bool:
    """True when ``run``'s owner is this process."""
    return run.owner_pid == os.getpid() and run.owner_host in (None, this_host())


def orphan_note(run: RunRecord, now: float | None = None, *,
                driving: Collection[str] | None = None) -> str | None:
    """Why ``run`` is an orphan, for readers (None when it is not one; ``driving`` as
    for :func:`is_orphan`)."""
    if not is_orphan(run, now, driving=driving):
        return None
    age = (now or time.time()) - (run.heartbeat_at or run.created_at)
    return (f"orphaned: its owner process {run.owner_pid} is gone (last heartbeat {age:.0f}s "
            f"ago); a server or worker on this database resumes it (a server at start and "
            f"every few seconds while up), or `stepwell runs resume {run.id}` does")


def find_orphans(store: Any, now: float | None = None, *,
                 driving: Collection[str] | None = None) -> list[RunRecord]:
    """Every orphaned run in ``store`` (all organizations), oldest first (``driving`` as
    for :func:`is_orphan`)."""
    found: list[RunRecord] = []
    after: str | None = None
    while True:
        page = store.page_runs(RunFilters(statuses=ACTIVE_STATUSES), limit=200, after=after,
                               descending=False)
        found += [run for run in page.items if is_orphan(run, now, driving=driving)]
        if not page.more_after or not page.items:
            return found
        after = page.items[-1].id


def end_orphan(store: Any, run_id: str, reason: str) -> None:
    """End ``run_id`` as ``error`` with ``reason``; its unfinished steps are cancelled."""
    error = StepErrorInfo(message=reason, stage=ErrorStage.EXECUTION,
                          category=ErrorCategory.PERMANENT, code="RUN_ORPHANED")
    end_run(store, run_id, RunUpdate(status=RunStatus.ERROR, error=error, reason=reason),
            reason)


def recover_orphans(engine: Engine, drive: Callable[[str], Any], *,
                    check: Callable[[Any], str | None] | None = None,
                    driving: Collection[str] | None = None,
                    resumed: MutableMapping[str, int] | None = None) -> list[Recovery]:
    """Resume every orphan that can resume (through ``drive``), end the others.

    Args:
        engine: the engine whose store holds the runs (its registry compiles them).
        drive: resumes one run by id (the server's run supervisor, ``engine.resume``...).
        check: given the run's stored workflow, a reason it must not run here, or None.
        driving: the runs this process's threads execute now (see :func:`is_orphan`).
        resumed: how often each run was resumed by earlier calls (kept by a caller that
            recovers again and again, a server's sweep): a run orphaned again after
            :data:`MAX_RESUMES` resumes is ended with the reason instead of resumed once
            more, so a run whose resume keeps dying does not go round forever.

    Returns:
        One :class:`Recovery` per orphan found.
    """
    from engine.definition import Workflow

    done: list[Recovery] = []
    for run in find_orphans(engine.store, driving=driving):
        owner = f"orphaned: its owner process {run.owner_pid} died"
        try:
            workflow = Workflow.from_dict(engine.store.load_run(run.id).definition)
            engine.compile(workflow)
            refusal = check(workflow) if check is not None else None
        except StepwellError as exc:
            refusal = f"its workflow no longer compiles ({exc})"
        tries = resumed.get(run.id, 0) if resumed is not None else 0
        if not refusal and tries >= MAX_RESUMES:
            refusal = (f"it was resumed {tries} times and orphaned again each time; see the "
                       f"log for why, then `stepwell runs rerun {run.id} --failed`")
        if refusal:
            reason = f"{owner} and the run cannot resume here: {refusal}"
            end_orphan(engine.store, run.id, reason)
            done.append(Recovery(run_id=run.id, action="ended", reason=reason))
            continue
        if resumed is not None:
            resumed[run.id] = tries + 1
        drive(run.id)
        done.append(Recovery(run_id=run.id, action="resumed", reason=f"{owner}; resumed"))
    return done
