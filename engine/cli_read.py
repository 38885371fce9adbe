"""``stepwell runs ...`` and ``stepwell steps ...``: read a database, never write it.

Both groups go through the read client (``store.client.Client``), so what they print is
what the Python API and the HTTP server return. ``--json`` prints the client's models
unchanged (the Retab shapes).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.cli_support import (
    DB_HELP,
    JSON_HELP,
    existing_db,
    handle_errors,
    print_json,
    stdout,
)

runs_app = typer.Typer(help="List and inspect workflow runs.", no_args_is_help=True)
steps_app = typer.Typer(help="List and inspect the persisted steps of a run.",
                        no_args_is_help=True)

DbOption = Annotated[Path | None, typer.Option("--db", help=DB_HELP, show_default=False)]
JsonOption = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
RUN_STATUSES = "pending, queued, running, awaiting_review, completed, error, cancelled"
STEP_STATUSES = ("pending, queued, running, completed, skipped, error, awaiting_review, "
                 "cancelled")


@contextmanager
def read_client(db: Path | None) -> Iterator[Any]:
    """A read client on an existing database, closed afterwards."""
    from store.client import Client

    client = Client(existing_db(db))
    try:
        yield client
    finally:
        if hasattr(client, "close"):
            client.close()


def page_items(page: Any) -> list[Any]:
    """The items of a list result (a page with ``.data``, or a plain list)."""
    return list(page.data if hasattr(page, "data") else page)


def page_after(page: Any) -> str | None:
    """The cursor of the next page, or None on the last page."""
    metadata = getattr(page, "list_metadata", None)
    return getattr(metadata, "after", None) if metadata is not None else None


# --------------------------------------------------------------------------- runs


@runs_app.command("list")
@handle_errors
def runs_list(
    status: Annotated[list[str] | None, typer.Option(
        "--status", "-s", help=f"Only runs in this status (repeatable): {RUN_STATUSES}.",
        show_default=False)] = None,
    workflow: Annotated[str | None, typer.Option(
        "--workflow", "-w", help="Only runs of this workflow id.", show_default=False)] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most N runs.")] = 20,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List runs, newest first.

    Unfinished runs carry their owner process: ``owner alive: no`` marks one whose
    process died (resume it with ``stepwell runs resume RUN_ID``).
    """
    from engine.cli_detail import runs_table
    from engine.cli_support import to_jsonable

    with read_client(db) as client:
        page = client.workflows.runs.list(status=status or None, workflow_id=workflow,
                                          limit=limit)
        owners = run_owners(client, [run.id for run in page_items(page)])
    data = to_jsonable(page)
    runs = data["data"] if isinstance(data, dict) else data
    for run in runs:
        run["owner"] = owners.get(run["id"])
    if as_json:
        print_json(data)
        return
    console = stdout()
    if not runs:
        console.print("No runs match." if status or workflow else
                      "No runs yet. Start one with `stepwell run WORKFLOW`.")
        return
    dead = [run["id"] for run in runs if _flag_owner(run)]
    console.print(runs_table(runs))
    if dead:
        from engine.cli_support import db_flag, resolve_db

        console.print(f"[yellow]{len(dead)} unfinished run(s) lost their process; continue "
                      f"with `stepwell runs resume {dead[0]}{db_flag(resolve_db(db))}`.[/]",
                      soft_wrap=True)


#: Run statuses in which a live process should own the run.
OWNED_STATUSES = frozenset({"pending", "queued", "running"})


