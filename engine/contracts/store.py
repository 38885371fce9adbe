"""The storage protocols: everything the engine, the server and the read API ask of a store.

The scheduler never sees a store. The runner hands each batch of scheduler events to
:meth:`RunStore.apply`, which writes it in one transaction; durable operations (resume,
cancel, review decisions, rerun) and the HTTP server use the rest. A store is split by
who needs what:

- :class:`RunStore`: runs and their steps, ownership and cancel flags (the runner);
- :class:`ReviewStore`: human reviews, their decisions and corrected versions;
- :class:`WorkflowStore`: the registry of workflows applied over HTTP;
- :class:`~engine.contracts.versions.VersionStore`: their drafts and published versions;
- :class:`~engine.contracts.eval_store.EvalStore`: block evals and block executions;
- :class:`~engine.contracts.file_catalog.FileCatalog`: which organization owns which file;
- :class:`ReadStore`: typed queries for the read API (:mod:`engine.contracts.reads`) and
  overviews of runs (:mod:`engine.contracts.outline`);
- :class:`Store`: all of them, what ``Engine(store=...)`` takes.

Rules every implementation keeps (``tests/store/test_contract.py`` checks them):

- A write method returns only once its change is committed: a step's completion is
  durable before any step that depends on it starts, and is seen by every reader.
- A batch is all or nothing: when :meth:`RunStore.apply` raises, nothing of it is kept.
- Step moves follow :data:`engine.contracts.values.LEGAL_MOVES`
  (:func:`~engine.contracts.values.check_move`); an illegal one raises
  ``IllegalTransition`` before anything is written.
- Unknown ids raise ``NotFoundError``; writes that contradict what is recorded raise
  ``ConflictError``; failures of the storage itself raise ``StorageError``. Values JSON
  cannot hold raise ``StorageError`` naming their owner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from engine.contracts.errors import UsageError
from engine.contracts.eval_store import EvalStore
from engine.contracts.events import NewRun, RunUpdate, StepEvent
from engine.contracts.file_catalog import FileCatalog
from engine.contracts.files import FileStore
from engine.contracts.frozen import record
from engine.contracts.outline_store import OutlineStore
from engine.contracts.values import Payload, RunStatus, StepStatus
from engine.contracts.versions import VersionStore

if TYPE_CHECKING:  # only named in annotations: importing the protocols stays light
    from engine.contracts.logs import AttemptLog, LogRecord
    from engine.contracts.reads import (
        ArtifactRecord,
        RecordPage,
        ReviewEntry,
        ReviewFilters,
        RunFilters,
        RunRecord,
        StepFilters,
        StepRecord,
    )
    from engine.contracts.records import (
        ApplyOutcome,
        RegisteredWorkflow,
        Review,
        ReviewVersion,
        WorkflowVersion,
    )

#: What a store's commits survive (docs/storage.md): ``process`` (a crash of the process,
#: the default), ``full`` (power loss too) and ``scratch`` (a crash of the process, in a
#: database thrown away afterwards: nothing is fsynced).
DURABILITIES = ("process", "full", "scratch")


def check_durability(value: str) -> str:
    """``value``, when it names one of :data:`DURABILITIES`.

    Raises:
        UsageError: it does not; the message lists them.
    """
    if value not in DURABILITIES:
        raise UsageError(f"unknown durability {value!r}: use 'process' (the default), "
                         "'full' or 'scratch'.")
    return value


@record
class PersistedStep:
    """A step as the runner needs it to resume a run."""

    step_id: str
    block_id: str
    status: StepStatus
    retry_count: int = 0
    outputs: dict[str, Payload] = field(default_factory=dict)
    control: dict[str, Any] | None = None
    reason: str | None = None
    error: dict[str, Any] | None = None


@record
class PersistedRun:
    """A run row as the runner needs it to resume or rerun."""

    run_id: str
    workflow_id: str
    status: RunStatus
    definition: dict[str, Any]
    inputs: dict[str, Any]
    workflow_digest: str
    organization_id: str = "org_local"
    owner_pid: int | None = None
    heartbeat_at: float | None = None
    cancel_requested: bool = False
    #: The machine ``owner_pid`` is a process of (None: unknown, this one).
    owner_host: str | None = None


@runtime_checkable
class RunStore(Protocol):
    """Runs and their steps: what the runner and the durable operations write and read."""

    #: Files and payloads handed to blocks (content-addressed).
    files: FileStore

    def create_run(self, run: NewRun, *, now: float) -> None:
        """Insert the run (status ``pending``), owned by this process, heartbeat ``now``.

        Raises:
            ConflictError: a run with this id exists (message says "already exists").
        """
        ...

    def apply(self, run_id: str, events: Sequence[StepEvent],
              run_update: RunUpdate | None = None, *, now: float,
              logs: Sequence[AttemptLog] = ()) -> None:
        """Persist what attempts wrote (``logs``, as :meth:`append_logs` stores them),
        then a batch of step events, then the run change, in one committed transaction,
        every row stamped ``now``: a step's log is there once its outcome is, and a
        step that wrote something costs no commit of its own.

        A ``pending`` event creates a step; every later event is one lifecycle move
        and appends to the step's audit trail (:meth:`transitions`). Fields an event
        leaves None keep their stored value. A step entering ``awaiting_review`` opens
        its review (:meth:`ReviewStore.reviews`). A terminal step stamps its completion
        time and duration. A ``completed`` step with an artifact records it under a
        deterministic id (same run, step and attempt: same id). ``events`` may be empty
        (logs only).

        Raises:
            IllegalTransition: a move the lifecycle table forbids, a step created twice
                or moved before it was created; nothing was written (no log either).
            NotFoundError: the run does not exist.
            StorageError: a value JSON cannot hold, an artifact without ``operation``,
                or the storage failed; nothing was written.
        """
        ...

    def load_run(self, run_id: str) -> PersistedRun:
        """The run as the runner needs it to resume or rerun.

        Raises:
            NotFoundError: no such run.
        """
        ...

    def load_steps(self, run_id: str) -> list[PersistedStep]:
        """Every step of a run in creation order (empty for an unknown run).

        ``error`` is set only for a step in ``error`` (not for retried attempts).
        """
        ...

    def heartbeat(self, run_id: str, now: float) -> None:
        """Record (committed) that the owning process is alive at ``now``.

        Raises:
            NotFoundError: no such run.
        """
        ...

    def set_owner(self, run_id: str, pid: int, now: float) -> None:
        """Make ``pid`` the run's owner with a fresh heartbeat (committed).

        Raises:
            NotFoundError: no such run.
        """
        ...

    def claim_owner(self, run_id: str, pid: int, now: float, *, seen_pid: int | None,
                    seen_heartbeat: float | None) -> bool:
        """Compare-and-set: make ``pid`` the owner only if owner and heartbeat are still
        exactly those seen. Of two processes claiming one run, one wins.

        Returns:
            True when this call took the run; False otherwise (also for an unknown run).
        """
        ...

    def request_cancel(self, run_id: str, reason: str = "cancelled by request") -> None:
        """Flag the run for cancellation with ``reason`` (committed); its owner polls
        :meth:`cancel_requested` and ends the run.

        Raises:
            NotFoundError: no such run.
        """
        ...

    def cancel_requested(self, run_id: str) -> str | None:
        """The reason of the cancel request made for the run (by any process), or None.

        Raises:
            NotFoundError: no such run.
        """
        ...

    def delete_run(self, run_id: str) -> None:
        """Delete a run with its steps, artifacts, reviews and review versions (committed).

        Raises:
            NotFoundError: no such run.
        """
        ...

    def transitions(self, run_id: str, step_id: str | None = None) -> list[dict[str, Any]]:
        """The audit trail of a run (or one step): ``{step_id, status, at, retry_count,
        detail}``, ``detail`` holding the error and/or reason given with the move.

        Ordered by time; within one time by step creation order, then move order.
        Empty for an unknown run.
        """
        ...

    def append_logs(self, run_id: str, logs: Sequence[AttemptLog], *, now: float) -> None:
        """Store what attempts of the run's steps wrote (committed, in one transaction):
        each step's entries follow its earlier ones, numbered on (``seq`` from 1, across
        attempts). The runner hands finished attempts' logs to :meth:`apply`, with their
        outcomes; it calls this for the lines of attempts still running.

        Raises:
            NotFoundError: the run does not exist.
            StorageError: the storage failed; nothing was written.
        """
        ...


@runtime_checkable
class ReviewStore(Protocol):
    """Human reviews: opened by :meth:`RunStore.apply`, decided by people."""

    def reviews(self, *, run_id: str | None = None, status: str | None = None,
                limit: int | None = 100) -> list[Review]:
        """Reviews newest first (``created_at`` descending, then id), optionally of one
        run and one status (``pending``, ``approved``, ``rejected``); ``limit`` None
        means all."""
        ...

    def review(self, review_id: str) -> Review:
        """One review.

        Raises:
            NotFoundError: no such review.
        """
        ...

    def decide_review(self, review_id: str, *, approved: bool, data: Any = None,
                      has_data: bool = False, reason: str = "", now: float
                      ) -> tuple[Review, bool]:
        """Record a decision (committed). The same decision again changes nothing.

        Returns:
            The review, and whether this call changed it.

        Raises:
            InputError: a rejection with data (checked first).
            NotFoundError: no such review.
            ConflictError: it was already decided differently.
        """
        ...

    def add_review_version(self, *, review_id: str, parent_id: str,
                           snapshot: dict[str, Any], note: str | None, author_id: str,
                           now: float) -> ReviewVersion:
        """Store a corrected version (committed); idempotent: the same content returns
        the version stored first (its id is :func:`~engine.contracts.records.version_id_for`)."""
        ...

    def review_versions(self, review_id: str) -> list[ReviewVersion]:
        """The corrected versions of a review, oldest first (the proposal is not stored)."""
        ...

    def review_version(self, version_id: str) -> ReviewVersion:
        """One corrected version.

        Raises:
            NotFoundError: no such version.
        """
        ...


@runtime_checkable
class WorkflowStore(Protocol):
    """The registry of workflows applied over HTTP, one organization at a time."""

    def apply_workflow(self, *, name: str, version_id: str, definition: dict[str, Any],
                       yaml: str, organization_id: str, workflow_id: str | None = None,
                       now: float) -> ApplyOutcome:
        """Register a new workflow, its first version published (``create``), or make
        ``definition`` the draft of ``workflow_id`` (``update``; ``noop`` when ``version_id``
        is already the draft's). Committed.

        Raises:
            NotFoundError: ``workflow_id`` is not a workflow of ``organization_id``.
        """
        ...

    def get_workflow(self, workflow_id: str, organization_id: str) -> RegisteredWorkflow:
        """One workflow of ``organization_id``.

        Raises:
            NotFoundError: no such workflow in this organization.
        """
        ...

    def workflow_version(self, workflow_id: str, organization_id: str,
                         selector: str | None = None) -> WorkflowVersion:
        """The version to run: the published one for None or ``production``; the draft's
        for ``draft``, ``latest`` or ``current``; else the version whose id (optionally
        ``ver_``-prefixed) is ``selector``.

        Raises:
            NotFoundError: no such workflow, no such version of it, or (``production``)
                nothing was published; the message says to publish or run the draft.
        """
        ...

    def list_workflows(self, organization_id: str, *, limit: int = 10,
                       after: str | None = None, before: str | None = None,
                       descending: bool = True, project_id: str | None = None,
                       sort_by: str = "created_at") -> RecordPage[RegisteredWorkflow]:
        """One page of an organization's workflows (of one project when given) ordered by
        ``(sort_by, id)``; ``sort_by`` is ``created_at`` or ``updated_at``.

        Raises:
            NotFoundError: the cursor is not a workflow of this organization.
        """
        ...


@runtime_checkable
class ReadStore(OutlineStore, Protocol):
    """Queries the read API needs (and the overviews of :class:`OutlineStore`). Reads see
    every committed write, and only those.

    Every method raises ``StorageError`` when the backing storage fails, and
    ``UsageError`` for paging arguments :func:`~engine.contracts.reads.check_page` refuses.
    """

    def read_run(self, run_id: str, *, organization_id: str | None = None) -> RunRecord:
        """One run.

        Raises:
            NotFoundError: no such run (or it belongs to another organization).
        """
        ...

    def page_runs(self, filters: RunFilters, *, organization_id: str | None = None,
                  limit: int = 20, after: str | None = None, before: str | None = None,
                  descending: bool = True) -> RecordPage[RunRecord]:
        """One page of the runs matching ``filters`` ordered by ``(created_at, id)``,
        newest first unless ``descending`` is False.

        Raises:
            NotFoundError: the cursor is not a visible run (``NotFoundError("run", id)``).
        """
        ...

    def read_step(self, step_id: str, *, run_id: str | None = None,
                  organization_id: str | None = None) -> StepRecord:
        """One step; ``run_id`` says which run when several runs share the step id.

        Raises:
            NotFoundError: ``run_id`` is not a visible run, or no such step
                (:func:`~engine.contracts.reads.step_not_found`).
            ConflictError: several visible runs have this step id and ``run_id`` is None
                (:func:`~engine.contracts.reads.ambiguous_step`).
        """
        ...

    def page_steps(self, run_id: str, filters: StepFilters, *,
                   organization_id: str | None = None, limit: int = 100,
                   after: str | None = None, before: str | None = None
                   ) -> RecordPage[StepRecord]:
        """One page of a run's steps matching ``filters``, in creation order.

        Raises:
            NotFoundError: the run is not visible, or the cursor is not one of its steps
                (:func:`~engine.contracts.reads.step_cursor_not_found`).
        """
        ...

    def run_steps(self, run_id: str, *, organization_id: str | None = None
                  ) -> list[StepRecord]:
        """Every step of a run, in creation order.

        Raises:
            NotFoundError: the run is not visible.
        """
        ...

    def read_artifact(self, artifact_id: str, *, organization_id: str | None = None
                      ) -> ArtifactRecord:
        """The operation record behind a step's artifact ref.

        Raises:
            NotFoundError: no such artifact, or its run belongs to another
                organization: the same error either way
                (:func:`~engine.contracts.reads.artifact_not_found`), naming no run.
        """
        ...

    def read_review_entry(self, review_id: str, *, organization_id: str | None = None
                          ) -> ReviewEntry:
        """One review of the queue, whatever its decision status.

        Raises:
            NotFoundError: no such visible review
                (:func:`~engine.contracts.reads.review_entry_not_found`).
        """
        ...

    def page_review_entries(self, filters: ReviewFilters, *,
                            organization_id: str | None = None, limit: int = 50,
                            after: str | None = None, before: str | None = None,
                            descending: bool = False) -> RecordPage[ReviewEntry]:
        """One page of the review queue ordered by ``(created_at, id)``, oldest first
        unless ``descending``.

        Raises:
            NotFoundError: the cursor is not a visible review.
        """
        ...

    def page_logs(self, run_id: str, step_id: str, *, organization_id: str | None = None,
                  attempt: int | None = None, after: int | None = None, limit: int = 500
                  ) -> RecordPage[LogRecord]:
        """One page of a step's log entries in the order written (``seq``), after
        ``seq`` ``after``, of every attempt or of ``attempt``; empty for a step that
        wrote nothing.

        Raises:
            NotFoundError: the run is not visible, or it has no such step.
            UsageError: ``limit`` outside 1..1000, or a negative ``after``.
        """
        ...


@runtime_checkable
class Store(RunStore, ReviewStore, WorkflowStore, VersionStore, EvalStore, FileCatalog,
            ReadStore, Protocol):
    """Everything stepwell stores: what ``Engine(store=...)`` and the server take."""

    @property
    def in_memory(self) -> bool:
        """True when nothing outlives :meth:`close` (an in-memory database)."""
        ...

    def close(self) -> None:
        """Release connections and temporary files; the store is unusable afterwards."""
        ...
