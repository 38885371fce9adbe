"""``stepwell runs watch RUN_ID``: follow a run another process executes, until it ends.

The run may be executed by another ``stepwell`` process, by ``stepwell serve``, or by an
application embedding the engine: the watcher only reads the database. It redraws the
run's live view (the one ``stepwell run`` shows: sentinel rows hidden unless ``--all``,
loop items in the footer) every half second on a terminal, and prints plain progress
lines otherwise; when the run ends it prints the same summary as ``stepwell run`` and
exits with the same code (0 completed, 1 error or cancelled, 3 waiting for a review).

A run waiting for a review ends the watch (exit 3) unless ``--wait`` is given: then the
view says since when it waits and how to decide, and the watch goes on once someone
decides and the run continues. A run whose owner process died is reported as such
(exit 1), with the command that resumes it.
"""

from __future__ import annotations

import time
from dataclasses import field
from typing import Annotated, Any

import typer

from engine.cli_read import DbOption, JsonOption, runs_app
from engine.cli_support import (
    ALL_HELP,
    EXIT_RUN_FAILED,
    WAIT_HELP,
    db_flag,
    existing_db,
    handle_errors,
    print_json,
    stderr,
    stdout,
)
from engine.contracts.frozen import record

#: Seconds between two reads of the database (longer for runs that take long to read).
POLL_S = 0.5
_ENDED = frozenset({"completed", "error", "cancelled"})


@record
class WatchedResult:
    """How a watched run ended, in the shape the run summary reads."""

    run_id: str
    status: str
    outputs: dict[str, Any] = field(default_factory=dict)
    failing_step_id: str | None = None
    error: str | None = None
    reason: str | None = None


def result_of(run: dict[str, Any]) -> WatchedResult:
    """The summary's view of a run read from the database (a ``to_jsonable`` run)."""
    lifecycle = run.get("lifecycle") or {}
    return WatchedResult(run_id=run["id"], status=str(lifecycle.get("status")),
                         outputs=run.get("outputs") or {},
                         failing_step_id=lifecycle.get("failing_step_id"),
                         error=lifecycle.get("message"), reason=lifecycle.get("reason"))


def watch(db: str, run_id: str, *, wait: bool, show_all: bool, live: bool) -> dict[str, Any]:
    """Follow ``run_id`` until it ends (or waits for a review, unless ``wait``).

    Returns:
        The run as last read (a ``to_jsonable`` run, with ``owner`` and ``waiting_since``
        notes from :func:`engine.cli_read.annotate_runs`).

    Raises:
        NotFoundError: no such run.
    """
    from engine.cli_live import list_all_steps
    from engine.cli_read import annotate_runs
    from engine.cli_support import to_jsonable
    from engine.cli_view import ItemTotals, PlainProgress, run_view
    from store.client import Client

    started = time.monotonic()
    with Client(db) as client:
        totals = ItemTotals(client, run_id)
        plain = PlainProgress(run_id)
        display = _display(live)
        try:
            while True:
                began = time.monotonic()
                run = to_jsonable(client.workflows.runs.get(run_id))
                annotate_runs(client, [run])
                steps = list_all_steps(client, run_id)
                totals.refresh(steps)
                state = run_state(run)
                if display is not None:
                    display.update(run_view(
                        run_id, str(run.get("workflow_name") or ""), steps,
                        time.monotonic() - started, max_rows=max(stdout().height - 10, 5),
                        show_all=show_all, totals=totals, note=watch_note(run, db)))
                else:
                    plain.update(steps, totals)
                if state == "ended" or (state == "waiting" and not wait) or state == "orphan":
                    return run
                time.sleep(max(POLL_S, 4 * (time.monotonic() - began)))
        finally:
            if display is not None:
                display.stop()


def run_state(run: dict[str, Any]) -> str:
    """``ended``, ``waiting`` (for a review), ``orphan`` (its process died) or ``going``
    (a run queued for a worker, with no process yet, is going, not an orphan)."""
    status = str((run.get("lifecycle") or {}).get("status"))
    if status in _ENDED:
        return "ended"
    if status == "awaiting_review":
        return "waiting"
    owner = run.get("owner") or {}
    return "orphan" if owner.get("alive") is False and not owner.get("queued") else "going"


def watch_note(run: dict[str, Any], db: str) -> str:
    """The line under the view: since when the run waits for a review and how to decide."""
    since = run.get("waiting_since")
    if not since:
        return ""
    return (f"waiting for review since {since} · decide with `stepwell reviews list"
            f"{db_flag(db)}`")


def _display(live: bool) -> Any:
    if not live:
        return None
    from rich.live import Live

    display = Live(console=stdout(), refresh_per_second=4, transient=False)
    display.start()
    return display


@runs_app.command("watch")
@handle_errors
def runs_watch(
    run_id: Annotated[str, typer.Argument(help="The run id (run_...).", show_default=False)],
    wait: Annotated[bool, typer.Option("--wait", help=WAIT_HELP)] = False,
    show_all: Annotated[bool, typer.Option("--all", help=ALL_HELP)] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Follow a run started elsewhere (another process, the server) until it ends."""
    path = existing_db(db)
    raise typer.Exit(watch_and_report(path, run_id, wait=wait, show_all=show_all,
                                      as_json=as_json))


def watch_and_report(db: str, run_id: str, *, wait: bool, show_all: bool,
                     as_json: bool) -> int:
    """Follow ``run_id`` (:func:`watch`), then print how it ended; return the exit code.

    Args:
        db: the database.
        run_id: the run.
        wait: follow it through reviews.
        show_all: show loop sentinel rows.
        as_json: print the final run as JSON (no live view).
    """
    from engine.cli_live import list_all_steps
    from engine.cli_run import exit_code_for, summary_view
    from engine.cli_view import ItemTotals
    from store.client import Client

    started = time.monotonic()
    live = not as_json and stdout().is_terminal
    run = watch(db, run_id, wait=wait, show_all=show_all, live=live)
    status = str((run.get("lifecycle") or {}).get("status"))
    if run_state(run) == "orphan":
        owner = run.get("owner") or {}
        stderr().print(f"[bold red]Run {run_id} lost its process[/] (pid {owner.get('pid')}); "
                       f"continue it with `stepwell runs resume {run_id}{db_flag(db)}`.",
                       soft_wrap=True)
        return EXIT_RUN_FAILED
    if as_json:
        print_json(run)
        return exit_code_for(status)
    with Client(db) as client:
        steps = list_all_steps(client, run_id)
        totals = ItemTotals(client, run_id)
        totals.refresh(steps)
    stdout().print(summary_view(result_of(run), run, steps,
                                (time.monotonic() - started) * 1000, db,
                                total_of=totals.get))
    return exit_code_for(status)
