"""The live step table of ``stepwell run`` (terminal only).

Theory of operation
-------------------
``Engine.run`` is synchronous, so the engine runs in a worker thread while the main
thread polls the database through a read client of its own and redraws the table about
8 times a second. The run id is chosen before the run starts, so the poller knows what
to read before the run row exists. Polling backs off when reads get slow: a run with
thousands of steps is not slowed down by its own progress display.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from rich.console import RenderableType
from rich.markup import escape
from rich.text import Text

from engine import cli_render as render
from engine.cli_support import stdout, to_jsonable

PAGE_SIZE = 100
REFRESH_PER_SECOND = 8
_TERMINAL_STEP = frozenset({"completed", "skipped", "error", "cancelled"})


def run_live(engine: Any, workflow: Any, inputs: dict[str, Any], run_id: str,
              db: str) -> Any:
    """Run the engine in a worker thread and redraw the step table until it ends."""
    from rich.live import Live

    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["result"] = engine.run(workflow, inputs, run_id=run_id)
        except BaseException as exc:  # re-raised in the main thread below
            outcome["error"] = exc

    worker = threading.Thread(target=work, name=f"stepwell-{run_id}", daemon=True)
    poller = StepPoller(db, run_id)
    console = stdout()
    started = time.monotonic()
    worker.start()
    with Live(console=console, refresh_per_second=REFRESH_PER_SECOND,
              transient=False) as live:
        while worker.is_alive():
            steps = poller.poll()
            live.update(live_view(run_id, workflow.name, steps, time.monotonic() - started,
                                  max_rows=max(console.height - 8, 5)))
            worker.join(timeout=poller.interval)
        live.update(live_view(run_id, workflow.name, poller.poll(force=True),
                              time.monotonic() - started, max_rows=max(console.height - 8, 5)))
    poller.close()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


class StepPoller:
    """Reads a run's steps from the database for the live view.

    The read client is opened lazily (the database may not exist until the engine
    creates it) and errors while the run row is not yet written are ignored.
    ``interval`` grows to four times the last read's duration so slow reads of very
    large runs never take more than a fifth of the time.
    """

    def __init__(self, db: str, run_id: str) -> None:
        self.db = db
        self.run_id = run_id
        self.interval = 1 / REFRESH_PER_SECOND
        self._client: Any = None
        self._steps: list[dict[str, Any]] = []

    def poll(self, *, force: bool = False) -> list[dict[str, Any]]:
        """The latest steps (the previous list when the database is not readable yet)."""
        from engine.contracts.errors import StepwellError

        began = time.monotonic()
        try:
            if self._client is None:
                if not force and not Path(self.db).exists():
                    return self._steps
                from store.client import Client

                self._client = Client(self.db)
            self._steps = list_all_steps(self._client, self.run_id)
        except StepwellError:
            pass  # run row not written yet, or a transient lock: keep the last view
        took = time.monotonic() - began
        self.interval = max(1 / REFRESH_PER_SECOND, 4 * took)
        return self._steps

    def close(self) -> None:
        """Close the read client, if it was opened."""
        if self._client is not None and hasattr(self._client, "close"):
            self._client.close()
        self._client = None


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
