"""``stepwell run``: validate, parse inputs, run, summarise.

The workflow is compiled once; the engine prepares and executes that graph. With a live
view (stdout is a terminal, no ``--json`` or ``--quiet``) the prepared run goes through
:func:`engine.cli_live.run_live`; otherwise the engine simply runs in the main thread.

Everything the summary shows is read back from the database after the run, so it is
exactly what ``stepwell runs get`` / ``stepwell steps list`` will show later.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.text import Text

from engine import cli_render as render
from engine.cli_detail import fields_table
from engine.cli_live import list_all_steps, run_live
from engine.cli_support import (
    EXIT_AWAITING_REVIEW,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RUN_FAILED,
    Durability,
    db_flag,
    print_json,
    stderr,
    stdout,
    to_jsonable,
)

_SHOWN_SKIPS = 10
_OUTPUT_LINES = 30


class OutputMode(StrEnum):
    """How ``stepwell run`` reports progress and the result."""

    LIVE = "live"
    PLAIN = "plain"
    JSON = "json"
    QUIET = "quiet"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRequest:
    """Everything ``stepwell run`` was asked to do."""

    workflow: Path
    inputs: Sequence[str]
    db: str
    mode: OutputMode
    durability: Durability = Durability.process
    concurrency: int | None = None


def output_mode(*, as_json: bool, quiet: bool) -> OutputMode:
    """Live table only on a terminal and when neither --json nor --quiet was given."""
    if as_json:
        return OutputMode.JSON
    if quiet:
        return OutputMode.QUIET
    return OutputMode.LIVE if stdout().is_terminal else OutputMode.PLAIN


def exit_code_for(status: str) -> int:
    """0 completed, 1 error/cancelled, 3 awaiting review."""
    if status == "completed":
        return EXIT_OK
    if status == "awaiting_review":
        return EXIT_AWAITING_REVIEW
    return EXIT_RUN_FAILED


def execute(request: RunRequest) -> int:
    """Run the workflow and report it; returns the process exit code.

    Raises:
        WorkflowLoadError, WorkflowValidationError, InputError, StorageError: before
            anything is persisted (the caller turns them into exit code 2).
    """
    from engine.cli_inputs import parse_inputs
    from engine.core import Engine
    from engine.launch import new_run_id

    kwargs: dict[str, Any] = {"durability": request.durability.value}
    if request.concurrency is not None:
        kwargs["max_concurrency"] = request.concurrency
    engine = Engine(request.db, **kwargs)
    try:
        graph = engine.compile(request.workflow)  # the only compilation of this run
        inputs = parse_inputs(request.inputs, graph.start_blocks())
        _ = engine.store  # open (create) the database now, so storage errors come first
        run_id = new_run_id()
        if request.mode is OutputMode.PLAIN:
            stderr().print(f"Running {escape(graph.workflow.name)} as {run_id} …")
        started = time.monotonic()
        try:
            if request.mode is OutputMode.LIVE:
                result = run_live(engine, engine.prepare(graph, inputs, run_id=run_id))
            else:
                result = engine.run(graph, inputs, run_id=run_id)
        except KeyboardInterrupt:
            return _interrupted(run_id, request.db)
        elapsed_ms = (time.monotonic() - started) * 1000
        return report_result(engine, request, result, elapsed_ms)
    finally:
        engine.close()


def report_result(engine: Any, request: RunRequest, result: Any, elapsed_ms: float) -> int:
    """Print how a run ended (summary, JSON or just the id); return the exit code."""
    status = str(result.status)
    if request.mode is OutputMode.QUIET:
        stdout().print(result.run_id)
        return exit_code_for(status)
    client = _read_client(engine, request.db)
    try:
        run = client.workflows.runs.get(result.run_id)
        if request.mode is OutputMode.JSON:
            print_json(run)
            return exit_code_for(status)
        steps = list_all_steps(client, result.run_id)
    finally:
        client.close()
    summary = summary_view(result, to_jsonable(run), steps, elapsed_ms, request.db)
    stdout().print(summary)
    return exit_code_for(status)


def _read_client(engine: Any, db: str) -> Any:
    """A read client of its own (the engine's store may belong to the worker thread);
    an in-memory database can only be read through the engine's store."""
    if db == ":memory:":
        return engine.client
    from store.client import Client

    return Client(db)


def _interrupted(run_id: str, db: str) -> int:
    stderr().print(
        f"[bold red]Interrupted.[/] Run {run_id} stopped part-way; its finished steps are "
        f"saved. Continue it with `stepwell runs resume {run_id}{db_flag(db)}`."
    )
    return EXIT_INTERRUPTED


# --------------------------------------------------------------------------- summary


def summary_view(result: Any, run: dict[str, Any], steps: list[dict[str, Any]],
                 elapsed_ms: float, db: str) -> Group:
    """The end-of-run summary: status, counts, failure, skips, outputs and next steps."""
    status = str(result.status)
    duration = render.run_duration_ms(run) if run.get("timing") else None
    head = Text.assemble(
        (f"{result.run_id} ", "bold"), render.status_text(status),
        f" in {render.fmt_ms(duration if duration is not None else elapsed_ms)}",
    )
    workflow = run.get("workflow_name") or run.get("workflow_id")
    if workflow:
        head.append(f"  ({workflow})", style="dim")
    rows: list[tuple[str, RenderableType]] = [
        ("steps", render.counts_text(render.step_status(s) for s in steps))]
    rows += _failure_rows(result, steps) + _waiting_rows(run)
    if result.reason and status == "cancelled":
        rows.append(("reason", escape(str(result.reason))))
    parts: list[RenderableType] = [head, fields_table(rows)]
    parts += _skip_lines(steps) + _output_lines(result.outputs)
    parts.append(_hints(result.run_id, status, result.failing_step_id, db))
    return Group(*parts)


def _failure_rows(result: Any, steps: list[dict[str, Any]]) -> list[tuple[str, RenderableType]]:
    if not result.failing_step_id:
        return []
    step = next((s for s in steps if s.get("step_id") == result.failing_step_id), {})
    message = render.step_note(step) or result.error or ""
    kind = f" ({render.step_type(step)})" if step else ""
    return [("failed", Text.assemble((f"{result.failing_step_id}{kind}: ", "bold red"),
                                      message))]


def _waiting_rows(run: dict[str, Any]) -> list[tuple[str, RenderableType]]:
    waiting = (run.get("lifecycle") or {}).get("waiting_for_block_ids")
    return [("waiting", escape(", ".join(waiting)))] if waiting else []


def _skip_lines(steps: list[dict[str, Any]]) -> list[RenderableType]:
    skipped = [s for s in steps if render.step_status(s) == "skipped"]
    if not skipped:
        return []
    lines: list[RenderableType] = [Text("skipped", style="bold yellow")]
    for step in skipped[:_SHOWN_SKIPS]:
        lines.append(Text(f"  {step.get('step_id')}: {render.step_note(step)}"))
    if len(skipped) > _SHOWN_SKIPS:
        lines.append(Text(f"  … and {len(skipped) - _SHOWN_SKIPS} more", style="dim"))
    return lines


def _output_lines(outputs: Any) -> list[RenderableType]:
    """``end_step.handle: value`` per output; JSON payloads show their data only."""
    data = to_jsonable(outputs or {})
    if not data:
        return []
    lines: list[RenderableType] = [Text("outputs", style="bold green")]
    for step_id, handles in data.items():
        items = handles.items() if isinstance(handles, dict) else [("", handles)]
        for handle, payload in items:
            label = f"  {step_id}.{handle}:" if handle else f"  {step_id}:"
            lines.append(Text(f"{label}{_payload_text(payload)}"))
    return lines


def _payload_text(payload: Any) -> str:
    """One line for short values and files; an indented JSON block below otherwise."""
    if isinstance(payload, dict) and payload.get("type") == "file":
        doc = payload.get("document") or {}
        return f" file {doc.get('filename')} ({doc.get('id')}, {doc.get('mime_type')})"
    if isinstance(payload, dict) and payload.get("type") == "json" and "data" in payload:
        payload = payload["data"]
    compact = json.dumps(payload, default=str, ensure_ascii=False)
    if len(compact) <= 100:
        return " " + compact
    block = render.json_block(payload, _OUTPUT_LINES)
    return "\n" + "\n".join("    " + line for line in block.splitlines())


def _hints(run_id: str, status: str, failing_step_id: str | None, db: str) -> Text:
    flag = db_flag(db)
    text = Text(f"\nInspect the steps: stepwell steps list {run_id}{flag}", style="dim")
    if failing_step_id:
        text.append(f"\nSee the error: stepwell steps get {failing_step_id} --run {run_id}{flag}")
    if status == "awaiting_review":
        text.append(f"\nDecide the review: stepwell reviews list{flag}")
    return text
