"""The run page's model: status, actions, block summaries, graph, timeline, iterations.

Everything is folded from grouped counts and the top-level steps (the overview queries
of the read store, :mod:`engine.contracts.outline`), so a run with 10,000 loop items
costs a few queries, not 10,000 step models. The timeline shows the top-level steps as
bars; a loop container's iterations are a separate, paged view (:func:`iterations_page`)
that the page loads when it is opened.

Timeline geometry is in thousandths of the run's span (``x``/``w`` in 0..1000), drawn as
SVG rectangles, so no inline style is needed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from engine.contracts.frozen import record
from engine.contracts.outline import OutlineStep, RunPresence, StepMove
from engine.durable import process_owns
from engine.server.ui.blocks_view import (
    BlockSummary,
    ItemProgress,
    graph_json,
    summarize,
)
from store.api import ReadAPI, WorkflowRun

ITERATIONS_PER_PAGE = 50
LIVE_RUN_STATUSES = frozenset({"pending", "queued", "running"})
TERMINAL = frozenset({"completed", "error", "cancelled"})


@record
class Segment:
    """A stretch of a timeline bar: ``kind`` is queued, running, review or a status."""

    x: float
    w: float
    kind: str
    title: str


@dataclass(slots=True, kw_only=True)
class TimelineRow:
    """One bar: a top-level step, or one loop iteration."""

    key: str
    label: str
    status: str
    href: str | None
    segments: list[Segment] = field(default_factory=list)
    retries: list[float] = field(default_factory=list)
    duration_ms: float | None = None
    note: str = ""
    container_step: str | None = None
    items: ItemProgress | None = None
    steps: list[OutlineStep] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class Span:
    """The time axis of a timeline: ``start``..``end`` epoch seconds."""

    start: float
    end: float

    def x(self, at: float) -> float:
        """Position of ``at`` in 0..1000."""
        width = max(self.end - self.start, 1e-6)
        return round(max(0.0, min(1000.0, (at - self.start) / width * 1000)), 2)


def run_clock(run: WorkflowRun, presence: RunPresence | None, now: float | None = None
              ) -> tuple[float | None, bool]:
    """``(duration in ms, owner lost)``: a live run's duration runs on; one whose owner
    process died stops at its last heartbeat."""
    now = now or time.time()
    status = run.lifecycle.status
    timing = run.timing
    lost = False
    if status in LIVE_RUN_STATUSES and presence is not None:
        lost = not process_owns(presence.owner_pid, presence.heartbeat_at, now)
    if timing.duration_ms is not None or timing.started_at is None:
        return timing.duration_ms, lost
    end = now
    if lost and presence is not None and presence.heartbeat_at:
        end = presence.heartbeat_at
    elif status == "awaiting_review" and presence is not None and presence.waiting_since:
        end = presence.waiting_since
    return max(0.0, (end - timing.started_at.timestamp()) * 1000), lost


def _step_bar(step: OutlineStep, span: Span, trail: list[StepMove], now: float
              ) -> tuple[list[Segment], list[float]]:
    """Queued, running and review segments of one step, and its retry marks."""
    segments: list[Segment] = []
    retries: list[float] = []
    end = step.completed_at or (now if step.status in ("running", "queued") else None)
    if step.started_at is not None and step.created_at < step.started_at:
        segments.append(Segment(x=span.x(step.created_at),
                                w=span.x(step.started_at) - span.x(step.created_at),
                                kind="queued", title="created, waiting to start"))
    if step.started_at is not None and end is not None:
        segments.append(Segment(x=span.x(step.started_at),
                                w=max(span.x(end) - span.x(step.started_at), 0.6),
                                kind=step.status, title=step.status))
    for i, move in enumerate(trail):
        if move.status == "awaiting_review":
            until = trail[i + 1].at if i + 1 < len(trail) else now
            segments.append(Segment(x=span.x(move.at),
                                    w=max(span.x(until) - span.x(move.at), 0.6),
                                    kind="review", title="waiting for a review"))
        if move.status == "queued" and move.retry_count:
            retries.append(span.x(move.at))
    return segments, retries


def _span(run: WorkflowRun, steps: list[OutlineStep], now: float) -> Span:
    start = run.timing.started_at.timestamp() if run.timing.started_at else None
    start = start or min((s.created_at for s in steps), default=now)
    ends = [s.completed_at for s in steps if s.completed_at] + [start + 0.001]
    end = run.timing.completed_at.timestamp() if run.timing.completed_at else None
    if end is None:
        end = max(ends) if run.lifecycle.status not in LIVE_RUN_STATUSES else now
    return Span(start=start, end=max(end, max(ends)))


@dataclass(slots=True, kw_only=True)
class RunModel:
    """What the run page shows."""

    top: list[OutlineStep]
    blocks: dict[str, BlockSummary]
    graph: dict[str, Any]
    timeline: list[TimelineRow]
    span: Span


def build_run_model(api: ReadAPI, run: WorkflowRun, workflow: Any,
                    now: float | None = None) -> RunModel:
    """Fold the run's step counts and top-level steps into its page model.

    Reads one grouped count of every step, the sizes its loops noted, the top-level
    steps (their ids are their block ids) and their transitions; never every step of a
    big loop.

    Args:
        api: a read API scoped to the viewer's organization.
        run: the run.
        workflow: the definition it used (compiled when possible).
        now: the clock (for live bars).
    """
    now = now or time.time()
    reads, org = api.reads, api.organization_id
    blocks = summarize(workflow, reads.block_tallies(run.id, organization_id=org),
                       reads.loop_sizes([run.id], organization_id=org))
    top_ids = [b.block_id for b in blocks.values() if b.parent is None]
    top = reads.outline_steps(run.id, top_ids, organization_id=org)
    span = _span(run, top, now)
    trails = reads.step_moves(run.id, [s.step_id for s in top], organization_id=org)
    rows = []
    for step in top:
        segments, retries = _step_bar(step, span, trails.get(step.step_id, []), now)
        block = blocks.get(step.block_id)
        row = TimelineRow(key=step.step_id, label=step.label or step.block_id,
                          status=step.status, href=f"/runs/{run.id}/steps/{step.step_id}",
                          segments=segments, retries=retries,
                          duration_ms=_ms(step.started_at, step.completed_at),
                          note=step.reason or step.error or "")
        if block is not None and block.is_container:
            row.container_step = step.step_id
            row.items = block.items
        rows.append(row)
    return RunModel(top=top, blocks=blocks, graph=graph_json(workflow, blocks, run.id),
                    timeline=rows, span=span)


def _ms(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else (end - start) * 1000


# --------------------------------------------------------------------------- iterations


@dataclass(slots=True, kw_only=True)
class IterationsPage:
    """One page of a container step's iterations."""

    container: OutlineStep
    rows: list[TimelineRow]
    total: int
    failed: int
    page: int
    pages: int
    show: str
    span: Span


