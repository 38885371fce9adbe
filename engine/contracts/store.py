"""The storage protocol the runner writes through.

The scheduler never sees a store. The runner hands each batch of scheduler events to
:meth:`Store.apply`, which writes them in one transaction. Implementations must commit
before returning: the engine relies on a step's completion being durable before any
step that depends on it starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.contracts.events import NewRun, RunUpdate, StepEvent
from engine.contracts.files import FileStore
from engine.contracts.values import Payload, RunStatus, StepStatus


@dataclass(frozen=True, slots=True, kw_only=True)
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


@dataclass(frozen=True, slots=True, kw_only=True)
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


class Store(Protocol):
    """What the runner needs from storage."""

    files: FileStore

    def create_run(self, run: NewRun, *, now: float) -> None:
        """Insert the run row (status ``pending``)."""
        ...

    def apply(
        self,
        run_id: str,
        events: Sequence[StepEvent],
        run_update: RunUpdate | None = None,
        *,
        now: float,
    ) -> None:
        """Persist a batch of step events (and a run change) in one committed transaction."""
        ...

    def load_run(self, run_id: str) -> PersistedRun:
        """The run row. Raises NotFoundError."""
        ...

    def load_steps(self, run_id: str) -> list[PersistedStep]:
        """Every persisted step of a run, in creation order."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
