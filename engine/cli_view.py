"""The progress view of a run, shared by ``stepwell run``, ``runs resume``, ``runs rerun``,
``runs watch`` and ``reviews approve|reject``.

On a terminal it is a live table: one row per step (sentinel rows hidden unless
``--all``), the steps that matter most when they do not all fit, and a footer with the
status counts and each loop's items done out of its total (``each: 37/200 items, 1
failed``). When stdout is not a terminal, :class:`PlainProgress` prints a plain line at
most every few seconds instead (:class:`engine.cli_progress.ProgressLines`).

A loop's total is known once it finished (the length of its list) or, while it runs,
from the note the runner writes to the container step's log when the loop opens
(:data:`engine.contracts.logs.LOOP_LOGGER`): :class:`ItemTotals` reads it once per container.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import RenderableType
from rich.markup import escape
from rich.text import Text

from engine import cli_render as render
from engine.cli_progress import (
    ProgressLines,
    finished_items,
    loop_progress,
    shown_steps,
)
from engine.contracts.logs import LOOP_LOGGER

_COUNT = re.compile(r"^(\d+) item")
_TERMINAL = frozenset({"completed", "skipped", "error", "cancelled"})


class ItemTotals:
    """Item totals of a run's for_each steps, looked up once per container.

    Args:
        client: a read client (``client.workflows.steps.logs``), a function making one
            when first needed, or None to use only the lists of finished loops.
        run_id: the run.
    """

    def __init__(self, client: Any, run_id: str) -> None:
        self._client = client
        self._run_id = run_id
        self._known: dict[str, int | None] = {}
        self._made: Any = None

    def refresh(self, steps: Sequence[Mapping[str, Any]]) -> None:
        """Learn the totals of the loops among ``steps`` not known yet."""
        containers = {p.step_id for p in loop_progress(steps)}
        for step in steps:
            step_id = str(step.get("step_id"))
            if step_id not in containers or self._known.get(step_id) is not None:
                continue
            count = finished_items(step)
            if count is None and self._client is not None:
                count = self._noted(step_id)
            self._known[step_id] = count

    def get(self, step_id: str) -> int | None:
        """The item total of container step ``step_id``, when known."""
        return self._known.get(step_id)

    def close(self) -> None:
        """Close the client this object made (a given client stays open)."""
        if self._made is not None:
            self._made.close()
            self._made = None

    def _reader(self) -> Any:
        if self._made is not None:
            return self._made
        if callable(self._client) and not hasattr(self._client, "workflows"):
            self._made = self._client()
            return self._made
        return self._client

    def _noted(self, step_id: str) -> int | None:
        from engine.contracts.errors import StepwellError

        logs = getattr(self._reader().workflows.steps, "logs", None)
        if logs is None:
            return None
        try:
            page = logs(step_id, run_id=self._run_id, limit=20)
        except StepwellError:
            return None
        for line in page.data:
            found = _COUNT.match(line.message) if line.logger == LOOP_LOGGER else None
            if found:
                return int(found.group(1))
        return None


def run_view(run_id: str, name: str, steps: Sequence[dict[str, Any]], elapsed_s: float, *,
             max_rows: int, show_all: bool = False, totals: ItemTotals | None = None,
             note: str = "") -> RenderableType:
    """The live table: title, the steps that matter most, counts and loop progress.

    Args:
        run_id, name: the run and its workflow's name (the title).
        steps: every step so far, in creation order (dicts).
        elapsed_s: seconds since the view started.
        max_rows: rows that fit on the terminal.
        show_all: show sentinel rows too.
        totals: item totals of loops.
        note: a line under the footer (``waiting for review since ...``).
    """
    if not steps:
        return Text(f"{name} · {run_id} · starting…", style="dim")
    rows = shown_steps(steps, show_all=show_all)
    shown = visible_steps(rows, max_rows)
    caption = render.counts_text(render.step_status(s) for s in rows)
    if len(shown) < len(rows):
        caption.append(f"  ({len(rows) - len(shown)} finished steps not shown)", style="dim")
    for progress in loop_progress(steps, totals.get if totals else lambda _s: None):
        caption.append("\n" + progress.text(), style="bold" if progress.failed == 0 else "red")
    if note:
        caption.append("\n" + note, style="magenta")
    title = f"{escape(name)} · {run_id} · {render.fmt_ms(elapsed_s * 1000)}"
    return render.steps_table(shown, title=title, caption=caption, show_loops=False)


def visible_steps(steps: Sequence[dict[str, Any]], max_rows: int) -> list[dict[str, Any]]:
    """At most ``max_rows`` steps: unfinished and failed ones first, then the latest.

    Creation order is kept, so the table does not jump around as steps finish.
    """
    if len(steps) <= max_rows:
        return list(steps)
    keep = {i for i, s in enumerate(steps)
            if render.step_status(s) not in _TERMINAL or render.step_status(s) == "error"}
    keep = set(sorted(keep)[:max_rows])
    for i in range(len(steps) - 1, -1, -1):
        if len(keep) >= max_rows:
            break
        keep.add(i)
    return [steps[i] for i in sorted(keep)]


class PlainProgress:
    """Progress for a stdout that is not a terminal: a plain line now and then.

    Args:
        run_id: the run.
    """

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._lines = ProgressLines()

    def update(self, steps: Sequence[Mapping[str, Any]], totals: ItemTotals | None = None
               ) -> None:
        """Print a line about ``steps`` if one is due (to stdout, flushed)."""
        line = self._lines.line(steps, totals.get if totals else lambda _s: None)
        if line:
            sys.stdout.write(f"{line}\n")
            sys.stdout.flush()
