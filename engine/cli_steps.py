"""``stepwell steps list RUN_ID`` and ``stepwell steps get STEP_ID``.

``steps get`` shows the whole step record: lifecycle, timing, every handle input and
output, model usage, error details with the stack trace, and the artifact (the
operation record: an extraction's likelihoods, a classifier's scores, a condition's
evaluations, a function's stdout) in full. ``--brief`` cuts long values; ``--json``
prints the read API's step with the artifact inlined under ``artifact.record`` and the
step's log lines under ``logs``.

Filter values are checked: an unknown status, block type or block id exits 2 naming the
choices, and the "more steps" hint repeats every filter given. A page holds ``--limit``
rows shown: loop sentinels it hides do not count, so more are read to fill it.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer

from engine.cli_read import (
    STEP_STATUSES,
    DbOption,
    JsonOption,
    page_after,
    page_items,
    read_client,
    steps_app,
)
from engine.cli_support import check_choices, handle_errors, print_json, stdout

#: Lines of one JSON value ``steps get --brief`` shows.
BRIEF_LINES = 20


def check_block_types(client: Any, run_id: str, values: list[str] | None) -> None:
    """Exit 2 for a ``--type`` that is no known block type and no step of the run has.

    Known: the built-in types, their aliases and the installed plugins' types. A type an
    application registered itself is known through the run's steps.
    """
    from engine.plugins import block_registry

    known = block_registry().names(authorable_only=False)
    unknown = [t for t in values or () if t not in known
               and not client.workflows.steps.list(run_id, block_type=[t], limit=1).data]
    check_choices("--type", unknown, known)


def run_block_ids(db: Any, run_id: str) -> list[str]:
    """The block ids of the run's workflow (its stored definition), every level."""
    from engine.cli_support import existing_db
    from engine.core import Engine
    from engine.definition import Workflow

    with Engine(existing_db(db)) as engine:
        definition = engine.store.load_run(run_id).definition
    return [block.id for block in Workflow.from_dict(definition).blocks]


def is_block_of(block_id: str, blocks: list[str]) -> bool:
    """True when ``block_id`` is one of ``blocks`` or a sentinel of one of them."""
    sentinel = re.fullmatch(r"(.+)_sentinel_[a-z_]+", block_id)
    return block_id in blocks or (sentinel is not None and sentinel.group(1) in blocks)


def check_block_id(client: Any, db: Any, run_id: str, block: str | None) -> None:
    """Exit 2 for a ``--block`` that no step of the run has and its workflow lacks."""
    if not block or client.workflows.steps.list(run_id, block_id=block, limit=1).data:
        return
    blocks = run_block_ids(db, run_id)
    if not is_block_of(block, blocks):
        check_choices("--block", [block], blocks)


