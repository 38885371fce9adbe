"""The in-memory store: every storage protocol over plain dicts, a public test utility.

``MemoryStore()`` keeps runs, steps, reviews, workflows and files in memory and
implements :class:`engine.contracts.store.Store` with the SQLite store's semantics:
lifecycle moves checked by :func:`~engine.contracts.values.check_move`, a batch kept
whole or not at all, values JSON cannot hold refused with the same
:class:`~engine.contracts.errors.StorageError`, the same ``NotFoundError`` and
``ConflictError`` cases, cancel flags and compare-and-set owner claims. Both pass one
contract suite (``tests/store/test_contract.py``), so whatever works on one works on
the other::

    engine = Engine(store=MemoryStore())
    client = Client(store=engine.store)

It is thread-safe (one lock around every call) and nothing outlives the object: use it
for tests, examples and throwaway runs, not for work that must survive the process.
The batch logic lives in :mod:`store.memory_rows`, the read queries in
:mod:`store.memory_reads`, the workflow registry in :mod:`store.memory_workflows`, evals
and the file catalog in :mod:`store.memory_evals`.
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Self

from engine.contracts.errors import ConflictError, NotFoundError
from engine.contracts.events import NewRun, RunUpdate, StepEvent
from engine.contracts.files import FileStore
from engine.contracts.logs import AttemptLog, LogRecord
from engine.contracts.reads import RecordPage, step_not_found
from engine.contracts.records import (
    Review,
    ReviewVersion,
    review_id_for,
    version_id_for,
)
from engine.contracts.store import PersistedRun, PersistedStep
from engine.contracts.values import Payload, StepStatus
from store.memory_evals import MemoryEvals
from store.memory_files import MemoryFileStore
from store.memory_reads import MemoryReads
from store.memory_rows import RunRow, Tables, as_json, stage, staged_run
from store.memory_workflows import MemoryWorkflows
from store.reviews import check_decision, settle, version_not_found
from store.step_logs import MemoryLogs, check_log_page

if TYPE_CHECKING:
    from store.api import ReadAPI


class MemoryStore(MemoryReads, MemoryEvals, MemoryWorkflows):
    """Everything stepwell stores, in memory (see the module docstring).

    Args:
        files: the file store handed to blocks; a fresh :class:`MemoryFileStore` when None.
    """

    def __init__(self, files: FileStore | None = None) -> None:
        self.tables = Tables(lock=threading.RLock())
        self.files: FileStore = files or MemoryFileStore()
        self.step_logs = MemoryLogs()
        MemoryEvals.__init__(self)

    @property
    def in_memory(self) -> bool:
        """Always True: nothing outlives the object."""
        return True

    # ------------------------------------------------------------------ runs

    def create_run(self, run: NewRun, *, now: float) -> None:
        """Insert the run (status ``pending``, owned by this process, heartbeat now).

        Raises:
            ConflictError: a run with this id exists.
            StorageError: the definition, inputs or metadata are not JSON.
        """
        row = RunRow(
            id=run.run_id, workflow_id=run.workflow_id, workflow_name=run.workflow_name,
            workflow_digest=run.workflow_digest,
            definition=as_json(run.definition, "definition", run.run_id),
            inputs=as_json(run.inputs, "inputs", run.run_id),
            metadata=as_json(run.metadata, "metadata", run.run_id),
            organization_id=run.organization_id, trigger=run.trigger,
            owner_pid=os.getpid(), heartbeat_at=now, parent_run_id=run.parent_run_id,
            created_at=now)
        with self.tables.lock:
            if run.run_id in self.tables.runs:
                raise ConflictError(
                    f"Run {run.run_id!r} already exists in this memory store. "
                    "Start a new run with a fresh id, or resume this one.")
            self.tables.runs[run.run_id] = row
            self.tables.steps[run.run_id] = {}

    def apply(self, run_id: str, events: Sequence[StepEvent],
              run_update: RunUpdate | None = None, *, now: float,
              logs: Sequence[AttemptLog] = ()) -> None:
        """Persist what attempts wrote (``logs``), a batch of step events and a run
        change, all or nothing.

        Raises:
            IllegalTransition: a move the lifecycle table forbids; nothing was kept.
            NotFoundError: the run does not exist.
            StorageError: a value JSON cannot hold; nothing was kept.
        """
        t = self.tables
        with t.lock:
            run = t.runs.get(run_id)
            if run is None:
                raise NotFoundError("run", run_id, "Create it with Store.create_run first.")
            staged = stage(t, run_id, events, now)
            new_run = None
            if run_update is not None:
                new_run = staged_run(run, run_update, {**t.steps[run_id], **staged.steps}, now)
            t.steps[run_id].update(staged.steps)
            t.last_seq = max([t.last_seq, *(s.seq for s in staged.steps.values())])
            for replaced in staged.replaced_artifacts:
                t.artifacts.pop(replaced, None)
            for artifact in staged.artifacts:
                t.artifacts[artifact.id] = artifact
            for step_id, block_id, data in staged.reviews:
                rid = review_id_for(run_id, step_id)
                t.reviews.setdefault(rid, Review(
                    id=rid, run_id=run_id, step_id=step_id, block_id=block_id,
                    status="pending", data=data, decision=None, decision_data=None,
                    reason=None, created_at=now, decided_at=None))
            if new_run is not None:
                t.runs[run_id] = new_run
            if logs:  # last: nothing above can fail once the batch is staged
                self.step_logs.append(run_id, logs)

    def load_run(self, run_id: str) -> PersistedRun:
        """The run as the runner needs it. Raises NotFoundError."""
        with self.tables.lock:
            run = self._run(run_id, None)
            return PersistedRun(
                run_id=run.id, workflow_id=run.workflow_id, status=run.status,
                definition=copy.deepcopy(run.definition), inputs=copy.deepcopy(run.inputs),
                workflow_digest=run.workflow_digest,
                organization_id=run.organization_id, owner_pid=run.owner_pid,
                heartbeat_at=run.heartbeat_at, cancel_requested=run.cancel_requested)

    def load_steps(self, run_id: str) -> list[PersistedStep]:
        """Every step of a run in creation order (empty for an unknown run)."""
        with self.tables.lock:
            steps = sorted(self.tables.steps.get(run_id, {}).values(), key=lambda s: s.seq)
            return [PersistedStep(
                step_id=s.step_id, block_id=s.block_id, status=s.status,
                retry_count=s.retry_count,
                outputs={h: Payload.from_dict(copy.deepcopy(p))
                         for h, p in (s.outputs or {}).items()},
                control=copy.deepcopy(s.control), reason=s.reason,
                error=copy.deepcopy(s.error) if s.status is StepStatus.ERROR else None,
            ) for s in steps]

    def heartbeat(self, run_id: str, now: float) -> None:
        """Record that the owning process is alive. Raises NotFoundError."""
        self._set_run(run_id, heartbeat_at=now)

    def set_owner(self, run_id: str, pid: int, now: float) -> None:
        """Make ``pid`` the run's owner with a fresh heartbeat. Raises NotFoundError."""
        self._set_run(run_id, owner_pid=pid, heartbeat_at=now)

    def claim_owner(self, run_id: str, pid: int, now: float, *, seen_pid: int | None,
                    seen_heartbeat: float | None) -> bool:
        """Compare-and-set the owner; True when this call took the run."""
        with self.tables.lock:
            run = self.tables.runs.get(run_id)
            if run is None or (run.owner_pid, run.heartbeat_at) != (seen_pid, seen_heartbeat):
                return False
            run.owner_pid, run.heartbeat_at = pid, now
            return True

    def request_cancel(self, run_id: str, reason: str = "cancelled by request") -> None:
        """Flag the run for cancellation with ``reason``. Raises NotFoundError."""
        self._set_run(run_id, cancel_requested=True, reason=reason)

    def cancel_requested(self, run_id: str) -> str | None:
        """The reason of the cancel request made for the run, or None. Raises NotFoundError."""
        with self.tables.lock:
            run = self._run(run_id, None)
            return (run.reason or "cancelled by request") if run.cancel_requested else None

    def delete_run(self, run_id: str) -> None:
        """Delete a run with its steps, artifacts and reviews. Raises NotFoundError."""
        with self.tables.lock:
            if self.tables.runs.pop(run_id, None) is None:
                raise NotFoundError("run", run_id)
            self.tables.steps.pop(run_id, None)
            for table in (self.tables.artifacts, self.tables.reviews):
                for key in [k for k, v in table.items() if v.run_id == run_id]:
                    del table[key]
            reviews = set(self.tables.reviews)
            for key in [k for k, v in self.tables.review_versions.items()
                        if v.review_id not in reviews]:
                del self.tables.review_versions[key]
            self.step_logs.forget(run_id)

    def _set_run(self, run_id: str, **values: Any) -> None:
        with self.tables.lock:
            run = self._run(run_id, None)
            for name, value in values.items():
                setattr(run, name, value)

    def append_logs(self, run_id: str, logs: Sequence[AttemptLog], *, now: float) -> None:
        """Store what attempts wrote, after each step's earlier entries.

        Raises:
            NotFoundError: no such run.
        """
        with self.tables.lock:
            self._run(run_id, None)
            self.step_logs.append(run_id, logs)

    def page_logs(self, run_id: str, step_id: str, *, organization_id: str | None = None,
                  attempt: int | None = None, after: int | None = None, limit: int = 500
                  ) -> RecordPage[LogRecord]:
        """One page of a step's log entries in order.

        Raises:
            NotFoundError: the run is not visible, or it has no such step.
            UsageError: a limit out of range, or a negative cursor.
        """
        check_log_page(limit, after)
        with self.tables.lock:
            self._run(run_id, organization_id)
            if step_id not in self.tables.steps.get(run_id, {}):
                raise step_not_found(step_id)
        return self.step_logs.page(run_id, step_id, attempt=attempt, after=after, limit=limit)

    def transitions(self, run_id: str, step_id: str | None = None) -> list[dict[str, Any]]:
        """The audit trail of a run (or one step), by time, step creation, move order."""
        with self.tables.lock:
            rows = [(t["at"], s.seq, i, {"step_id": s.step_id, **copy.deepcopy(t)})
                    for s in self.tables.steps.get(run_id, {}).values()
                    if step_id in (None, s.step_id) for i, t in enumerate(s.trail)]
        return [row[3] for row in sorted(rows, key=lambda r: r[:3])]

    # ------------------------------------------------------------------ reviews

    def reviews(self, *, run_id: str | None = None, status: str | None = None,
                limit: int | None = 100) -> list[Review]:
        """Reviews newest first, optionally of one run and one status."""
        with self.tables.lock:
            found = [r for r in self.tables.reviews.values()
                     if (not run_id or r.run_id == run_id) and (not status or r.status == status)]
        found.sort(key=lambda r: (-r.created_at, r.id))
        return copy.deepcopy(found if limit is None else found[:limit])

    def review(self, review_id: str) -> Review:
        """One review. Raises NotFoundError."""
        with self.tables.lock:
            found = self.tables.reviews.get(review_id)
        if found is None:
            raise NotFoundError("review", review_id)
        return copy.deepcopy(found)

    def decide_review(self, review_id: str, *, approved: bool, data: Any = None,
                      has_data: bool = False, reason: str = "", now: float
                      ) -> tuple[Review, bool]:
        """Record a decision. Returns the review and whether it changed.

        Raises:
            InputError: a rejection with data.
            NotFoundError: no such review.
            ConflictError: it was already decided differently.
        """
        check_decision(approved, has_data)
        with self.tables.lock:
            review = self.review(review_id)
            settled = settle(review, approved=approved, data=data, has_data=has_data)
            if settled is None:
                return review, False
            decision, payload = settled
            review = self.tables.reviews[review_id] = replace(
                review, status=decision, decision=decision,
                decision_data=None if payload is None else as_json(
                    {"data": data}, "decision", review_id),
                reason=reason or None, decided_at=now)
            return copy.deepcopy(review), True

    def add_review_version(self, *, review_id: str, parent_id: str,
                           snapshot: dict[str, Any], note: str | None, author_id: str,
                           now: float) -> ReviewVersion:
        """Store a correction (the same content returns the version stored first)."""
        vid = version_id_for(review_id, parent_id, snapshot)
        version = ReviewVersion(id=vid, review_id=review_id, parent_id=parent_id,
                                snapshot=as_json(snapshot, "snapshot", review_id), note=note,
                                author_id=author_id, author_kind="human", created_at=now)
        with self.tables.lock:
            return copy.deepcopy(self.tables.review_versions.setdefault(vid, version))

    def review_versions(self, review_id: str) -> list[ReviewVersion]:
        """The corrections of a review, oldest first."""
        with self.tables.lock:
            found = [v for v in self.tables.review_versions.values() if v.review_id == review_id]
        return copy.deepcopy(sorted(found, key=lambda v: (v.created_at, v.id)))

    def review_version(self, version_id: str) -> ReviewVersion:
        """One correction. Raises NotFoundError."""
        with self.tables.lock:
            found = self.tables.review_versions.get(version_id)
        if found is None:
            raise version_not_found(version_id)
        return copy.deepcopy(found)

    # ------------------------------------------------------------------ lifetime

    def reader(self, organization_id: str | None = None) -> ReadAPI:
        """A :class:`store.api.ReadAPI` over this store."""
        from store.api import ReadAPI

        return ReadAPI(self, organization_id=organization_id)

    def close(self) -> None:
        """Nothing to release: the data lives as long as the object."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