def run_owners(client: Any, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """run id -> ``{pid, heartbeat_at, alive}`` of its owner process.

    ``alive`` (see :func:`engine.durable.process_owns`) is given for runs that should
    have a live owner (pending, queued, running) and None for the others: a run waiting
    for review, or finished, needs no process.
    """
    import datetime as dt

    from engine.durable import process_owns

    out: dict[str, dict[str, Any]] = {}
    for run_id in run_ids:
        record = client.api.run_record(run_id)
        run_status, pid, beat = record.status, record.owner_pid, record.heartbeat_at
        at = (dt.datetime.fromtimestamp(beat, dt.UTC).isoformat().replace("+00:00", "Z")
              if beat else None)
        alive = process_owns(pid, beat) if run_status in OWNED_STATUSES else None
        out[run_id] = {"pid": pid, "heartbeat_at": at, "alive": alive}
    return out


def _flag_owner(run: dict[str, Any]) -> bool:
    """Put ``owner alive: yes|no`` in the run's table note; True when the owner is dead."""
    import datetime as dt

    owner = run.get("owner") or {}
    if owner.get("alive") is None:
        return False
    lifecycle = run.setdefault("lifecycle", {})
    if owner["alive"]:
        lifecycle["reason"] = f"owner alive: yes (pid {owner['pid']})"
        return False
    beat = owner.get("heartbeat_at")
    ago = ""
    if beat:
        seconds = dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(beat)
        ago = f", heartbeat {max(0, int(seconds.total_seconds()))}s ago"
    lifecycle["reason"] = f"owner alive: no (pid {owner['pid']}{ago})"
    return True


@runs_app.command("get")
@handle_errors
def runs_get(
    run_id: Annotated[str, typer.Argument(help="The run id (run_...).", show_default=False)],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one run: status, timing, step counts, inputs."""
    from engine.cli_detail import run_detail
    from engine.cli_live import list_all_steps
    from engine.cli_support import to_jsonable

    with read_client(db) as client:
        run = client.workflows.runs.get(run_id)
        if as_json:
            print_json(run)
            return
        steps = list_all_steps(client, run_id)
    stdout().print(run_detail(to_jsonable(run), steps))


# --------------------------------------------------------------------------- steps


@steps_app.command("list")
@handle_errors
def steps_list(
    run_id: Annotated[str, typer.Argument(help="The run id (run_...).", show_default=False)],
    block: Annotated[str | None, typer.Option(
        "--block", "-b", help="Only steps of this block id (every iteration).",
        show_default=False)] = None,
    status: Annotated[list[str] | None, typer.Option(
        "--status", "-s", help=f"Only steps in this status (repeatable): {STEP_STATUSES}.",
        show_default=False)] = None,
    block_type: Annotated[list[str] | None, typer.Option(
        "--type", "-t", help="Only steps of this block type (repeatable).",
        show_default=False)] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most N steps.")] = 100,
    after: Annotated[str | None, typer.Option(
        "--after", help="Cursor printed at the end of the previous page.",
        show_default=False)] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the steps of a run in creation order."""
    from engine.cli_render import steps_table
    from engine.cli_support import db_flag, resolve_db, to_jsonable

    with read_client(db) as client:
        client.workflows.runs.get(run_id)  # a clear NotFoundError for an unknown run
        page = client.workflows.steps.list(
            run_id, block_id=block, block_type=block_type or None, status=status or None,
            limit=limit, after=after)
    if as_json:
        print_json(page)
        return
    steps = [to_jsonable(step) for step in page_items(page)]
    console = stdout()
    if not steps:
        console.print("No steps match." if block or status or block_type or after
                      else f"Run {run_id} has no steps yet.")
        return
    console.print(steps_table(steps))
    cursor = page_after(page)
    if cursor:
        console.print(f"[dim]More steps: stepwell steps list {run_id} --after {cursor}"
                      f"{db_flag(resolve_db(db))}[/]", soft_wrap=True)


@steps_app.command("get")
@handle_errors
def steps_get(
    step_id: Annotated[str, typer.Argument(help="The step id (see `stepwell steps list`).",
                                           show_default=False)],
    run: Annotated[str | None, typer.Option(
        "--run", "-r", help="The run the step belongs to (needed when several runs "
        "have this step id).", show_default=False)] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one step: lifecycle, timing, handle inputs and outputs, artifact."""
    from engine.cli_detail import step_detail
    from engine.cli_support import to_jsonable

    with read_client(db) as client:
        step = to_jsonable(client.workflows.steps.get(step_id, run_id=run))
        if as_json:
            print_json(step)
            return
        record = artifact_record(client, step)
    stdout().print(step_detail(step, record))


def artifact_record(client: Any, step: dict[str, Any]) -> dict[str, Any] | None:
    """The operation record behind ``step.artifact`` (None when the step has none)."""
    ref = step.get("artifact") or {}
    get = getattr(getattr(client, "api", None), "get_artifact", None)
    if not ref.get("id") or get is None:
        return None
    record = dict(get(ref["id"]))
    for key in ("id", "workflow_run_id", "step_id", "operation", "created_at"):
        record.pop(key, None)  # already shown with the step
    return record
