"""``stepwell runs list | get``, and what the read commands share.

Read commands go through the read client (``store.client.Client``), so what they print
is what the Python API and the HTTP server return. ``--json`` prints the client's models
(the Retab shapes, times in ISO 8601 UTC), lists as ``{"data", "list_metadata"}``.

Runs that should have a live owner carry it (``owner``: pid, last heartbeat, alive): a
run whose process died shows ``owner died`` and its duration stops at its last
heartbeat; a run waiting for a review shows since when (``waiting_since``) and its
duration stops there. ``steps list | get`` are in :mod:`engine.cli_steps`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.cli_support import (
    DB_HELP,
    JSON_HELP,
    check_choices,
    db_flag,
    existing_db,
    handle_errors,
    iso_time,
    print_json,
    resolve_db,
    stdout,
    unreadable_dump,
)

runs_app = typer.Typer(help="List, inspect, follow and act on workflow runs.",
                       no_args_is_help=True)
steps_app = typer.Typer(help="List and inspect the persisted steps of a run, and their logs.",
                        no_args_is_help=True)

DbOption = Annotated[str | None, typer.Option("--db", help=DB_HELP, show_default=False)]
JsonOption = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
RUN_STATUS_CHOICES = ("pending", "queued", "running", "awaiting_review", "completed", "error",
                      "cancelled")
RUN_STATUSES = ", ".join(RUN_STATUS_CHOICES)
STEP_STATUSES = ("pending, queued, running, completed, skipped, error, awaiting_review, "
                 "cancelled")
#: Run statuses in which a live process should own the run.
OWNED_STATUSES = frozenset({"pending", "queued", "running"})
#: Runs searched to turn a workflow name into its ids (``runs list -w NAME``).
NAME_SEARCH = 1000


@contextmanager
def read_client(db: str | Path | None) -> Iterator[Any]:
    """A read client on an existing database, closed afterwards."""
    from store.client import Client

    client = Client(existing_db(db))
    try:
        yield client
    finally:
        client.close()


def page_items(page: Any) -> list[Any]:
    """The items of a list result (a page with ``.data``, or a plain list); an item that
    cannot be turned into JSON (nested too deeply) becomes a placeholder dict without its
    payloads and with a ``stepwell_unreadable`` note (:func:`readable_item`), so one unreadable
    row never fails the whole list."""
    return [readable_item(item) for item in (page.data if hasattr(page, "data") else page)]


def readable_item(item: Any) -> Any:
    """``item`` when its JSON form can be built, else that form without its payloads and
    with a ``stepwell_unreadable`` note saying why."""
    if not hasattr(item, "model_dump"):
        return item
    try:
        item.model_dump(mode="json")
        return item
    except (ValueError, TypeError, RecursionError) as exc:  # pydantic's depth guard
        return unreadable_dump(item, exc)


def page_after(page: Any) -> str | None:
    """The cursor of the next page, or None on the last page."""
    metadata = getattr(page, "list_metadata", None)
    return getattr(metadata, "after", None) if metadata is not None else None


@runs_app.command("list")
@handle_errors
def runs_list(
    status: Annotated[list[str] | None, typer.Option(
        "--status", "-s", help=f"Only runs in this status (repeatable): {RUN_STATUSES}.",
        show_default=False)] = None,
    workflow: Annotated[str | None, typer.Option(
        "--workflow", "-w", help="Only runs of this workflow: its id or its name.",
        show_default=False)] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000,
                                       help="At most N runs.")] = 20,
    after: Annotated[str | None, typer.Option(
        "--after", help="Cursor printed at the end of the previous page.",
        show_default=False)] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List runs, newest first.

    Unfinished runs carry their owner process: "owner died" marks one whose process died
    (resume it with "stepwell runs resume RUN_ID"); a run waiting for a review shows since
    when.
    """
    from engine.cli_detail import runs_table
    from engine.cli_support import to_jsonable
    from engine.contracts.reads import RunFilters

    check_choices("--status", status, RUN_STATUS_CHOICES)
    with read_client(db) as client:
        filters = RunFilters(statuses=status or None,
                             workflow_id=workflow_filter(client, workflow))
        page = client.api.page_runs(filters, limit=limit, after=after, before=None)
        data = to_jsonable(page)
        annotate_runs(client, data["data"])
    if as_json:
        print_json(data)
        return
    runs, console = data["data"], stdout()
    if not runs:
        console.print("No runs match." if status or workflow or after else
                      "No runs yet. Start one with `stepwell run WORKFLOW`.")
        return
    console.print(runs_table(runs))
    flag = db_flag(resolve_db(db))
    cursor = page_after(page)
    if cursor:
        again = "".join([f" --status {s}" for s in status or ()]
                        + [f" --workflow {_quoted(workflow)}" if workflow else "",
                           f" --limit {limit}" if limit != 20 else ""])
        console.print(f"[dim]More runs: stepwell runs list{again} --after {cursor}{flag}[/]",
                      soft_wrap=True)
    dead = [run["id"] for run in runs if (run.get("owner") or {}).get("alive") is False]
    if dead:
        console.print(f"[yellow]{len(dead)} unfinished run(s) lost their process; continue "
                      f"with `stepwell runs resume {dead[0]}{flag}`.[/]", soft_wrap=True)


