"""``stepwell runs cancel|resume|rerun`` and ``stepwell reviews list|approve|reject``.

These act on runs that are already in the database, from any process: the process that
started a run may be gone (killed, or exited with code 3 while waiting for a review).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.cli_read import DbOption, JsonOption, runs_app
from engine.cli_support import EXIT_USAGE, existing_db, fail, handle_errors, print_json, stdout

reviews_app = typer.Typer(help="List human reviews and approve or reject them.",
                          no_args_is_help=True)

RunArg = Annotated[str, typer.Argument(help="The run id (run_...).", show_default=False)]
ReviewArg = Annotated[str, typer.Argument(help="The review id (rev_...).", show_default=False)]


def _engine(db: Path | None) -> Any:
    from engine.core import Engine

    return Engine(existing_db(db))


def _report(engine: Any, db: Path | None, result: Any, as_json: bool, started: float) -> None:
    from engine.cli_run import OutputMode, RunRequest, report_result

    request = RunRequest(workflow=Path("-"), inputs=(), db=existing_db(db),
                         mode=OutputMode.JSON if as_json else OutputMode.PLAIN)
    code = report_result(engine, request, result, (time.monotonic() - started) * 1000)
    raise typer.Exit(code)


@runs_app.command("cancel")
@handle_errors
def runs_cancel(
    run_id: RunArg,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept on the run).")] =
    "cancelled by request",
    db: DbOption = None,
) -> None:
    """Cancel a run: its process stops within a second; waiting steps become cancelled."""
    engine = _engine(db)
    try:
        direct = engine.cancel(run_id, reason)
    finally:
        engine.close()
    if direct:
        stdout().print(f"{run_id} cancelled (no live process owned it).")
    else:
        stdout().print(f"{run_id}: cancel requested; its process stops within a second.")


@runs_app.command("resume")
@handle_errors
def runs_resume(run_id: RunArg, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Continue a run whose process died: completed steps are not executed again."""
    engine = _engine(db)
    started = time.monotonic()
    try:
        result = engine.resume(run_id)
        _report(engine, db, result, as_json, started)
    finally:
        engine.close()


@runs_app.command("rerun")
@handle_errors
def runs_rerun(
    run_id: RunArg,
    from_step: Annotated[str, typer.Option("--from", help="Top-level step to rerun from.",
                                           show_default=False)],
    inputs: Annotated[list[str] | None, typer.Option(
        "--input", "-i", metavar="BLOCK=VALUE", show_default=False,
        help="Replace a start block's input (everything downstream of it reruns).")] = None,
    workflow: Annotated[Path | None, typer.Option(
        "--workflow", "-w", show_default=False,
        help="Use this (edited) workflow file; refused if it changed upstream of --from.")]
    = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a new run that reuses the outputs of everything upstream of --from."""
    from engine.cli_inputs import parse_inputs

    engine = _engine(db)
    started = time.monotonic()
    try:
        parsed: dict[str, Any] = {}
        if inputs:
            from engine.definition import Workflow

            source = engine.load(workflow) if workflow else Workflow.from_dict(
                engine.store.load_run(run_id).definition)
            parsed = parse_inputs(inputs, engine.compile(source).start_blocks())
        result = engine.rerun(run_id, from_step, parsed or None, workflow)
        _report(engine, db, result, as_json, started)
    finally:
        engine.close()


@reviews_app.command("list")
@handle_errors
def reviews_list(
    run: Annotated[str | None, typer.Option("--run", "-r", help="Only this run's reviews.",
                                            show_default=False)] = None,
    status: Annotated[str | None, typer.Option(
        "--status", "-s", help="pending, approved or rejected.", show_default=False)] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List reviews, newest first."""
    from rich.table import Table

    engine = _engine(db)
    try:
        reviews = engine.store.reviews(run_id=run, status=status)
    finally:
        engine.close()
    if as_json:
        print_json([r.to_dict() for r in reviews])
        return
    if not reviews:
        stdout().print("No reviews match.")
        return
    table = Table("review", "run", "step", "status", "proposed data")
    for r in reviews:
        table.add_row(r.id, r.run_id, r.step_id, r.status,
                      json.dumps(r.data, default=str)[:80])
    stdout().print(table)


def _parse_data(raw: str | None) -> tuple[Any, bool]:
    if raw is None:
        return None, False
    text = raw
    if raw.startswith("@"):
        path = Path(raw[1:])
        if not path.is_file():
            fail(f"--data {raw}: no such file. Pass JSON, or @file.json.", EXIT_USAGE)
        text = path.read_text()
    try:
        return json.loads(text), True
    except json.JSONDecodeError as exc:
        fail(f"--data: not valid JSON ({exc.msg}: line {exc.lineno} column {exc.colno}). "
             "Pass JSON like '{\"amount\": 90}' or @file.json.", EXIT_USAGE)


def _decide(review_id: str, db: Path | None, as_json: bool, **decision: Any) -> None:
    engine = _engine(db)
    started = time.monotonic()
    try:
        result = engine.decide(review_id, **decision)
        if result is None:
            stdout().print(f"{review_id}: decision recorded (already taken, or the run ended).")
            return
        _report(engine, db, result, as_json, started)
    finally:
        engine.close()


@reviews_app.command("approve")
@handle_errors
def reviews_approve(
    review_id: ReviewArg,
    data: Annotated[str | None, typer.Option(
        "--data", help="Corrected output as JSON or @file.json (replaces the proposal).",
        show_default=False)] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Approve a review (optionally with corrected data) and continue the run."""
    value, has_data = _parse_data(data)
    _decide(review_id, db, as_json, approved=True, data=value, has_data=has_data)


@reviews_app.command("reject")
@handle_errors
def reviews_reject(
    review_id: ReviewArg,
    reason: Annotated[str, typer.Option("--reason", help="Why it was rejected.")] = "",
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Reject a review: what depends on the step is skipped, and the run continues."""
    _decide(review_id, db, as_json, approved=False, reason=reason)
