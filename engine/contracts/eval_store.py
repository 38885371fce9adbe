"""The :class:`EvalStore` protocol, apart from its records (:mod:`engine.contracts.evals`).

Composing :class:`~engine.contracts.store.Store` needs the protocol only; its records
are imported where one is built or read. The rules it keeps are in
:mod:`engine.contracts.evals`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from engine.contracts.evals import (
        BlockExecution,
        EvalDefinition,
        EvalResult,
        EvalRun,
        EvalRunFilters,
    )
    from engine.contracts.reads import RecordPage


@runtime_checkable
class EvalStore(Protocol):
    """Evals, eval runs, eval results and block executions, one organization at a time."""

    def save_eval(self, record: EvalDefinition) -> None:
        """Insert or replace an eval (committed)."""
        ...

    def get_eval(self, eval_id: str, organization_id: str) -> EvalDefinition:
        """One eval.

        Raises:
            NotFoundError: no such eval in this organization.
        """
        ...

    def delete_eval(self, eval_id: str, organization_id: str) -> None:
        """Delete an eval (its results stay).

        Raises:
            NotFoundError: no such eval in this organization.
        """
        ...

    def page_evals(self, organization_id: str, *, workflow_id: str,
                   block_id: str | None = None, limit: int = 50, after: str | None = None,
                   before: str | None = None, descending: bool = True
                   ) -> RecordPage[EvalDefinition]:
        """One page of a workflow's evals (optionally of one block).

        Raises:
            NotFoundError: the cursor is not an eval of this list.
        """
        ...

    def save_eval_run(self, run: EvalRun) -> None:
        """Insert or replace an eval run (committed); a stored cancel request is kept."""
        ...

    def cancel_eval_run(self, run_id: str, organization_id: str, *, reason: str,
                        now: float) -> EvalRun:
        """Ask a run to stop: sets ``cancel_requested``; a ``pending`` or ``queued`` run
        becomes ``cancelled`` at once.

        Raises:
            NotFoundError: no such run in this organization.
        """
        ...

    def get_eval_run(self, run_id: str, organization_id: str) -> EvalRun:
        """One eval run.

        Raises:
            NotFoundError: no such run in this organization.
        """
        ...

    def page_eval_runs(self, organization_id: str, filters: EvalRunFilters, *,
                       limit: int = 50, after: str | None = None, before: str | None = None,
                       descending: bool = True) -> RecordPage[EvalRun]:
        """One page of eval runs matching ``filters``.

        Raises:
            NotFoundError: the cursor is not a run of this list.
        """
        ...

    def save_eval_result(self, result: EvalResult) -> None:
        """Insert or replace one result (committed)."""
        ...

    def get_eval_result(self, result_id: str, organization_id: str) -> EvalResult:
        """One result.

        Raises:
            NotFoundError: no such result in this organization.
        """
        ...

    def page_eval_results(self, organization_id: str, *, eval_run_id: str | None = None,
                          eval_id: str | None = None, limit: int = 20,
                          after: str | None = None, before: str | None = None,
                          descending: bool = True) -> RecordPage[EvalResult]:
        """One page of results of one run, or of one eval across runs.

        Raises:
            NotFoundError: the cursor is not a result of this list.
        """
        ...

    def save_block_execution(self, record: BlockExecution) -> None:
        """Insert or replace a block execution (committed)."""
        ...

    def get_block_execution(self, execution_id: str, organization_id: str) -> BlockExecution:
        """One block execution.

        Raises:
            NotFoundError: no such execution in this organization.
        """
        ...

    def page_block_executions(self, organization_id: str, *, run_id: str, block_id: str,
                              limit: int = 20, after: str | None = None,
                              before: str | None = None, descending: bool = True
                              ) -> RecordPage[BlockExecution]:
        """One page of the executions of one block of one run.

        Raises:
            NotFoundError: the cursor is not an execution of this list.
        """
        ...
