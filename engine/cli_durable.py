"""``stepwell runs cancel|resume|rerun`` and ``stepwell reviews approve|reject``.

These act on runs that are already in the database, from any process: the process that
started a run may be gone (killed, or exited with code 3 while waiting for a review).
Refusals (a finished run, an unknown review, a review decided the other way, ``--failed``
on a run without failed steps) exit 2 and change nothing. Whatever executes shows the
view ``stepwell run`` shows (:mod:`engine.cli_live`), and takes ``--wait`` (follow the
run through reviews), ``--all`` (sentinel rows) and ``--blocks``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.cli_read import DbOption, JsonOption, runs_app
from engine.cli_support import (
    ALL_HELP,
    BLOCKS_HELP,
    DURABILITY_HELP,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    WAIT_HELP,
    Durability,
    db_flag,
    existing_db,
    fail,
    handle_errors,
    print_json,
    stderr,
    stdout,
)

reviews_app = typer.Typer(help="List, show, approve and reject human reviews.",
                          no_args_is_help=True)

RunArg = Annotated[str, typer.Argument(help="The run id (run_...).", show_default=False)]
DetachOption = Annotated[bool, typer.Option(
    "--detach", help="Queue the run for `stepwell worker` instead of continuing it here.")]
ReviewArg = Annotated[str, typer.Argument(help="The review id (rev_...).", show_default=False)]
DurabilityOption = Annotated[Durability, typer.Option(
    "--durability", case_sensitive=False,
    help=DURABILITY_HELP)]
WaitOption = Annotated[bool, typer.Option("--wait", help=WAIT_HELP)]
AllOption = Annotated[bool, typer.Option("--all", help=ALL_HELP)]
BlocksOption = Annotated[list[str] | None, typer.Option(
    "--blocks", help=BLOCKS_HELP, show_default=False)]
#: How long ``runs cancel`` waits for a live owner to stop the run before returning.
CANCEL_WAIT_S = 5.0


def _engine(db: str | Path | None, durability: Durability = Durability.process,
            blocks: list[str] | None = None) -> Any:
    from engine.cli_run import cli_engine

    return cli_engine(existing_db(db), blocks or (), durability)


def _continue(engine: Any, db: str | Path | None, run_id: str | None, prepare: Any, *,
              as_json: bool, wait: bool = False, show_all: bool = False) -> None:
    """Execute the run ``prepare()`` makes (``run_id``, or a new run when None) with the
    progress view, report how it ended and exit with its code; Ctrl-C leaves the run
    resumable and exits 130."""
    from engine.cli_run import RunRequest, execute_prepared, output_mode, report_result

    request = RunRequest(workflow=Path("-"), inputs=(), db=existing_db(db),
                         mode=output_mode(as_json=as_json, quiet=False), wait=wait,
                         show_all=show_all)
    started = time.monotonic()
    try:
        result = execute_prepared(engine, request, prepare)
    except KeyboardInterrupt:
        flag = db_flag(existing_db(db))
        which = (f"Run {run_id}" if run_id else
                 f"The new run (see `stepwell runs list --status running{flag}`)")
        stderr().print(
            f"[bold red]Interrupted.[/] {which} stopped part-way; its finished steps are "
            f"saved. Continue it with `stepwell runs resume {run_id or 'RUN_ID'}{flag}`.")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    raise typer.Exit(report_result(engine, request, result,
                                   (time.monotonic() - started) * 1000))


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
                durability: DurabilityOption = Durability.process, wait: WaitOption = False,
                show_all: AllOption = False, blocks: BlocksOption = None) -> None:
    """Continue a run whose process died: completed steps are not executed again."""
    engine = _engine(db, durability, blocks)
    try:
        _continue(engine, db, run_id, lambda: engine.prepare_resume(run_id), as_json=as_json,
                  wait=wait, show_all=show_all)
    finally:
        engine.close()


@runs_app.command("rerun")
@handle_errors
def runs_rerun(
    run_id: RunArg,
    from_step: Annotated[str | None, typer.Option(
        "--from", help="The step to run again with all it feeds: a top-level step, or a "
        "step inside a loop (each_iter_3_work; the loop's other items are kept).",
        show_default=False)] = None,
    failed: Annotated[bool, typer.Option(
        "--failed", help="Run again only the steps that failed (a loop's failed items) and "
        "what depends on them; keep everything that completed.")] = False,
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
    wait: WaitOption = False,
    show_all: AllOption = False,
    blocks: BlocksOption = None,
) -> None:
    """Start a new run that reuses what the earlier run did: everything upstream of
    --from, or everything but what failed (--failed)."""
    from engine.cli_inputs import parse_inputs
    from engine.rerun import prepare_rerun

    if failed == (from_step is not None):
        fail("Pass --from STEP_ID (run that step again with all it feeds) or --failed (run "
             "again what failed), not both and not neither.")
    engine = _engine(db, durability, blocks)
    try:
        parsed: dict[str, Any] = {}
        source: Any = workflow
        if inputs:  # compiled once here, for the start blocks, and rerun as compiled
            from engine.definition import Workflow

            stored = Workflow.from_dict(engine.store.load_run(run_id).definition)
            source = engine.compile(engine.load(workflow) if workflow else stored)
            parsed = parse_inputs(inputs, source.start_blocks())
        _continue(engine, db, None,
                  lambda: prepare_rerun(engine, run_id, from_step, failed=failed,
                                        inputs=parsed or None, workflow=source),
                  as_json=as_json, wait=wait, show_all=show_all)
    finally:
        engine.close()


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


def _decide(review_id: str, db: str | Path | None, as_json: bool, durability: Durability,
            options: dict[str, Any], **decision: Any) -> None:
    """Record the decision, then continue the run unless it cannot or need not be.

    ``options``: ``wait``, ``show_all``, ``blocks`` and ``detach`` (queue the run for a
    worker instead) of the command. A run that was queued for workers (``run --detach``)
    and handed back by its worker to wait for the review is queued again without
    ``detach``: a worker continues it, under the worker's executor and policy.
    """
    from engine import durable
    from engine.contracts.errors import ConflictError
    from engine.contracts.values import RunStatus

    engine = _engine(db, durability, options.get("blocks"))
    try:
        review, changed = engine.record_decision(review_id, **decision)
        run = engine.store.load_run(review.run_id)
        note = "" if changed else f"{review_id} was already {review.decision}. "
        if run.status.terminal:
            _say(as_json, review, f"{note}Run {run.run_id} ended {run.status.value}; "
                 "nothing changed.")
            return
        from engine.queue import after_decision

        queued = after_decision(engine.store, run, detach=bool(options.get("detach")))
        if queued:  # asked to, or the run was left to the workers (run --detach)
            _say(as_json, review, note + queued)
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
            _continue(engine, db, run.run_id, lambda: engine.prepare_resume(run.run_id),
                      as_json=as_json, wait=bool(options.get("wait")),
                      show_all=bool(options.get("show_all")))
        except ConflictError as exc:  # another process continues the run: fine
            _say(as_json, review, f"{note}Decision recorded. {exc}")
    finally:
        engine.close()


def _say(as_json: bool, review: Any, message: str) -> None:
    if as_json:
        from engine.cli_support import iso_time

        data = review.to_dict()
        print_json({**data, "created_at": iso_time(data["created_at"]),
                    "decided_at": iso_time(data["decided_at"])})
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
    wait: WaitOption = False,
    show_all: AllOption = False,
    blocks: BlocksOption = None,
    detach: DetachOption = False,
) -> None:
    """Approve a review (optionally with corrected data) and continue the run."""
    value, has_data = _parse_data(data)
    options = {"wait": wait, "show_all": show_all, "blocks": blocks, "detach": detach}
    _decide(review_id, db, as_json, durability, options, approved=True, data=value,
            has_data=has_data)


@reviews_app.command("reject")
@handle_errors
def reviews_reject(
    review_id: ReviewArg,
    reason: Annotated[str, typer.Option("--reason", help="Why it was rejected.")] = "",
    db: DbOption = None,
    as_json: JsonOption = False,
    durability: DurabilityOption = Durability.process,
    wait: WaitOption = False,
    show_all: AllOption = False,
    blocks: BlocksOption = None,
    detach: DetachOption = False,
) -> None:
    """Reject a review: what depends on the step is skipped, and the run continues."""
    options = {"wait": wait, "show_all": show_all, "blocks": blocks, "detach": detach}
    _decide(review_id, db, as_json, durability, options, approved=False, reason=reason)