def _iteration_status(statuses: dict[str, int]) -> str:
    """One iteration's status from the statuses of every step inside it (a step
    cancelled inside it makes it cancelled, whatever else completed)."""
    for status in ("error", "running", "awaiting_review", "queued", "pending", "cancelled"):
        if statuses.get(status):
            return status
    return "completed" if statuses.get("completed") else next(iter(statuses), "pending")


def iterations_page(api: ReadAPI, run_id: str, container_step_id: str, *, page: int = 0,
                    show: str = "all", now: float | None = None) -> IterationsPage | None:
    """The iterations of one container step, ``ITERATIONS_PER_PAGE`` at a time.

    Every iteration's status comes from one grouped count; only the page's iterations
    are read step by step.

    Args:
        api: a read API scoped to the viewer's organization.
        run_id: the run.
        container_step_id: the step id of a for_each or while_loop step.
        page: 0-based page number.
        show: ``all``, ``failed`` (iterations with an error) or ``open`` (not settled).

    Returns:
        None when the step is not a loop container of this run.

    Raises:
        NotFoundError: no such run visible to the API's organization.
    """
    now = now or time.time()
    reads, org = api.reads, api.organization_id
    found = reads.outline_steps(run_id, [container_step_id], organization_id=org)
    if not found or found[0].block_type not in ("for_each", "while_loop"):
        return None
    container = found[0]
    tallies = reads.iteration_tallies(run_id, container_step_id, organization_id=org)
    statuses = {it: _iteration_status(counts) for it, counts in sorted(tallies.items())}
    failed = sum(1 for s in statuses.values() if s == "error")
    chosen_all = [it for it, s in statuses.items() if show == "all"
                  or (show == "failed" and s == "error")
                  or (show == "open" and s not in TERMINAL | {"skipped"})]
    pages = max(1, -(-len(chosen_all) // ITERATIONS_PER_PAGE))
    page = max(0, min(page, pages - 1))
    chosen = chosen_all[page * ITERATIONS_PER_PAGE:(page + 1) * ITERATIONS_PER_PAGE]
    members = reads.iteration_steps(run_id, container_step_id, chosen, organization_id=org)
    rows = [_iteration_row(it, statuses[it], members.get(it, [])) for it in chosen]
    every = [s for r in rows for s in r.steps]
    start = min((s.created_at for s in every), default=container.created_at)
    end = max((s.completed_at or now for s in every), default=now)
    span = Span(start=start, end=max(end, start + 0.001))
    for row in rows:
        if not row.steps:
            continue
        begin = min(s.started_at or s.created_at for s in row.steps)
        finish = max((s.completed_at or now) for s in row.steps)
        row.segments = [Segment(x=span.x(begin), w=max(span.x(finish) - span.x(begin), 0.6),
                                kind=row.status, title=row.status)]
        row.duration_ms = (finish - begin) * 1000
    return IterationsPage(container=container, rows=rows, total=len(statuses), failed=failed,
                          page=page, pages=pages, show=show, span=span)


def _iteration_row(index: int, status: str, members: list[OutlineStep]) -> TimelineRow:
    visible = [s for s in members if s.sentinel is None]
    errors = [s.error for s in members if s.error]
    return TimelineRow(key=str(index), label=f"item {index}", status=status, href=None,
                       steps=visible or members, note=errors[0] if errors else "")
