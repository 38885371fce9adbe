"""``stepwell steps logs STEP_ID --run RUN_ID [--follow]``: what a step's attempts wrote.

Lines are the step's stored log (:mod:`engine.contracts.logs`): ``stdout``/``stderr``
lines and ``logging`` records of function code, the request/response summary of
``api_call``, and engine notes, attempt by attempt. ``--follow`` keeps reading until
the step has ended: it waits for a step the run has not reached yet, and for the
attempts of a step being retried; lines show up within about a second of being written
(the run stores them while the step runs). It stops with exit 1 when the run lost its
process (as ``stepwell runs watch``), and refuses at once (exit 2) a step id that
cannot occur in the run (its block is not in the run's workflow). ``--json`` prints the read API's page (``{"data",
"list_metadata"}``; with ``--follow``, one JSON object per line as they come).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from engine.cli_read import DbOption, JsonOption, read_client, steps_app
from engine.cli_support import (
    EXIT_RUN_FAILED,
    db_flag,
    fail,
    handle_errors,
    print_json,
    stderr,
    stdout,
    to_jsonable,
)

#: Seconds between two reads while following.
FOLLOW_POLL_S = 0.5
PAGE = 1000
_ENDED = frozenset({"completed", "skipped", "error", "cancelled", "awaiting_review"})
_RUN_ENDED = frozenset({"completed", "error", "cancelled", "awaiting_review"})
_STYLES = {"stderr": "yellow", "http": "cyan", "stepwell": "dim", "ERROR": "bold red",
           "CRITICAL": "bold red", "WARNING": "yellow", "DEBUG": "dim"}


@steps_app.command("logs")
@handle_errors
def steps_logs(
    step_id: Annotated[str, typer.Argument(help="The step id (see `stepwell steps list`).",
                                           show_default=False)],
    run: Annotated[str | None, typer.Option(
        "--run", "-r", help="The run the step belongs to (needed when several runs have "
        "this step id).", show_default=False)] = None,
    follow: Annotated[bool, typer.Option(
        "--follow", "-f", help="Keep printing new lines until the step has ended.")] = False,
    attempt: Annotated[int | None, typer.Option(
        "--attempt", "-a", min=0, help="Only this attempt (0 is the first).",
        show_default=False)] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print what a step wrote: function stdout, stderr and logging, api_call summaries."""
    from engine.contracts.errors import NotFoundError

    with read_client(db) as client:
        try:
            step = client.workflows.steps.get(step_id, run_id=run)
        except NotFoundError:
            if not (follow and run):
                raise
            client.workflows.runs.get(run)  # an unknown run is an error; a step may come
            check_step_can_occur(db, run, step_id)
            step = None
        run_id = step.run_id if step is not None else str(run)
        if step is not None and attempt is not None and attempt > step.retry_count and (
                not follow or step.lifecycle.status in _ENDED):
            fail(f"Step {step_id} of run {run_id} has no attempt {attempt}: "
                 f"{_attempts_made(step)}. Pass --attempt 0 to {step.retry_count}, or "
                 "leave it out for every attempt.")
        if not follow:
            page = client.workflows.steps.logs(step_id, run_id=run_id, attempt=attempt,
                                               limit=PAGE)
            lines = [to_jsonable(line) for line in page.data]
            while page.list_metadata.after:
                page = client.workflows.steps.logs(step_id, run_id=run_id, attempt=attempt,
                                                   after=page.list_metadata.after, limit=PAGE)
                lines += [to_jsonable(line) for line in page.data]
            if as_json:
                print_json({"data": lines, "list_metadata": {"before": None, "after": None}})
                return
            if not lines:
                stdout().print(f"Step {step_id} of run {run_id} wrote no log lines.")
            LogPrinter().print(lines)
            return
        printer = LogPrinter()
        printed = 0
        for line in _follow(client, step_id, run_id, attempt, db):
            printed += 1
            if as_json:
                typer.echo(json.dumps(line, default=str))
            else:
                printer.print([line])
        if not printed and not as_json:
            stdout().print(f"Step {step_id} of run {run_id} ended and wrote no log lines.")


def _attempts_made(step: Any) -> str:
    """``it ran attempt 0`` / ``it ran attempts 0 to N`` (or ``so far``, while it runs)."""
    made = ("attempt 0" if step.retry_count == 0
            else f"attempts 0 to {step.retry_count}")
    return f"it ran {made}" + ("" if step.lifecycle.status in _ENDED else " so far")


