"""Rich renderings for the CLI: field access, formatting, diagnostics and step tables.

Run tables and the detail views of one run or step are in :mod:`engine.cli_detail`.

Every function takes plain JSON-like dicts (``to_jsonable`` of the read API's models),
so rendering does not depend on the model classes and works the same for steps read
from the database and for fixtures in tests.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from engine.contracts.errors import Diagnostic

STATUS_STYLES = {
    "pending": "dim",
    "queued": "cyan",
    "running": "bold blue",
    "completed": "green",
    "skipped": "yellow",
    "error": "bold red",
    "awaiting_review": "bold magenta",
    "cancelled": "red",
}
#: Display order of statuses in counts.
STATUS_ORDER = tuple(STATUS_STYLES)
_NOTE_WIDTH = 80
NO_WRAP = frozenset({"type", "status", "retries", "duration"})
COLUMNS = ("step_id", "type", "loop", "status", "retries", "duration", "reason/error")


# --------------------------------------------------------------------------- field access


def step_status(step: dict[str, Any]) -> str:
    """The lifecycle status of a step dict (modern ``lifecycle`` or flat ``status``)."""
    lifecycle = step.get("lifecycle") or {}
    return str(lifecycle.get("status") or step.get("status") or "unknown")


def step_type(step: dict[str, Any]) -> str:
    """The block type as written (the true type when the modern shape maps it)."""
    return str(step.get("stepwell_block_type") or step.get("block_type") or "")


def step_note(step: dict[str, Any]) -> str:
    """Why a step is where it is: the error message, skip/cancel reason, the note of a
    row that could not be read, or ''."""
    if step.get("stepwell_unreadable"):
        return str(step["stepwell_unreadable"])
    lifecycle = step.get("lifecycle") or {}
    for key in ("message", "reason"):
        if lifecycle.get(key):
            return str(lifecycle[key])
    waiting = lifecycle.get("waiting_for_block_ids")
    return f"waiting for {', '.join(waiting)}" if waiting else ""


def loop_label(step: dict[str, Any]) -> str:
    """Loop position, outermost first: ``outer[0] › inner[2]`` ('' at top level)."""
    frames = step.get("loop_containers") or []
    return " › ".join(f"{f.get('container_id')}[{f.get('iteration')}]" for f in frames)


def step_duration_ms(step: dict[str, Any], now: datetime | None = None) -> float | None:
    """``duration_ms``, or the time a still-running step has been running."""
    if step.get("duration_ms") is not None:
        return float(step["duration_ms"])
    started = parse_time(step.get("started_at"))
    if started is None or step.get("completed_at"):
        return None
    return ((now or datetime.now(UTC)) - started).total_seconds() * 1000


def parse_time(value: Any) -> datetime | None:
    """An aware datetime from an ISO string, epoch seconds or datetime (None if absent)."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def run_status(run: dict[str, Any]) -> str:
    """The lifecycle status of a run dict."""
    lifecycle = run.get("lifecycle") or {}
    return str(lifecycle.get("status") or run.get("status") or "unknown")


def run_duration_ms(run: dict[str, Any]) -> float | None:
    """Wall time from start to completion, or to now while it runs; a run waiting for a
    review stops at ``waiting_since``, one whose owner died at its last heartbeat."""
    timing = run.get("timing") or run
    if timing.get("duration_ms") is not None:
        return float(timing["duration_ms"])
    started = parse_time(timing.get("started_at") or timing.get("created_at"))
    if started is None:
        return None
    owner = run.get("owner") or {}
    stopped = run.get("waiting_since") or (
        owner.get("heartbeat_at") if owner.get("alive") is False else None)
    ended = parse_time(timing.get("completed_at") or stopped) or datetime.now(UTC)
    return max(0.0, (ended - started).total_seconds() * 1000)


# --------------------------------------------------------------------------- formatting


def fmt_ms(ms: float | None) -> str:
    """``12 ms``, ``1.24 s``, ``3m 05s`` ('' when unknown)."""
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    minutes, seconds = divmod(int(ms / 1000), 60)
    return f"{minutes}m {seconds:02d}s"


def status_text(status: str) -> Text:
    """The status name in its colour."""
    return Text(status, style=STATUS_STYLES.get(status, ""))


def counts_text(statuses: Iterable[str]) -> Text:
    """``3 completed, 1 skipped`` with each status in its colour."""
    counts = Counter(statuses)
    order = [s for s in STATUS_ORDER if s in counts] + sorted(set(counts) - set(STATUS_ORDER))
    text = Text()
    for i, status in enumerate(order):
        if i:
            text.append(", ")
        text.append(f"{counts[status]} {status}", style=STATUS_STYLES.get(status, ""))
    return text if order else Text("no steps", style="dim")


