"""The :class:`OutlineStore` protocol, apart from its records (:mod:`engine.contracts.outline`).

Composing :class:`~engine.contracts.store.ReadStore` needs the protocol only; its
records are imported where one is built or read. What each query answers, and how
loop items are counted, is in :mod:`engine.contracts.outline`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from engine.contracts.outline import (
        BlockTally,
        LoopSize,
        OutlineStep,
        RunCounts,
        RunPresence,
        StepMove,
        WorkflowChoice,
    )


class OutlineStore(Protocol):
    """The overview queries of a read store (see the module docstring).

    Each raises ``StorageError`` when the backing storage fails.
    """

    def outline_steps(self, run_id: str, step_ids: Sequence[str] | None = None, *,
                      organization_id: str | None = None) -> list[OutlineStep]:
        """Steps of a run without payloads, in creation order: those of ``step_ids``
        (unknown ids left out), or every step when None (small runs).

        Raises:
            NotFoundError: the run is not visible.
        """
        ...

    def block_tallies(self, run_id: str, *, organization_id: str | None = None
                      ) -> list[BlockTally]:
        """Steps per block and status (loop sentinels included), in any order.

        Raises:
            NotFoundError: the run is not visible.
        """
        ...

    def iteration_tallies(self, run_id: str, container_step_id: str, *,
                          organization_id: str | None = None) -> dict[int, dict[str, int]]:
        """Iteration -> ``{status: steps}`` over every step inside each iteration of a
        loop container step (nested loops' steps included).

        Raises:
            NotFoundError: the run is not visible.
        """
        ...

    def iteration_steps(self, run_id: str, container_step_id: str,
                        iterations: Sequence[int], *, organization_id: str | None = None
                        ) -> dict[int, list[OutlineStep]]:
        """The steps directly inside some iterations of a container step (sentinels
        included, steps of nested loops not), each iteration's in creation order.

        Raises:
            NotFoundError: the run is not visible.
        """
        ...

    def run_counts(self, run_ids: Sequence[str], *, organization_id: str | None = None
                   ) -> dict[str, RunCounts]:
        """Steps per status and loop items of each visible run that has steps."""
        ...

    def run_presence(self, run_ids: Sequence[str], *, organization_id: str | None = None
                     ) -> dict[str, RunPresence]:
        """Workflow, status, owner, heartbeat and oldest undecided review of each visible
        run (without decoding its payloads, as ``read_run`` does)."""
        ...

    def step_moves(self, run_id: str, step_ids: Sequence[str], *,
                   organization_id: str | None = None) -> dict[str, list[StepMove]]:
        """Step id -> its lifecycle moves, oldest first (empty for an unknown step).

        Raises:
            NotFoundError: the run is not visible.
        """
        ...

    def loop_sizes(self, run_ids: Sequence[str], *, organization_id: str | None = None
                   ) -> list[LoopSize]:
        """The size of every loop a container step of the visible runs opened, read
        from the note on its log (:func:`parse_loop_note`); loops not opened yet (or
        whose note was not kept) are absent."""
        ...

    def workflow_choices(self, *, organization_id: str | None = None
                         ) -> list[WorkflowChoice]:
        """The workflows that have visible runs, by latest name, then id."""
        ...

    def data_version(self) -> int:
        """A number that changes whenever something is committed to the storage, by
        this process or another one. Compare values of one store object only: two
        connections may count differently."""
        ...
