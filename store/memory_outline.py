"""The overview queries (:class:`~engine.contracts.outline.OutlineStore`) of the memory store.

:class:`MemoryOutline` answers them from :class:`~store.memory_rows.Tables` with the
meaning :mod:`store.sql_outline` gives its SQL; it is mixed into
:class:`store.memory_reads.MemoryReads`. A memory store has no commit counter of its
own, so :meth:`MemoryOutline.data_version` counts the changes it sees in a fingerprint of
the tables (runs, step moves, reviews, corrections and log entries).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from engine.contracts.bounded import clean_text
from engine.contracts.errors import NotFoundError
from engine.contracts.logs import LOOP_LOGGER
from engine.contracts.outline import (
    SENTINEL_END,
    SENTINEL_START,
    BlockTally,
    LoopSize,
    OutlineStep,
    RunCounts,
    RunPresence,
    StepMove,
    WorkflowChoice,
    iteration_bounds,
    iteration_of,
    parse_loop_note,
)
from store.memory_rows import RunRow, StepRow, Tables
from store.sql_outline import fold_count, new_count
from store.step_logs import MemoryLogs


def outline_step(step: StepRow) -> OutlineStep:
    """A step row without its payloads."""
    error = step.error.get("message") if step.status == "error" and isinstance(
        step.error, dict) else None
    return OutlineStep(seq=step.seq, step_id=step.step_id, block_id=step.block_id,
                       block_type=step.block_type, label=step.label or "",
                       status=step.status.value,
                       scope=tuple((f["container_id"], int(f["iteration"]))
                                   for f in step.scope or ()),
                       retry_count=step.retry_count, reason=step.reason, error=error,
                       created_at=step.created_at, started_at=step.started_at,
                       completed_at=step.completed_at)


def _kind(block_type: str) -> int:
    return 1 if block_type.endswith(SENTINEL_START) else 2 if block_type.endswith(
        SENTINEL_END) else 0


class SeenChanges:
    """The last fingerprint seen of a memory store's tables, and how often it changed
    (callers hold the tables' lock)."""

    __slots__ = ("count", "fingerprint")

    def __init__(self) -> None:
        self.count = 0
        self.fingerprint: int | None = None

    def advance(self, fingerprint: int) -> int:
        """Count a change when ``fingerprint`` differs from the last one; the count."""
        if fingerprint != self.fingerprint:
            self.fingerprint = fingerprint
            self.count += 1
        return self.count


class MemoryOutline:
    """The overview queries over ``self.tables`` and ``self.step_logs``."""

    tables: Tables
    step_logs: MemoryLogs
    #: Made on the first :meth:`data_version` call.
    _seen: SeenChanges | None = None

    def _visible_run(self, run_id: str, organization_id: str | None) -> RunRow:
        run = self.tables.runs.get(run_id)
        if run is None or organization_id not in (None, run.organization_id):
            raise NotFoundError("run", run_id)
        return run

    def _visible_runs(self, run_ids: Iterable[str], organization_id: str | None
                      ) -> list[RunRow]:
        runs = (self.tables.runs.get(r) for r in dict.fromkeys(run_ids))
        return [r for r in runs
                if r is not None and organization_id in (None, r.organization_id)]

    def _steps(self, run_id: str) -> dict[str, StepRow]:
        return self.tables.steps.get(run_id, {})

    def outline_steps(self, run_id: str, step_ids: Sequence[str] | None = None, *,
                      organization_id: str | None = None) -> list[OutlineStep]:
        """Steps of a run without payloads, in creation order. Raises NotFoundError."""
        with self.tables.lock:
            self._visible_run(run_id, organization_id)
            steps = self._steps(run_id)
            rows = steps.values() if step_ids is None else [
                steps[s] for s in dict.fromkeys(step_ids) if s in steps]
            return [outline_step(s) for s in sorted(rows, key=lambda s: s.seq)]

    def block_tallies(self, run_id: str, *, organization_id: str | None = None
                      ) -> list[BlockTally]:
        """Steps per block and status. Raises NotFoundError."""
        groups: dict[tuple[str, str], list[StepRow]] = {}
        with self.tables.lock:
            self._visible_run(run_id, organization_id)
            for step in self._steps(run_id).values():
                groups.setdefault((step.block_id, step.status.value), []).append(step)
            out = []
            for (block_id, status), steps in groups.items():
                reasons = [s.reason for s in steps if s.reason is not None]
                errors = [outline_step(s).error for s in steps if status == "error"]
                out.append(BlockTally(
                    block_id=block_id, block_type=min(s.block_type for s in steps),
                    label=min(s.label or "" for s in steps), status=status, count=len(steps),
                    reason=min(reasons) if reasons else None,
                    error=min((e for e in errors if e is not None), default=None)))
        return out

    def iteration_tallies(self, run_id: str, container_step_id: str, *,
                          organization_id: str | None = None) -> dict[int, dict[str, int]]:
        """Iteration -> ``{status: steps}`` of a container step. Raises NotFoundError."""
        low, high = iteration_bounds(container_step_id)
        out: dict[int, dict[str, int]] = {}
        with self.tables.lock:
            self._visible_run(run_id, organization_id)
            for step in self._steps(run_id).values():
                it = iteration_of(container_step_id, step.step_id)
                if it is None or not low <= step.step_id < high:
                    continue
                counts = out.setdefault(it, {})
                counts[step.status.value] = counts.get(step.status.value, 0) + 1
        return out

    def iteration_steps(self, run_id: str, container_step_id: str,
                        iterations: Sequence[int], *, organization_id: str | None = None
                        ) -> dict[int, list[OutlineStep]]:
        """The steps directly inside some iterations. Raises NotFoundError."""
        wanted = set(iterations)
        out: dict[int, list[OutlineStep]] = {it: [] for it in iterations}
        with self.tables.lock:
            self._visible_run(run_id, organization_id)
            for step in sorted(self._steps(run_id).values(), key=lambda s: s.seq):
                it = iteration_of(container_step_id, step.step_id)
                if it in wanted and step.step_id == (
                        f"{container_step_id}_iter_{it}_{step.block_id}"):
                    out[it].append(outline_step(step))
        return out

    def run_counts(self, run_ids: Sequence[str], *, organization_id: str | None = None
                   ) -> dict[str, RunCounts]:
        """Steps per status and loop items of each visible run with steps."""
        out: dict[str, RunCounts] = {}
        with self.tables.lock:
            for run in self._visible_runs(run_ids, organization_id):
                steps = self._steps(run.id)
                if not steps:
                    continue
                counts = new_count()
                for step in steps.values():
                    fold_count(counts, step.status.value, _kind(step.block_type), 1)
                out[run.id] = RunCounts(**counts)
        return out

    def run_presence(self, run_ids: Sequence[str], *, organization_id: str | None = None
                     ) -> dict[str, RunPresence]:
        """Workflow, status, owner, heartbeat and oldest open review of each visible run."""
        with self.tables.lock:
            runs = self._visible_runs(run_ids, organization_id)
            open_since: dict[str, float] = {}
            for review in self.tables.reviews.values():
                if review.decision is None and review.run_id in {r.id for r in runs}:
                    seen = open_since.get(review.run_id)
                    open_since[review.run_id] = min(review.created_at, seen or
                                                    review.created_at)
            return {r.id: RunPresence(run_id=r.id, workflow_id=r.workflow_id,
                                      workflow_name=clean_text(r.workflow_name, limit=200),
                                      status=r.status.value,
                                      owner_pid=r.owner_pid, heartbeat_at=r.heartbeat_at,
                                      waiting_since=open_since.get(r.id)) for r in runs}

    def step_moves(self, run_id: str, step_ids: Sequence[str], *,
                   organization_id: str | None = None) -> dict[str, list[StepMove]]:
        """Step id -> its lifecycle moves, oldest first. Raises NotFoundError."""
        with self.tables.lock:
            self._visible_run(run_id, organization_id)
            steps = self._steps(run_id)
            return {s: [_move(t) for t in steps[s].trail] if s in steps else []
                    for s in step_ids}

    def loop_sizes(self, run_ids: Sequence[str], *, organization_id: str | None = None
                   ) -> list[LoopSize]:
        """The size each loop container step of the visible runs noted when it opened."""
        with self.tables.lock:
            visible = {r.id for r in self._visible_runs(run_ids, organization_id)}
            notes = self.step_logs.by_logger(visible, LOOP_LOGGER)
            found: dict[tuple[str, str], LoopSize] = {}
            for note in notes:
                parsed = parse_loop_note(note.message)
                step = self._steps(note.run_id).get(note.step_id)
                if parsed is not None and step is not None:
                    found[(note.run_id, note.step_id)] = LoopSize(
                        run_id=note.run_id, step_id=note.step_id, block_id=step.block_id,
                        items=parsed[0], bound=parsed[1])
        return list(found.values())

    def workflow_choices(self, *, organization_id: str | None = None
                         ) -> list[WorkflowChoice]:
        """The workflows with visible runs, by latest name, then id."""
        names: dict[str, list[str]] = {}
        with self.tables.lock:
            for run in self._visible_runs(list(self.tables.runs), organization_id):
                names.setdefault(run.workflow_id, []).append(run.workflow_name)
        choices = [WorkflowChoice(workflow_id=w, name=max(n) or w, runs=len(n))
                   for w, n in names.items()]
        return sorted(choices, key=lambda c: (c.name, c.workflow_id))

    def data_version(self) -> int:
        """A counter of the changes seen in the tables between calls (see the module
        docstring)."""
        with self.tables.lock:
            tables = self.tables
            fingerprint = hash((
                tables.last_seq,
                sum(len(s.trail) for steps in tables.steps.values() for s in steps.values()),
                tuple((r.id, r.status, r.cancel_requested, r.owner_pid, r.heartbeat_at)
                      for r in tables.runs.values()),
                tuple((r.id, r.decision) for r in tables.reviews.values()),
                len(tables.review_versions), self.step_logs.size))
            if self._seen is None:
                self._seen = SeenChanges()
            return self._seen.advance(fingerprint)


def _move(trail: dict[str, Any]) -> StepMove:
    return StepMove(status=trail["status"], at=float(trail["at"]),
                    retry_count=int(trail.get("retry_count") or 0),
                    detail=trail.get("detail"))