def check_step_can_occur(db: Any, run_id: str, step_id: str) -> None:
    """Exit 2 when ``step_id`` names no block of the run's workflow (a loop iteration's
    ``<container>_iter_<i>_<block>`` names ``block``), with a close match if any."""
    import difflib

    from engine.cli_steps import is_block_of, run_block_ids

    blocks = run_block_ids(db, run_id)
    block_id = re.sub(r"^.*_iter_\d+_", "", step_id)
    if is_block_of(block_id, blocks):
        return
    close = difflib.get_close_matches(block_id, blocks, n=1)
    hint = f" Did you mean {step_id.removesuffix(block_id) + close[0]!r}?" if close else ""
    fail(f"Run {run_id} has no block {block_id!r}, so it will never have a step "
         f"{step_id!r}.{hint} List its steps with `stepwell steps list {run_id}`.")


def _lost_process(client: Any, run_id: str, db: Any) -> bool:
    """Exit 1 (as ``stepwell runs watch``) when the run's process died; True when the
    run has ended (its steps write no more)."""
    from engine.cli_read import annotate_runs
    from engine.cli_support import existing_db
    from engine.cli_watch import run_state

    run = to_jsonable(client.workflows.runs.get(run_id))
    annotate_runs(client, [run])
    if run_state(run) == "orphan":
        owner = run.get("owner") or {}
        fail(f"Run {run_id} lost its process (pid {owner.get('pid')}); continue it with "
             f"`stepwell runs resume {run_id}{db_flag(existing_db(db))}`.",
             code=EXIT_RUN_FAILED)
    return str((run.get("lifecycle") or {}).get("status")) in _RUN_ENDED


def _follow(client: Any, step_id: str, run_id: str, attempt: int | None, db: Any
            ) -> Iterator[dict[str, Any]]:
    """Yield the step's lines as they are stored, until the step has ended (or the run
    lost its process: exit 1)."""
    from engine.contracts.errors import NotFoundError

    after: str | None = None
    said_waiting = run_ended = False
    while True:
        try:
            status = client.workflows.steps.get(step_id, run_id=run_id).lifecycle.status
        except NotFoundError:
            run_status = client.workflows.runs.get(run_id).lifecycle.status
            if run_status in _RUN_ENDED:
                fail(f"Run {run_id} ended {run_status} without a step {step_id!r}. List its "
                     f"steps with `stepwell steps list {run_id}`.")
            _lost_process(client, run_id, db)
            if not said_waiting:
                stderr().print(f"Waiting for step {step_id} of run {run_id} to start …")
                said_waiting = True
            time.sleep(FOLLOW_POLL_S)
            continue
        while True:
            page = client.workflows.steps.logs(step_id, run_id=run_id, attempt=attempt,
                                               after=after, limit=PAGE)
            for line in page.data:
                yield to_jsonable(line)
            if page.data:
                after = str(page.data[-1].seq)
            if not page.list_metadata.after:
                break
        if status in _ENDED or run_ended:
            return
        run_ended = _lost_process(client, run_id, db)  # then one more read
        if not run_ended:
            time.sleep(FOLLOW_POLL_S)


class LogPrinter:
    """Prints entries one per line (time, stream or level and logger, message), with a
    rule where a retry's attempt begins."""

    def __init__(self) -> None:
        self._attempt: int | None = None

    def print(self, lines: list[dict[str, Any]]) -> None:
        """Print ``lines`` (read API log entries as dicts) on stdout."""
        from rich.text import Text

        console = stdout()
        for line in lines:
            attempt = int(line["attempt"])
            if attempt != self._attempt and (self._attempt is not None or attempt):
                console.print(Text(f"── attempt {attempt} (retry {attempt})", style="dim"))
            self._attempt = attempt
            at = str(line.get("at") or "")
            clock = at[11:23] + "Z" if len(at) >= 23 else at
            if line["stream"] == "logging":
                label = f"{line.get('level') or ''} {line.get('logger') or ''}".strip()
                style = _STYLES.get(str(line.get("level")), "")
            else:
                label, style = str(line["stream"]), _STYLES.get(str(line["stream"]), "")
            text = Text(f"{clock} ", style="dim")
            text.append(f"{label:<8} ", style=style or "bold")
            text.append(str(line["message"]))
            console.print(text, soft_wrap=True)