def _fill_page(client: Any, run_id: str, limit: int, after: str | None,
               **filters: Any) -> tuple[list[dict[str, Any]], int, str | None]:
    """Up to ``limit`` rows a table shows (loop sentinels left out), reading on past
    hidden rows: ``(rows, hidden sentinels passed, cursor of the next page or None)``."""
    from engine.cli_progress import is_sentinel
    from engine.cli_support import to_jsonable

    shown: list[dict[str, Any]] = []
    hidden = 0
    while True:
        page = client.workflows.steps.list(run_id, limit=limit, after=after, **filters)
        steps = [to_jsonable(step) for step in page_items(page)]
        for number, step in enumerate(steps):
            if is_sentinel(step):
                hidden += 1
                continue
            shown.append(step)
            if len(shown) == limit:
                more = number + 1 < len(steps) or page_after(page) is not None
                return shown, hidden, step["step_id"] if more else None
        after = page_after(page)
        if not after or not steps:
            return shown, hidden, None


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
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000,
                                       help="At most N steps.")] = 100,
    after: Annotated[str | None, typer.Option(
        "--after", help="Cursor printed at the end of the previous page.",
        show_default=False)] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Show loop sentinel steps too.")]
    = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the steps of a run in creation order (loop sentinels hidden unless --all)."""
    from engine.cli_progress import shown_steps
    from engine.cli_render import steps_table
    from engine.cli_support import db_flag, resolve_db, to_jsonable

    check_choices("--status", status, STEP_STATUSES.split(", "))
    filters = {"block_id": block, "block_type": block_type or None, "status": status or None}
    with read_client(db) as client:
        client.workflows.runs.get(run_id)  # a clear NotFoundError for an unknown run
        check_block_types(client, run_id, block_type)
        check_block_id(client, db, run_id, block)
        if as_json:
            print_json(client.workflows.steps.list(run_id, limit=limit, after=after,
                                                   **filters))
            return
        if show_all or block or block_type:
            page = client.workflows.steps.list(run_id, limit=limit, after=after, **filters)
            steps = [to_jsonable(step) for step in page_items(page)]
            shown, hidden, cursor = shown_steps(steps, show_all=True), 0, page_after(page)
        else:
            shown, hidden, cursor = _fill_page(client, run_id, limit, after, **filters)
    console = stdout()
    if not shown and not hidden:
        console.print("No steps match." if block or status or block_type or after
                      else f"Run {run_id} has no steps yet.")
        return
    if shown:
        console.print(steps_table(shown))
    if hidden:
        console.print(f"[dim]{hidden} loop sentinel step(s) not shown (--all shows them).[/]")
    if cursor:
        again = "".join(
            [f" --block {block}" if block else ""]
            + [f" --status {s}" for s in status or ()]
            + [f" --type {t}" for t in block_type or ()]
            + [f" --limit {limit}" if limit != 100 else "", " --all" if show_all else ""])
        console.print(f"[dim]More steps: stepwell steps list {run_id}{again} --after {cursor}"
                      f"{db_flag(resolve_db(db))}[/]", soft_wrap=True)


@steps_app.command("get")
@handle_errors
def steps_get(
    step_id: Annotated[str, typer.Argument(help="The step id (see `stepwell steps list`).",
                                           show_default=False)],
    run: Annotated[str | None, typer.Option(
        "--run", "-r", help="The run the step belongs to (needed when several runs "
        "have this step id).", show_default=False)] = None,
    brief: Annotated[bool, typer.Option(
        "--brief", help=f"Cut long values to {BRIEF_LINES} lines.")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one step in full: lifecycle, timing, inputs, outputs, artifact, error."""
    from engine.cli_artifacts import artifact_of
    from engine.cli_detail import step_detail
    from engine.cli_support import db_flag, resolve_db, to_jsonable

    with read_client(db) as client:
        step = to_jsonable(client.workflows.steps.get(step_id, run_id=run))
        record = artifact_of(client, step)
        if as_json:
            if record is not None:
                step["artifact"] = {**step["artifact"], "record": record}
            step["logs"] = all_log_lines(client, step)
            print_json(step)
            return
        log_lines = count_log_lines(client, step)
    if record is not None:
        for key in ("id", "workflow_run_id", "step_id", "operation", "created_at"):
            record.pop(key, None)  # already shown with the step
    stdout().print(step_detail(step, record, max_lines=BRIEF_LINES if brief else None))
    if log_lines:
        stdout().print(f"\n[dim]{log_lines} log line(s): stepwell steps logs {step_id} "
                       f"--run {step['run_id']}{db_flag(resolve_db(db))}[/]", soft_wrap=True)


def all_log_lines(client: Any, step: dict[str, Any]) -> list[dict[str, Any]]:
    """Every log line of the step, every attempt, as dicts (follows the cursor)."""
    from engine.cli_support import to_jsonable

    lines: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        page = client.workflows.steps.logs(step["step_id"], run_id=step["run_id"],
                                           after=after, limit=1000)
        lines += [to_jsonable(line) for line in page.data]
        after = page.list_metadata.after
        if not after:
            return lines


def count_log_lines(client: Any, step: dict[str, Any]) -> int:
    """How many log lines the step's attempts wrote (0 when none)."""
    page = client.workflows.steps.logs(step["step_id"], run_id=step["run_id"], limit=1000)
    return len(page.data) + (1 if page.list_metadata.after else 0)
