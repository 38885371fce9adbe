"""``stepwell runs cancel|resume|rerun`` and ``stepwell reviews list|approve|reject``.

These act on runs that are already in the database, from any process: the process that
started a run may be gone (killed, or exited with code 3 while waiting for a review).
Refusals (a finished run, an unknown review, a review decided the other way) exit 2 and
change nothing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.cli_read import DbOption, JsonOption, runs_app
from engine.cli_support import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Durability,
    db_flag,
    existing_db,
    fail,
    handle_errors,
    print_json,
    stderr,
    stdout,
)

reviews_app = typer.Typer(help="List human reviews and approve or reject them.",
                          no_args_is_help=True)

RunArg = Annotated[str, typer.Argument(help="The run id (run_...).", show_default=False)]
ReviewArg = Annotated[str, typer.Argument(help="The review id (rev_...).", show_default=False)]
DurabilityOption = Annotated[Durability, typer.Option(
    "--durability", case_sensitive=False,
    help="process: survives process crashes (fast). full: also survives power loss.")]
#: How long ``runs cancel`` waits for a live owner to stop the run before returning.
CANCEL_WAIT_S = 5.0


def _engine(db: Path | None, durability: Durability = Durability.process) -> Any:
    from engine.core import Engine

    return Engine(existing_db(db), durability=durability.value)


def _report(engine: Any, db: Path | None, result: Any, as_json: bool, started: float) -> None:
    from engine.cli_run import OutputMode, RunRequest, report_result

    request = RunRequest(workflow=Path("-"), inputs=(), db=existing_db(db),
                         mode=OutputMode.JSON if as_json else OutputMode.PLAIN)
    code = report_result(engine, request, result, (time.monotonic() - started) * 1000)
    raise typer.Exit(code)


def _continue(engine: Any, db: Path | None, run_id: str | None, as_json: bool,
              work: Any) -> None:
    """Run ``work()`` (which executes ``run_id``, or a new run when None), report the
    result and exit with its code; Ctrl-C leaves the run resumable and exits 130."""
    started = time.monotonic()
    try:
        result = work()
    except KeyboardInterrupt:
        flag = db_flag(existing_db(db))
        which = (f"Run {run_id}" if run_id else
                 f"The new run (see `stepwell runs list --status running{flag}`)")
        stderr().print(
            f"[bold red]Interrupted.[/] {which} stopped part-way; its finished steps are "
            f"saved. Continue it with `stepwell runs resume {run_id or 'RUN_ID'}{flag}`.")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    _report(engine, db, result, as_json, started)


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
        if engine.cancel(run_id, reason):
            stdout().print(f"{run_id} cancelled (no live process owned it).")
            return
        deadline = time.monotonic() + CANCEL_WAIT_S
        while time.monotonic() < deadline:
            status = engine.store.load_run(run_id).status
            if status.terminal:
                stdout().print(f"{run_id} stopped: {status.value}.")
                return
            time.sleep(0.1)
    finally:
        engine.close()
    stdout().print(f"{run_id}: cancel requested; its process has not stopped yet. Check "
                   f"with `stepwell runs get {run_id}{db_flag(existing_db(db))}`.")


@runs_app.command("resume")
@handle_errors
def runs_resume(run_id: RunArg, db: DbOption = None, as_json: JsonOption = False,
                durability: DurabilityOption = Durability.process) -> None:
    """Continue a run whose process died: completed steps are not executed again."""
    engine = _engine(db, durability)
    try:
        _continue(engine, db, run_id, as_json, lambda: engine.resume(run_id))
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
    durability: DurabilityOption = Durability.process,
) -> None:
    """Start a new run that reuses the outputs of everything upstream of --from."""
    from engine.cli_inputs import parse_inputs

    engine = _engine(db, durability)
    try:
        parsed: dict[str, Any] = {}
        source: Any = workflow
        if inputs:  # compiled once here, for the start blocks, and rerun as compiled
            from engine.definition import Workflow

            stored = Workflow.from_dict(engine.store.load_run(run_id).definition)
            source = engine.compile(engine.load(workflow) if workflow else stored)
            parsed = parse_inputs(inputs, source.start_blocks())
        _continue(engine, db, None, as_json,
                  lambda: engine.rerun(run_id, from_step, parsed or None, source))
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
    from rich.markup import escape
    from rich.table import Table

    if status is not None and status not in ("pending", "approved", "rejected"):
        fail(f"--status {status!r}: use pending, approved or rejected.", EXIT_USAGE)
    engine = _engine(db)
    try:
        reviews = engine.store.reviews(run_id=run, status=status)
    finally:
        engine.close()
    if as_json:
        print_json([r.to_dict() for r in reviews])
        return
    if not reviews:
        stdout().print("No reviews match." if run or status else "No reviews yet.")
        return
    table = Table("review", "run", "step", "status", "proposed data")
    for r in reviews:
        table.add_row(r.id, r.run_id, r.step_id, r.status, escape(_proposed(r.data)))
    stdout().print(table)
    if any(r.status == "pending" for r in reviews):
        stdout().print("Decide with `stepwell reviews approve REVIEW_ID [--data JSON]` or "
                       "`stepwell reviews reject REVIEW_ID --reason TEXT`.", soft_wrap=True)


def _proposed(data: Any, width: int = 80) -> str:
    """The proposed payload of a review, in one line."""
    outputs = (data or {}).get("outputs") or {}
    shown = [p.get("data", p) if isinstance(p, dict) else p for p in outputs.values()]
    text = json.dumps(shown[0] if len(shown) == 1 else shown, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


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


def _decide(review_id: str, db: Path | None, as_json: bool, durability: Durability,
            **decision: Any) -> None:
    """Record the decision, then continue the run unless it cannot or need not be."""
    from engine import durable
    from engine.contracts.errors import ConflictError
    from engine.contracts.values import RunStatus

    engine = _engine(db, durability)
    try:
        review, changed = engine.record_decision(review_id, **decision)
        run = engine.store.load_run(review.run_id)
        note = "" if changed else f"{review_id} was already {review.decision}. "
        if run.status.terminal:
            _say(as_json, review, f"{note}Run {run.run_id} ended {run.status.value}; "
                 "nothing changed.")
            return
        if run.status is not RunStatus.AWAITING_REVIEW and durable.owner_alive(run):
            _say(as_json, review, f"{note}Decision recorded. Run {run.run_id} is still "
                 f"executing in process {run.owner_pid}; when it stops to wait for review, "
                 f"continue it with `stepwell runs resume {run.run_id}"
                 f"{db_flag(existing_db(db))}`.")
            return
        if note and not as_json:
            stderr().print(f"{note}Continuing run {run.run_id}.")
        try:
            _continue(engine, db, run.run_id, as_json, lambda: engine.resume(run.run_id))
        except ConflictError as exc:  # another process continues the run: fine
            _say(as_json, review, f"{note}Decision recorded. {exc}")
    finally:
        engine.close()


def _say(as_json: bool, review: Any, message: str) -> None:
    if as_json:
        print_json(review.to_dict())
    else:
        stdout().print(message, soft_wrap=True)


@reviews_app.command("approve")
@handle_errors
def reviews_approve(
    review_id: ReviewArg,
    data: Annotated[str | None, typer.Option(
        "--data", help="Corrected output as JSON or @file.json (replaces the proposal).",
        show_default=False)] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    durability: DurabilityOption = Durability.process,
) -> None:
    """Approve a review (optionally with corrected data) and continue the run."""
    value, has_data = _parse_data(data)
    _decide(review_id, db, as_json, durability, approved=True, data=value, has_data=has_data)


@reviews_app.command("reject")
@handle_errors
def reviews_reject(
    review_id: ReviewArg,
    reason: Annotated[str, typer.Option("--reason", help="Why it was rejected.")] = "",
    db: DbOption = None,
    as_json: JsonOption = False,
    durability: DurabilityOption = Durability.process,
) -> None:
    """Reject a review: what depends on the step is skipped, and the run continues."""
    _decide(review_id, db, as_json, durability, approved=False, reason=reason)
