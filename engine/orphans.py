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
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.contracts.errors import ErrorCategory, ErrorStage, StepwellError
from engine.contracts.events import RunUpdate, StepErrorInfo
from engine.contracts.reads import RunFilters
from engine.contracts.values import RunStatus
from engine.durable import end_run, process_owns

if TYPE_CHECKING:
    from engine.contracts.reads import RunRecord
    from engine.core import Engine

#: Run statuses an owner process is responsible for.
ACTIVE_STATUSES = ("pending", "queued", "running")


@dataclass(frozen=True, slots=True, kw_only=True)
class Recovery:
    """What recovery did with one orphan: ``resumed`` or ``ended`` (with the reason)."""

    run_id: str
    action: str
    reason: str


def is_orphan(run: RunRecord, now: float | None = None) -> bool:
    """True for an active run whose owner process is gone or silent."""
    return run.status in ACTIVE_STATUSES and not process_owns(run.owner_pid,
                                                              run.heartbeat_at, now)


def orphan_note(run: RunRecord, now: float | None = None) -> str | None:
    """Why ``run`` is an orphan, for readers (None when it is not one)."""
    if not is_orphan(run, now):
        return None
    age = (now or time.time()) - (run.heartbeat_at or run.created_at)
    return (f"orphaned: its owner process {run.owner_pid} is gone (last heartbeat {age:.0f}s "
            f"ago); it continues when a server starts on this database, or with "
            f"`stepwell runs resume {run.id}`")


def find_orphans(store: Any, now: float | None = None) -> list[RunRecord]:
    """Every orphaned run in ``store`` (all organizations), oldest first."""
    found: list[RunRecord] = []
    after: str | None = None
    while True:
        page = store.page_runs(RunFilters(statuses=ACTIVE_STATUSES), limit=200, after=after,
                               descending=False)
        found += [run for run in page.items if is_orphan(run, now)]
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
                    check: Callable[[Any], str | None] | None = None) -> list[Recovery]:
    """Resume every orphan that can resume (through ``drive``), end the others.

    Args:
        engine: the engine whose store holds the runs (its registry compiles them).
        drive: resumes one run by id (the server's run supervisor, ``engine.resume``...).
        check: given the run's stored workflow, a reason it must not run here, or None.

    Returns:
        One :class:`Recovery` per orphan found.
    """
    from engine.definition import Workflow

    done: list[Recovery] = []
    for run in find_orphans(engine.store):
        owner = f"orphaned: its owner process {run.owner_pid} died"
        try:
            workflow = Workflow.from_dict(engine.store.load_run(run.id).definition)
            engine.compile(workflow)
            refusal = check(workflow) if check is not None else None
        except StepwellError as exc:
            refusal = f"its workflow no longer compiles ({exc})"
        if refusal:
            reason = f"{owner} and the run cannot resume here: {refusal}"
            end_orphan(engine.store, run.id, reason)
            done.append(Recovery(run_id=run.id, action="ended", reason=reason))
            continue
        drive(run.id)
        done.append(Recovery(run_id=run.id, action="resumed", reason=f"{owner}; resumed"))
    return done
