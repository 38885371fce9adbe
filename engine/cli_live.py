"""The live step table of ``stepwell run`` (terminal only).

Theory of operation
-------------------
The prepared run executes in a worker thread, on an event loop of its own, behind a
:class:`~engine.handle.RunHandle`. The thread forwards the handle's event stream
(``handle.events()``: every committed transition, in order) to the main thread over a
queue; the main thread folds the events into one row per step (:class:`LiveSteps`) and
redraws the table about 8 times a second. Nothing is read back from the database while
the run goes on, so a run with thousands of steps is not slowed down by its own
progress display; the summary after the run reads the database.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import anyio
from rich.console import RenderableType
from rich.markup import escape
from rich.text import Text

from engine import cli_render as render
from engine.cli_support import stdout, to_jsonable

PAGE_SIZE = 100
REFRESH_PER_SECOND = 8
_TERMINAL_STEP = frozenset({"completed", "skipped", "error", "cancelled"})


def run_live(engine: Any, prepared: Any) -> Any:
    """Execute ``prepared`` in a worker thread and redraw its step table until it stops.

    Args:
        engine: the :class:`~engine.core.Engine` that prepared the run.
        prepared: the :class:`~engine.launch.PreparedRun`.

    Returns:
        The run's :class:`~engine.launch.RunResult`.

    Raises:
        StepwellError: what stopped the execution (a StorageError, say).
    """
    from rich.live import Live

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
    console = stdout()
    started = time.monotonic()
    worker.start()
    with Live(console=console, refresh_per_second=REFRESH_PER_SECOND,
              transient=False) as live:
        while True:
            worker.join(timeout=1 / REFRESH_PER_SECOND)
            board.drain(feed)
            live.update(live_view(run_id, name, board.steps(), time.monotonic() - started,
                                  max_rows=max(console.height - 8, 5)))
            if not worker.is_alive():
                break
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


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

    Rows have the keys the step table reads (``step_id``, ``block_type``,
    ``loop_containers``, ``retry_count``, ``lifecycle``, ``started_at``,
    ``completed_at``, ``duration_ms``).
    """

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, Any]] = {}

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
            "step_id": event.step_id, "block_type": event.block_type or "",
            "loop_containers": event.loop_containers, "retry_count": 0,
            "started_at": None, "completed_at": None, "duration_ms": None})
        row["retry_count"] = event.retry_count
        lifecycle: dict[str, Any] = {"status": event.status}
        if event.error:
            lifecycle["message"] = event.error.get("message")
        if event.reason:
            lifecycle["reason"] = event.reason
        row["lifecycle"] = lifecycle
        if event.status == "running" and row["started_at"] is None:
            row["started_at"] = event.at
        elif event.status in _TERMINAL_STEP:
            row["completed_at"] = event.at
            if row["started_at"] is not None:
                row["duration_ms"] = (event.at - row["started_at"]) * 1000

    def steps(self) -> list[dict[str, Any]]:
        """The rows, in creation order."""
        return list(self._rows.values())


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


def live_view(run_id: str, name: str, steps: list[dict[str, Any]], elapsed_s: float,
              *, max_rows: int) -> RenderableType:
    """The live table: the steps that matter most when they do not all fit."""
    shown = visible_steps(steps, max_rows)
    caption = render.counts_text(render.step_status(s) for s in steps)
    if len(shown) < len(steps):
        caption.append(f"  ({len(steps) - len(shown)} finished steps not shown)", style="dim")
    title = f"{escape(name)} · {run_id} · {render.fmt_ms(elapsed_s * 1000)}"
    if not steps:
        return Text(f"{name} · {run_id} · starting…", style="dim")
    return render.steps_table(shown, title=title, caption=caption, show_loops=False)


def visible_steps(steps: list[dict[str, Any]], max_rows: int) -> list[dict[str, Any]]:
    """At most ``max_rows`` steps: unfinished and failed ones first, then the latest.

    Creation order is kept, so the table does not jump around as steps finish.
    """
    if len(steps) <= max_rows:
        return steps
    keep = {i for i, s in enumerate(steps)
            if render.step_status(s) not in _TERMINAL_STEP or render.step_status(s) == "error"}
    keep = set(sorted(keep)[:max_rows])
    for i in range(len(steps) - 1, -1, -1):
        if len(keep) >= max_rows:
            break
        keep.add(i)
    return [steps[i] for i in sorted(keep)]
