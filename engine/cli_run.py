"""``stepwell run``: validate, parse inputs, run, summarise.

The workflow is compiled once; the engine prepares and executes that graph through
:func:`engine.cli_live.run_live`: a live table on a terminal, plain progress lines when
stdout is not one. With ``--json`` or ``--quiet`` the engine simply runs in the main
thread. Block types come from the built-ins, the installed ``stepwell.blocks`` entry
points and ``--blocks MODULE:ATTR``; the current directory is importable, so
``python: mymodule:fn`` references resolve as ``stepwell validate`` resolves them.
With ``--wait``, a run that stops for a review is followed until someone decides and it
ends (:mod:`engine.cli_watch`).

Everything the summary shows is read back from the database after the run, so it is
exactly what ``stepwell runs get`` / ``stepwell steps list`` will show later.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from engine.cli_support import (
    EXIT_AWAITING_REVIEW,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RUN_FAILED,
    Durability,
    RunDurability,
    db_flag,
    print_json,
    resolve_db,
    stderr,
    stdout,
    to_jsonable,
    workflow_file,
)
from engine.contracts.bounded import paired_json
from engine.contracts.frozen import record

if TYPE_CHECKING:
    from rich.console import Group, RenderableType
    from rich.text import Text

# The live view, the summary and rich are imported where they are used: ``--json`` and
# ``--quiet`` runs never load them.

_SHOWN_SKIPS = 10
_OUTPUT_LINES = 30


class OutputMode(StrEnum):
    """How ``stepwell run`` reports progress and the result."""

    LIVE = "live"
    PLAIN = "plain"
    JSON = "json"
    QUIET = "quiet"


@record
class RunRequest:
    """Everything ``stepwell run`` was asked to do."""

    workflow: Path
    inputs: Sequence[str]
    db: str
    mode: OutputMode
    durability: RunDurability = RunDurability.process
    concurrency: int | None = None
    blocks: Sequence[str] = ()
    show_all: bool = False
    wait: bool = False
    executor: str = "local"


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


def run_command(workflow: Path, *, inputs: Sequence[str], db: str | None, as_json: bool,
                concurrency: int | None, durability: RunDurability, quiet: bool, wait: bool,
                show_all: bool, blocks: Sequence[str], detach: bool, executor: str) -> int:
    """``stepwell run`` with its options parsed; returns the process exit code.

    Raises:
        typer.Exit: the workflow file is missing (exit 2).
        StepwellError: as :func:`execute` (the caller reports it).
    """
    path = workflow_file(workflow)
    if detach:
        from engine.cli_worker import enqueue_run
        from engine.contracts.errors import UsageError

        if executor != "local":
            raise UsageError("--executor goes to the worker that runs a queued run: start "
                             f"it with `stepwell worker --executor {executor}`, and queue "
                             "the run without --executor.")
        if wait:
            raise UsageError("--detach queues the run and returns; --wait follows a run to "
                             "its end. Pass one of them (follow a queued run with "
                             "`stepwell runs watch RUN_ID`).")

        return enqueue_run(path, list(inputs), resolve_db(db), blocks=list(blocks),
                           as_json=as_json)
    return execute(RunRequest(
        workflow=path, inputs=list(inputs), db=resolve_db(db),
        mode=output_mode(as_json=as_json, quiet=quiet), durability=durability,
        concurrency=concurrency, blocks=list(blocks), show_all=show_all, wait=wait,
        executor=executor,
    ))


def execute(request: RunRequest) -> int:
    """Run the workflow and report it; returns the process exit code.

    Raises:
        WorkflowLoadError, WorkflowValidationError, InputError, StorageError: before
            anything is persisted (the caller turns them into exit code 2).
    """
    from engine.cli_inputs import parse_inputs
    from engine.launch import new_run_id

    engine = cli_engine(request.db, request.blocks, request.durability, request.concurrency)
    engine.executor = connect_executor(request.executor)
    try:
        graph = engine.compile(request.workflow)  # the only compilation of this run
        inputs = parse_inputs(request.inputs, graph.start_blocks())
        _ = engine.store  # open (create) the database now, so storage errors come first
        run_id = new_run_id()
        if request.mode is OutputMode.PLAIN:
            from rich.markup import escape

            stderr().print(f"Running {escape(graph.workflow.name)} as {run_id} …")
        started = time.monotonic()
        try:
            result = execute_prepared(engine, request,
                                      lambda: engine.prepare(graph, inputs, run_id=run_id))
        except KeyboardInterrupt:
            return _interrupted(run_id, request.db)
        elapsed_ms = (time.monotonic() - started) * 1000
        return report_result(engine, request, result, elapsed_ms)
    finally:
        engine.close()
        if engine.executor is not None:
            engine.executor.close()


def connect_executor(spec: str) -> Any:
    """The executor ``--executor`` names, connected (None for ``local``).

    Raises:
        UsageError: an unknown executor, or a Dask scheduler that cannot be reached.
    """
    if spec in ("", "local"):
        return None  # the default: no executor module to import
    from engine.executors import parse_executor

    executor = parse_executor(spec)
    if executor is not None:
        executor.connect()
    return executor


def cli_engine(db: str, blocks: Sequence[str] = (),
               durability: Durability | RunDurability = Durability.process,
               concurrency: int | None = None) -> Any:
    """An Engine on ``db`` with every block type the command line knows.

    The built-ins, the installed ``stepwell.blocks`` entry points and the ``--blocks``
    references; the current directory goes on ``sys.path`` for ``python:`` references;
    an unconfigured root logger is lowered to ``INFO`` so steps' ``logging.info`` lines
    reach their logs.

    Raises:
        UsageError: a ``--blocks`` reference or a plugin does not load.
    """
    from blocks.log_capture import capture_info
    from engine.core import Engine
    from engine.plugins import block_registry, importable_cwd

    importable_cwd()
    capture_info()
    kwargs: dict[str, Any] = {"durability": durability.value,
                              "registry": block_registry(blocks)}
    if concurrency is not None:
        kwargs["max_concurrency"] = concurrency
    return Engine(db, **kwargs)


def execute_prepared(engine: Any, request: RunRequest, prepare: Any) -> Any:
    """Execute the run ``prepare()`` makes, with the progress view ``request.mode`` asks
    for; returns its RunResult."""
    if request.mode in (OutputMode.LIVE, OutputMode.PLAIN):
        from engine.cli_live import run_live

        return run_live(engine, prepare(), live=request.mode is OutputMode.LIVE,
                        show_all=request.show_all,
                        client=lambda: _read_client(engine, request.db))
    return anyio.run(engine.execute, prepare())


def report_result(engine: Any, request: RunRequest, result: Any, elapsed_ms: float) -> int:
    """Print how a run ended (summary, JSON or just the id); return the exit code.

    With ``request.wait``, a run waiting for a review is followed until it ends.
    """
    status = str(result.status)
    if request.wait and status == "awaiting_review" and request.db != ":memory:":
        from engine.cli_watch import watch_and_report

        if request.mode is not OutputMode.JSON:
            stderr().print(f"{result.run_id} waits for a review; following it until someone "
                           f"decides (`stepwell reviews list{db_flag(request.db)}`) …",
                           soft_wrap=True)
        return watch_and_report(request.db, result.run_id, wait=True,
                                show_all=request.show_all,
                                as_json=request.mode is OutputMode.JSON)
    if request.mode is OutputMode.QUIET:
        stdout().print(result.run_id)
        return exit_code_for(status)
    client = _read_client(engine, request.db)
    try:
        if request.mode is OutputMode.JSON:  # the run's JSON, read models left unbuilt
            print_json(client.run_json(result.run_id))
            return exit_code_for(status)
        run = client.workflows.runs.get(result.run_id)
        from engine.cli_live import list_all_steps
        from engine.cli_view import ItemTotals

        steps = list_all_steps(client, result.run_id)
        totals = ItemTotals(client, result.run_id)
        totals.refresh(steps)
    finally:
        client.close()
    summary = summary_view(result, to_jsonable(run), steps, elapsed_ms, request.db,
                           total_of=totals.get)
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
                 elapsed_ms: float, db: str,
                 total_of: Callable[[str], int | None] | None = None) -> Group:
    """The end-of-run summary: status, counts, loops, failure, skips, outputs, next steps.

    ``total_of`` gives the item totals of loops (:class:`engine.cli_view.ItemTotals`);
    without it only finished loops have one.
    """
    from rich.console import Group
    from rich.markup import escape
    from rich.text import Text

    from engine import cli_render as render
    from engine.cli_detail import fields_table
    from engine.cli_progress import loop_progress, shown_steps

    status = str(result.status)
    duration = render.run_duration_ms(run) if run.get("timing") else None
    head = Text.assemble(
        (f"{result.run_id} ", "bold"), render.status_text(status),
        f" in {render.fmt_ms(duration if duration is not None else elapsed_ms)}",
    )
    workflow = run.get("workflow_name") or run.get("workflow_id")
    if workflow:
        head.append(f"  ({workflow})", style="dim")
    shown = shown_steps(steps, show_all=False)  # loop sentinels are bookkeeping
    rows: list[tuple[str, RenderableType]] = [
        ("steps", render.counts_text(render.step_status(s) for s in shown))]
    loops = [p.text() for p in loop_progress(steps, total_of or _finished_totals(steps))]
    if loops:
        rows.append(("loops", escape("; ".join(loops))))
    rows += _failure_rows(result, steps) + _waiting_rows(run)
    if result.reason and status == "cancelled":
        rows.append(("reason", escape(str(result.reason))))
    parts: list[RenderableType] = [head, fields_table(rows)]
    parts += _skip_lines(shown) + _output_lines(result.outputs)
    failed_items = [s for s in steps if s.get("loop_containers")
                    and render.step_status(s) == "error"]
    parts.append(_hints(result.run_id, status, result.failing_step_id, db,
                        failed_items[0]["step_id"] if failed_items else None))
    return Group(*parts)


def _finished_totals(steps: list[dict[str, Any]]) -> Any:
    """Item totals of the loops that finished (a failed loop's total is not known here)."""
    from engine.cli_progress import finished_items

    totals = {s["step_id"]: finished_items(s) for s in steps}
    return totals.get


def _failure_rows(result: Any, steps: list[dict[str, Any]]) -> list[tuple[str, RenderableType]]:
    if not result.failing_step_id:
        return []
    from rich.text import Text

    from engine import cli_render as render

    step = next((s for s in steps if s.get("step_id") == result.failing_step_id), {})
    message = render.step_note(step) or result.error or ""
    kind = f" ({render.step_type(step)})" if step else ""
    return [("failed", Text.assemble((f"{result.failing_step_id}{kind}: ", "bold red"),
                                      message))]


def _waiting_rows(run: dict[str, Any]) -> list[tuple[str, RenderableType]]:
    from rich.markup import escape

    waiting = (run.get("lifecycle") or {}).get("waiting_for_block_ids")
    return [("waiting", escape(", ".join(waiting)))] if waiting else []


def _skip_lines(steps: list[dict[str, Any]]) -> list[RenderableType]:
    from rich.text import Text

    from engine import cli_render as render

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
    data = paired_json(to_jsonable(outputs or {}))  # as stored: lone surrogates as U+FFFD
    if not data:
        return []
    from rich.text import Text

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
    from engine import cli_render as render

    block = render.json_block(payload, _OUTPUT_LINES)
    return "\n" + "\n".join("    " + line for line in block.splitlines())


def _hints(run_id: str, status: str, failing_step_id: str | None, db: str,
           failed_item: str | None) -> Text:
    from rich.text import Text

    flag = db_flag(db)
    text = Text(f"\nInspect the steps: stepwell steps list {run_id}{flag}", style="dim")
    failed = failed_item or failing_step_id
    if failed:
        text.append(f"\nSee the error: stepwell steps get {failed} --run {run_id}{flag}")
        text.append(f"\nWhat it wrote: stepwell steps logs {failed} --run {run_id}{flag}")
    if failed_item and status in ("error", "completed"):
        text.append(f"\nRetry the failed items only: stepwell runs rerun {run_id} --failed"
                    f"{flag}")
    if status == "awaiting_review":
        text.append(f"\nDecide the review: stepwell reviews list{flag}")
    return text
