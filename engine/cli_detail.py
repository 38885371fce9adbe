"""Rich renderings of runs (table and detail) and of one step in full.

Like :mod:`engine.cli_render`, everything takes plain JSON-like dicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from engine.cli_render import (
    counts_text,
    fmt_ms,
    json_block,
    loop_label,
    parse_time,
    run_duration_ms,
    run_status,
    short,
    status_text,
    step_duration_ms,
    step_status,
    step_type,
)


def runs_table(runs: Sequence[dict[str, Any]]) -> Table:
    """Runs as rows: id, status, created, duration, workflow, and (when any run has
    one) the failing step, cancel reason or awaited review."""
    notes = [short(run_note(run), 60) for run in runs]
    names = ["run_id", "status", "created", "duration", "workflow"] + (
        ["detail"] if any(notes) else [])
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for name in names:
        table.add_column(name, no_wrap=name in ("run_id", "status", "created", "duration"),
                         justify="right" if name == "duration" else "left",
                         overflow="fold")
    for run, note in zip(runs, notes, strict=True):
        timing = run.get("timing") or {}
        created = parse_time(timing.get("created_at") or run.get("created_at"))
        cells: list[RenderableType] = [
            escape(str(run.get("id") or run.get("run_id") or "")),
            status_text(run_status(run)),
            created.astimezone().strftime("%Y-%m-%d %H:%M:%S") if created else "",
            fmt_ms(run_duration_ms(run)),
            escape(str(run.get("workflow_name") or run.get("workflow_id") or "")),
            escape(note),
        ]
        table.add_row(*cells[: len(names)])
    return table


def run_note(run: dict[str, Any]) -> str:
    """Failing step and message, cancel reason, the blocks a review waits for (and since
    when), ``queued for a worker`` (no process has it), or the owner process:
    ``owner died (pid 4242, last heartbeat 3m 10s ago)``."""
    lifecycle = run.get("lifecycle") or {}
    if lifecycle.get("failing_step_id"):
        message = lifecycle.get("message") or ""
        return f"{lifecycle['failing_step_id']}: {message}".rstrip(": ")
    waiting = lifecycle.get("waiting_for_block_ids")
    if waiting:
        since = parse_time(run.get("waiting_since"))
        when = f" since {_ago(since)}" if since else ""
        return f"waiting for review{when}: {', '.join(waiting)}"
    owner = run.get("owner") or {}
    if owner.get("queued"):
        return "queued for a worker"
    if owner.get("alive") is False:
        beat = parse_time(owner.get("heartbeat_at"))
        last = f", last heartbeat {_ago(beat)}" if beat else ""
        return f"owner died (pid {owner.get('pid')}{last})"
    if owner.get("alive"):
        return f"running in pid {owner.get('pid')}"
    return str(lifecycle.get("reason") or lifecycle.get("message") or "")


def _ago(when: datetime) -> str:
    """``09:12:03 (3m 10s ago)`` in local time."""
    seconds = (datetime.now(UTC) - when).total_seconds() * 1000
    return f"{when.astimezone().strftime('%H:%M:%S')} ({fmt_ms(max(0.0, seconds))} ago)"


def fields_table(rows: Iterable[tuple[str, RenderableType]]) -> Table:
    """A two-column key/value grid."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for key, value in rows:
        grid.add_row(key, value)
    return grid


def step_detail(step: dict[str, Any], record: dict[str, Any] | None = None, *,
                max_lines: int | None = None) -> Group:
    """Everything about one step: identity, lifecycle, timing, payloads, artifact.

    Args:
        step: the step (``to_jsonable`` of the read API's step).
        record: the operation record behind ``step.artifact``, when it was read.
        max_lines: cut each JSON value after this many lines (None: show everything).
    """
    lifecycle = dict(step.get("lifecycle") or {})
    status = str(lifecycle.pop("status", step_status(step)))
    rows: list[tuple[str, RenderableType]] = [
        ("step_id", escape(str(step.get("step_id", "")))),
        ("run_id", escape(str(step.get("run_id", "")))),
        ("block", escape(f"{step.get('block_id', '')} ({step_type(step)})"
                         + (f" “{step['block_label']}”" if step.get("block_label") else ""))),
        ("status", status_text(status)),
    ]
    rows += [(key, escape(str(value))) for key, value in lifecycle.items()
             if value not in (None, "", {}, []) and key != "details"]
    if step.get("loop_containers"):
        rows.append(("loop", escape(loop_label(step))))
    rows += [(key, escape(str(step[key]))) for key in
             ("retry_count", "created_at", "started_at", "completed_at", "model", "tokens",
              "cost") if step.get(key) not in (None, "")]
    if step_duration_ms(step) is not None:
        rows.append(("duration", fmt_ms(step_duration_ms(step))))
    if step.get("artifact"):
        artifact = step["artifact"]
        rows.append(("artifact", escape(f"{artifact.get('operation')} {artifact.get('id')}")))
    parts: list[RenderableType] = [fields_table(rows)]
    for key in ("handle_inputs", "handle_outputs"):
        parts.append(Text(f"\n{key}", style="bold"))
        parts.append(Text(json_block(step.get(key) or {}, max_lines)))
    if record:
        parts += [Text("\nartifact record", style="bold"),
                  Text(json_block(record, max_lines))]
    if step.get("trace_spans"):
        parts += [Text("\ntrace spans", style="bold"),
                  Text(json_block(step["trace_spans"], max_lines))]
    return Group(*parts, *_error_details((step.get("lifecycle") or {}).get("details")))


def _error_details(details: dict[str, Any] | None) -> list[RenderableType]:
    """Error details as JSON, with the stack trace printed as the text it is."""
    if not details:
        return []
    rest = {k: v for k, v in details.items() if k != "stack_trace" and _has_content(v)}
    parts: list[RenderableType] = [Text("\nerror details", style="bold red")]
    if rest:
        parts.append(Text(json_block(rest)))
    if details.get("stack_trace"):
        parts += [Text("stack trace", style="bold"),
                  Text(str(details["stack_trace"]).rstrip(), style="dim")]
    return parts


def run_detail(run: dict[str, Any], steps: Sequence[dict[str, Any]]) -> Group:
    """One run: identity, status, timing, step counts, inputs and metadata."""
    timing = run.get("timing") or {}
    rows: list[tuple[str, RenderableType]] = [
        ("run_id", escape(str(run.get("id", "")))),
        ("workflow", escape(" ".join(str(v) for v in (run.get("workflow_name"),
                                                      run.get("workflow_id")) if v))),
        ("status", status_text(run_status(run))),
    ]
    if run_note(run):
        rows.append(("detail", escape(run_note(run))))
    rows += [(key, escape(str(timing[key]))) for key in
             ("created_at", "started_at", "completed_at") if timing.get(key)]
    if run_duration_ms(run) is not None:
        rows.append(("duration", fmt_ms(run_duration_ms(run))))
    rows.append(("steps", counts_text(step_status(s) for s in steps)))
    parts: list[RenderableType] = [fields_table(rows)]
    for key in ("inputs", "metadata", "outputs"):
        value = _pruned(run.get(key))
        if _has_content(value):
            parts += [Text(f"\n{key}", style="bold"), Text(json_block(value, 40))]
    return Group(*parts)


def _has_content(value: Any) -> bool:
    """True unless ``value`` is empty or a mapping of empty values."""
    if isinstance(value, dict):
        return any(_has_content(v) for v in value.values())
    return value not in (None, "", [])


def _pruned(value: Any) -> Any:
    """``value`` without the empty entries of a top-level mapping."""
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if _has_content(v)}
    return value
