"""The read API: steps and runs of a stepwell store, as the Retab API shows them.

:class:`ReadAPI` answers the queries: one run or step, filtered lists, the legacy step
list and artifacts, scoped to one organization when given. It asks any
:class:`~engine.contracts.store.ReadStore` (the SQLite store, a read-only SQLite
connection, the in-memory store) for records and turns them into the read models of
:mod:`store.shapes` (re-exported here) with :mod:`store.convert`. Lists are
keyset-paginated; cursors are the ids in ``list_metadata``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from engine.contracts.errors import UsageError
from engine.contracts.reads import (
    RecordPage,
    ReviewEntry,
    ReviewFilters,
    RunFilters,
    RunRecord,
    StepFilters,
)
from engine.contracts.store import ReadStore
from store.convert import legacy_model, run_model, step_model, ts
from store.log_shapes import StepLogLine, log_page
from store.shapes import (
    ArtifactRef,
    LegacyStep,
    ListMetadata,
    Page,
    Step,
    WorkflowRun,
    sdk_block_type,
    sdk_legacy_step,
    sdk_run,
    sdk_step,
)

__all__ = [
    "ArtifactRef",
    "LegacyStep",
    "ListMetadata",
    "Page",
    "ReadAPI",
    "Step",
    "WorkflowRun",
    "sdk_block_type",
    "sdk_legacy_step",
    "sdk_run",
    "sdk_step",
]

T = TypeVar("T")
R = TypeVar("R")

_STATUS_ALIASES = {"waiting_for_human": "awaiting_review"}


def _as_list(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def _seq(cursor: int | str) -> int:
    """A log cursor as the seq it names.

    Raises:
        UsageError: it is not a whole number.
    """
    try:
        return int(cursor)
    except ValueError:
        raise UsageError(f"after={cursor!r} is not a log cursor; pass the seq of the last "
                         "line seen (list_metadata.after).") from None


def _page(records: RecordPage[R], data: list[T], ids: list[str]) -> Page[T]:
    meta = ListMetadata(
        before=ids[0] if ids and records.more_before else None,
        after=ids[-1] if ids and records.more_after else None,
    )
    return Page[Any](data=data, list_metadata=meta)


class ReadAPI:
    """Queries over a store, scoped to one organization when given.

    Args:
        reads: the store to read (any :class:`~engine.contracts.store.ReadStore`).
        organization_id: when set, runs of other organizations are invisible (not found).
    """

    def __init__(self, reads: ReadStore, *, organization_id: str | None = None) -> None:
        self.reads = reads
        self.organization_id = organization_id

    # ------------------------------------------------------------------ runs

    def get_run(self, run_id: str) -> WorkflowRun:
        """One run. Raises NotFoundError (also for another organization's run)."""
        return run_model(self.run_record(run_id))

    def run_record(self, run_id: str) -> RunRecord:
        """One run as stored (with its owner process and heartbeat). Raises NotFoundError."""
        return self.reads.read_run(run_id, organization_id=self.organization_id)

    def list_runs(
        self,
        *,
        status: str | Sequence[str] | None = None,
        workflow_id: str | None = None,
        limit: int = 20,
        after: str | None = None,
        before: str | None = None,
    ) -> Page[WorkflowRun]:
        """Runs, newest first, keyset-paginated by run id cursors."""
        filters = RunFilters(statuses=_as_list(status), workflow_id=workflow_id)
        return self.page_runs(filters, limit=limit, after=after, before=before)

    def page_runs(self, filters: RunFilters, *, limit: int, after: str | None,
                  before: str | None, descending: bool = True) -> Page[WorkflowRun]:
        """One page of the runs matching ``filters`` (stored statuses), keyset-paginated by
        run id.

        Raises:
            NotFoundError: the cursor is not a run visible to this organization.
            UsageError: both cursors, or a limit out of range.
        """
        records = self.reads.page_runs(filters, organization_id=self.organization_id,
                                       limit=limit, after=after, before=before,
                                       descending=descending)
        data = [run_model(r) for r in records.items]
        return _page(records, data, [r.id for r in records.items])

    # ------------------------------------------------------------------ steps

    def get_step(self, step_id: str, run_id: str | None = None) -> Step:
        """One step by id; ``run_id`` disambiguates a step id several runs share.

        Raises:
            NotFoundError: no such step (visible to this organization).
            ConflictError: several runs have this step id and ``run_id`` was not given.
        """
        return step_model(self.reads.read_step(step_id, run_id=run_id,
                                               organization_id=self.organization_id))

    def list_steps(
        self,
        run_id: str,
        *,
        block_id: str | None = None,
        step_id: str | None = None,
        block_type: str | Sequence[str] | None = None,
        status: str | Sequence[str] | None = None,
        limit: int = 100,
        after: str | None = None,
        before: str | None = None,
    ) -> Page[Step]:
        """A run's steps in creation order, filtered, keyset-paginated by step id cursors.

        Raises:
            NotFoundError: unknown run, or a cursor that is not a step of this run.
            UsageError: both ``after`` and ``before``, or a limit outside 1..1000.
        """
        statuses = _as_list(status)
        wanted = None if statuses is None else [_STATUS_ALIASES.get(s, s) for s in statuses]
        filters = StepFilters(block_id=block_id, step_id=step_id,
                              block_types=_as_list(block_type), statuses=wanted)
        records = self.reads.page_steps(run_id, filters, organization_id=self.organization_id,
                                        limit=limit, after=after, before=before)
        data = [step_model(r) for r in records.items]
        return _page(records, data, [r.step_id for r in records.items])

    def list_legacy_steps(self, run_id: str) -> list[LegacyStep]:
        """Every step of a run in the legacy flat shape, in creation order.

        Raises:
            NotFoundError: unknown run.
        """
        org = self.run_record(run_id).organization_id
        steps = self.reads.run_steps(run_id, organization_id=self.organization_id)
        reviews = {e.step_id: (e.decision, e.decided_at) for e in self._run_reviews(run_id)}
        return [legacy_model(s, org, reviews.get(s.step_id)) for s in steps]

    def _run_reviews(self, run_id: str) -> list[ReviewEntry]:
        entries: list[ReviewEntry] = []
        after = None
        while True:
            page = self.reads.page_review_entries(
                ReviewFilters(run_id=run_id, decision_status="all"),
                organization_id=self.organization_id, limit=1000, after=after)
            entries.extend(page.items)
            if not page.more_after:
                return entries
            after = page.items[-1].id

    def list_step_logs(self, step_id: str, *, run_id: str, attempt: int | None = None,
                       after: int | str | None = None, limit: int = 500) -> Page[StepLogLine]:
        """A step's log lines in the order written (:mod:`store.log_shapes`).

        Args:
            step_id: the step.
            run_id: its run.
            attempt: only this attempt (0 is the first).
            after: the ``seq`` of the last line seen (``list_metadata.after``).
            limit: lines per page, 1..1000.

        Raises:
            NotFoundError: no such run (visible to this organization) or step.
            UsageError: a cursor that is not a seq, or a limit out of range.
        """
        cursor = None if after is None else _seq(after)
        return log_page(self.reads.page_logs(run_id, step_id,
                                             organization_id=self.organization_id,
                                             attempt=attempt, after=cursor, limit=limit))

    def get_artifact(self, artifact_id: str) -> dict[str, Any]:
        """The operation record behind a step's ``artifact`` ref (with id, run, step).

        Raises:
            NotFoundError: no such artifact visible to this organization.
        """
        found = self.reads.read_artifact(artifact_id, organization_id=self.organization_id)
        created = ts(found.created_at)
        return {**found.record, "id": found.id, "workflow_run_id": found.run_id,
                "step_id": found.step_id, "operation": found.operation,
                "created_at": created.isoformat().replace("+00:00", "Z") if created else None}
