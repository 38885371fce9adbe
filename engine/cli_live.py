"""The progress of a run executed by this process: ``run``, ``runs resume``, ``runs rerun``.

Theory of operation
-------------------
The prepared run executes in a worker thread, on an event loop of its own, behind a
:class:`~engine.handle.RunHandle`. The thread forwards the handle's event stream
(``handle.events()``: every committed transition, in order) to the main thread over a
queue; the main thread folds the events into one row per step (:class:`LiveSteps`) and,
on a terminal, redraws the table about 8 times a second (:func:`engine.cli_view.run_view`:
sentinel rows hidden unless ``--all``, loop items in the footer); otherwise it prints a
plain progress line now and then (:class:`engine.cli_view.PlainProgress`). Step rows are
never read back from the database while the run goes on, so a run with thousands of
steps is not slowed down by its own progress display; a loop's item total is read once,
from the note the runner left on the container step's log. A resumed run starts from
the steps already in the database (read once, :func:`stored_steps`), so its progress
counts the items done before the resume too. The summary after the run reads the
database.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import anyio

from engine.cli_support import stdout, to_jsonable
from engine.cli_view import ItemTotals, PlainProgress, run_view, visible_steps

__all__ = ["LiveSteps", "list_all_steps", "run_live", "stored_steps", "visible_steps"]

PAGE_SIZE = 1000
REFRESH_PER_SECOND = 8
_TERMINAL_STEP = frozenset({"completed", "skipped", "error", "cancelled"})


def run_live(engine: Any, prepared: Any, *, live: bool = True, show_all: bool = False,
             client: Any = None) -> Any:
    """Execute ``prepared`` in a worker thread and show its progress until it stops.

    Args:
        engine: the :class:`~engine.core.Engine` that prepared the run.
        prepared: the :class:`~engine.launch.PreparedRun`.
        live: redraw a table (a terminal); False prints plain progress lines.
        show_all: show loop sentinel rows too.
        client: a read client for loop totals, or a function making one when first
            needed (None: only finished loops have a total).

    Returns:
        The run's :class:`~engine.launch.RunResult`.

    Raises:
        StepwellError: what stopped the execution (a StorageError, say).
    """
    feed: queue.SimpleQueue[Any] = queue.SimpleQueue()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["result"] = anyio.run(_follow, engine, prepared, feed)
        except Exception as exc:  # noqa: BLE001 - re-raised in the main thread below
            outcome["error"] = exc

    run_id, name = prepared.run_id, prepared.graph.workflow.name
    worker = threading.Thread(target=work, name=f"stepwell-{run_id}", daemon=True)
    board = LiveSteps()
    if prepared.replay is not None and client is not None:  # resume, rerun: seed the rows
        board.seed(stored_steps(client, run_id))
    totals = ItemTotals(client, run_id)
    worker.start()
    try:
        if live:
            _draw(worker, feed, board, totals, run_id, name, show_all)
        else:
            plain = PlainProgress(run_id)
            while worker.is_alive():
                worker.join(timeout=0.5)
                board.drain(feed)
                totals.refresh(board.steps())
                plain.update(board.steps(), totals)
    finally:
        totals.close()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _draw(worker: threading.Thread, feed: queue.SimpleQueue[Any], board: LiveSteps,
          totals: ItemTotals, run_id: str, name: str, show_all: bool) -> None:
    from rich.live import Live

    console = stdout()
    started = time.monotonic()
    with Live(console=console, refresh_per_second=REFRESH_PER_SECOND,
              transient=False) as live:
        while True:
            worker.join(timeout=1 / REFRESH_PER_SECOND)
            board.drain(feed)
            steps = board.steps()
            totals.refresh(steps)
            live.update(run_view(run_id, name, steps, time.monotonic() - started,
                                 max_rows=max(console.height - 10, 5), show_all=show_all,
                                 totals=totals))
            if not worker.is_alive():
                break


async def _follow(engine: Any, prepared: Any, feed: queue.SimpleQueue[Any]) -> Any:
    """Execute ``prepared`` behind a RunHandle and put each of its events on ``feed``."""
    from engine.handle import RunHandle

    handle = RunHandle(engine, prepared.run_id)
    async with anyio.create_task_group() as tg:
        handle.launch(lambda: prepared, tg)
        async for event in handle.events():
            feed.put(event)
    return await handle.result()


class LiveSteps:
    """One row per step, in creation order, folded from a run's events.

    Rows have the keys the step table and the loop progress read (``step_id``,
    ``block_id``, ``block_type``, ``loop_containers``, ``retry_count``, ``lifecycle``,
    ``started_at``, ``completed_at``, ``duration_ms``, ``outputs``).
    """

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, Any]] = {}

    def seed(self, steps: list[dict[str, Any]]) -> None:
        """Start from steps read from the database (``list_all_steps`` dicts): a resumed
        run's progress counts what was done before it resumed."""
        for step in steps:
            self._rows[str(step["step_id"])] = {
                "step_id": step["step_id"], "block_id": step.get("block_id"),
                "block_type": step.get("block_type") or "",
                "loop_containers": step.get("loop_containers") or [],
                "retry_count": step.get("retry_count") or 0,
                "lifecycle": dict(step.get("lifecycle") or {}), "started_at": None,
                "completed_at": None, "duration_ms": step.get("duration_ms"),
                "outputs": step.get("handle_outputs")}

    def drain(self, feed: queue.SimpleQueue[Any]) -> None:
        """Fold every event waiting on ``feed``."""
        while True:
            try:
                self.add(feed.get_nowait())
            except queue.Empty:
                return

    def add(self, event: Any) -> None:
        """Fold one :class:`~engine.handle.RunEvent` (run events change no row)."""
        if event.kind != "step" or event.step_id is None:
            return
        row = self._rows.setdefault(event.step_id, {
            "step_id": event.step_id, "block_id": event.block_id,
            "block_type": event.block_type or "", "loop_containers": event.loop_containers,
            "retry_count": 0, "started_at": None, "completed_at": None,
            "duration_ms": None, "outputs": None})
        row["retry_count"] = event.retry_count
        lifecycle: dict[str, Any] = {"status": event.status}
        if event.error:
            lifecycle["message"] = event.error.get("message")
        if event.reason:
            lifecycle["reason"] = event.reason
        row["lifecycle"] = lifecycle
        if event.outputs is not None:
            row["outputs"] = event.outputs
        if event.status == "running" and row["started_at"] is None:
            row["started_at"] = event.at
        elif event.status in _TERMINAL_STEP:
            row["completed_at"] = event.at
            if row["started_at"] is not None:
                row["duration_ms"] = (event.at - row["started_at"]) * 1000

    def steps(self) -> list[dict[str, Any]]:
        """The rows, in creation order."""
        return list(self._rows.values())


def stored_steps(client: Any, run_id: str) -> list[dict[str, Any]]:
    """The run's steps in the database (:func:`list_all_steps`); ``client`` is a read
    client or a function making one (closed afterwards). None found: ``[]``."""
    from engine.contracts.errors import StepwellError

    made = client() if callable(client) and not hasattr(client, "workflows") else None
    try:
        return list_all_steps(made or client, run_id)
    except StepwellError:
        return []
    finally:
        if made is not None:
            made.close()


def list_all_steps(client: Any, run_id: str) -> list[dict[str, Any]]:
    """Every step of a run, in creation order, as plain dicts (follows the cursor)."""
    steps: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        page = client.workflows.steps.list(run_id, limit=PAGE_SIZE, after=after)
        steps += [to_jsonable(step) for step in page.data]
        after = page.list_metadata.after
        if not after or not page.data:
            return steps