def short(text: str, width: int = _NOTE_WIDTH) -> str:
    """First line of ``text``, cut to ``width`` characters."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def json_block(value: Any, max_lines: int | None = None) -> str:
    """Indented JSON, optionally cut after ``max_lines`` lines."""
    text = json.dumps(value, indent=2, default=str, ensure_ascii=False)
    lines = text.splitlines()
    if max_lines is None or len(lines) <= max_lines:
        return text
    return "\n".join(lines[:max_lines] + [f"… ({len(lines) - max_lines} more lines)"])


# --------------------------------------------------------------------------- tables


def diagnostics_table(diagnostics: Sequence[Diagnostic]) -> Table:
    """One row per diagnostic: code, YAML path, and the message with its fix below."""
    table = Table(show_lines=True)
    table.add_column("code", overflow="fold")
    table.add_column("path", style="cyan", overflow="fold")
    table.add_column("problem and fix", overflow="fold")
    for d in diagnostics:
        style = "bold red" if d.severity == "error" else "bold yellow"
        code = Text(d.code, style=style)
        if d.severity != "error":
            code.append(f"\n({d.severity})", style="yellow")
        problem = Text(d.message)
        if d.fix:
            problem.append(f"\nfix: {d.fix}", style="green")
        table.add_row(code, escape(d.path), problem)
    return table


def steps_table(steps: Sequence[dict[str, Any]], *, title: str | None = None,
                caption: RenderableType | None = None, show_loops: bool = True) -> StepsTable:
    """Steps as rows: step id, block type, status, retries, duration, reason/error."""
    return StepsTable(steps, title=title, caption=caption, show_loops=show_loops)


class StepsTable:
    """A step table that picks its columns for the width it is drawn at.

    Always: step id, status, duration, reason/error. Block type when there is room;
    retries when some step was retried; the loop position (already encoded in the step
    id) only on wide terminals.
    """

    def __init__(self, steps: Sequence[dict[str, Any]], *, title: str | None = None,
                 caption: RenderableType | None = None, show_loops: bool = True) -> None:
        self.steps = steps
        self.title = title
        self.caption = caption
        self.show_loops = show_loops

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.table(options.max_width)

    def table(self, width: int) -> Table:
        """The rich Table for a console ``width`` columns wide.

        Widths are assigned here rather than left to rich, whose shrinking crops the
        rightmost column on narrow terminals. The richest column set whose step ids fit
        whole is used (type and loop columns are dropped first); the reason column
        gets the rest of the line.
        """
        now = datetime.now(UTC)
        rows = [self._cells(s, now) for s in self.steps]
        wanted = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(COLUMNS)]
        wanted[1] = min(wanted[1], 16)
        retries = any(r[4] for r in rows)
        loops = self.show_loops and any(r[2] for r in rows)
        notes = any(r[6] for r in rows)
        for extra in ((True, loops), (True, False), (False, False)):
            keep = [True, extra[0], extra[1], True, retries, True, notes]
            fixed = sum(w for i, w in enumerate(wanted) if keep[i] and i not in (0, 6))
            spare = width - fixed - 2 * sum(keep)
            if spare - wanted[0] >= (min(wanted[6], 24) if notes else 0):
                break
        widths = list(wanted)
        widths[0] = max(min(wanted[0], spare - 12), min(12, wanted[0]))
        widths[6] = max(min(wanted[6], spare - widths[0]), 12)
        return self._build(rows, keep, widths)

    def _build(self, rows: list[list[str]], keep: list[bool], widths: list[int]) -> Table:
        table = Table(title=self.title, title_justify="left", caption=self.caption,  # type: ignore[arg-type]
                      caption_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                      pad_edge=False, collapse_padding=True)
        for i, name in enumerate(COLUMNS):
            if keep[i]:
                table.add_column(name, width=widths[i], no_wrap=name in NO_WRAP,
                                 overflow="ellipsis" if name == "type" else "fold",
                                 justify="right" if name in ("retries", "duration") else "left",
                                 style="dim" if name == "loop" else "")
        for row in rows:
            status = row[3]
            note_style = STATUS_STYLES[status] if status in ("error", "cancelled") else ""
            cells: list[RenderableType] = [escape(c) for c in row]
            cells[3], cells[6] = status_text(status), Text(row[6], note_style)
            table.add_row(*(c for i, c in enumerate(cells) if keep[i]))
        return table

    @staticmethod
    def _cells(step: dict[str, Any], now: datetime) -> list[str]:
        retries = int(step.get("retry_count") or 0)
        return [str(step.get("step_id", "")), step_type(step), loop_label(step),
                step_status(step), str(retries) if retries else "",
                fmt_ms(step_duration_ms(step, now)), short(step_note(step))]