def _quoted(text: str | None) -> str:
    text = text or ""
    return text if text.replace("_", "").replace("-", "").isalnum() else repr(text)


def workflow_filter(client: Any, value: str | None) -> str | None:
    """The workflow id ``runs list -w`` filters on: ``value`` itself when runs have that
    workflow id, else the id of the workflow named ``value`` (the newest runs tell).

    Raises:
        typer.Exit: (code 2) the name matches no run's workflow.
    """
    from engine.contracts.reads import RunFilters

    if value is None:
        return None
    probe = client.api.page_runs(RunFilters(workflow_id=value), limit=1, after=None,
                                 before=None)
    if probe.data:
        return value
    found = client.api.page_runs(RunFilters(search=value), limit=NAME_SEARCH, after=None,
                                 before=None)
    ids = [r.workflow_id for r in found.data if r.workflow_name.lower() == value.lower()]
    if ids:
        return ids[0]
    from engine.cli_support import fail

    names = sorted({r.workflow_name for r in found.data})
    hint = f" Workflows with similar names: {', '.join(names[:5])}." if names else ""
    fail(f"--workflow {value!r}: no run has a workflow with this id or name.{hint} "
         "List runs with `stepwell runs list`.")


def annotate_runs(client: Any, runs: Sequence[dict[str, Any]]) -> None:
    """Add ``owner`` (pid, heartbeat, alive) and ``waiting_since`` to each run dict.

    ``owner.alive`` is given for runs that should have a live owner (pending, queued,
    running) and None for the others. Such a run with no owner pid was queued (``--detach``)
    or handed back by a worker: it waits for a worker and is not an orphan (``alive`` None,
    ``owner.queued`` true, as ``stepwell_owner`` over HTTP); ``waiting_since`` for a run
    waiting for a review
    (when its newest pending review opened). Tables stop a run's duration at either
    (:func:`engine.cli_render.run_duration_ms`).
    """
    from engine.contracts.reads import ReviewFilters
    from engine.durable import process_owns

    for run in runs:
        record = client.api.run_record(run["id"])
        status, pid, beat = record.status, record.owner_pid, record.heartbeat_at
        owned = status in OWNED_STATUSES
        queued = owned and pid is None
        alive = (process_owns(pid, beat, host=record.owner_host)
                 if owned and not queued else None)
        run["owner"] = {"pid": pid, "heartbeat_at": iso_time(beat), "alive": alive,
                        "queued": queued}
        if status == "awaiting_review":
            page = client.api.reads.page_review_entries(
                ReviewFilters(run_id=run["id"], decision_status="pending"), limit=1,
                descending=True)
            run["waiting_since"] = iso_time(page.items[0].created_at if page.items else None)


@runs_app.command("get")
@handle_errors
def runs_get(
    run_id: Annotated[str, typer.Argument(help="The run id (run_...).", show_default=False)],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one run: status, timing, owner, step counts, inputs, outputs."""
    from engine.cli_detail import run_detail
    from engine.cli_live import list_all_steps
    from engine.cli_support import to_jsonable

    with read_client(db) as client:
        run = to_jsonable(client.workflows.runs.get(run_id))
        annotate_runs(client, [run])
        if as_json:
            print_json(run)
            return
        steps = list_all_steps(client, run_id)
    stdout().print(run_detail(run, steps))
