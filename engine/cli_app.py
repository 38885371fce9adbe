"""The ``stepwell`` command tree (typer): every command and group, as :mod:`engine.cli`
hands it to click.

The commands themselves live in small modules (see :mod:`engine.cli`); this module
assembles them into one typer app. The engine, the store and rich are imported inside
the commands, so ``--help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from engine import cli_logs, cli_reviews, cli_steps, cli_watch
from engine.cli_artifacts import artifacts_app
from engine.cli_db import db_app
from engine.cli_durable import reviews_app
from engine.cli_evals import evals_app
from engine.cli_export import export
from engine.cli_read import runs_app, steps_app
from engine.cli_serve import serve
from engine.cli_support import (
    ALL_HELP,
    BLOCKS_HELP,
    DB_HELP,
    EXIT_USAGE,
    JSON_HELP,
    RUN_DURABILITY_HELP,
    WAIT_HELP,
    RunDurability,
    emit_text,
    fail,
    handle_errors,
    print_json,
    resolve_db,
    stdout,
    workflow_file,
)
from engine.cli_worker import EXECUTOR_HELP, worker

app = typer.Typer(
    name="stepwell",
    help="Run Retab-style document workflows locally; every step is saved to SQLite.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(runs_app, name="runs")
app.add_typer(steps_app, name="steps")
app.add_typer(artifacts_app, name="artifacts")
app.add_typer(reviews_app, name="reviews")
app.add_typer(evals_app, name="evals")
app.command(name="serve")(serve)
app.command(name="worker")(worker)
app.add_typer(db_app, name="db")
app.command(name="export")(export)
#: Modules whose commands join the groups above when imported.
COMMAND_MODULES = (cli_logs, cli_reviews, cli_steps, cli_watch)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"stepwell {version('stepwell')}")
        except PackageNotFoundError:
            typer.echo("stepwell (not installed)")
        raise typer.Exit()


@app.callback()
def root(
    show_version: Annotated[bool, typer.Option(
        "--version", help="Print the version and exit.", callback=_version,
        is_eager=True)] = False,
) -> None:
    """Run Retab-style document workflows locally; every step is saved to SQLite."""

WorkflowArg = Annotated[Path, typer.Argument(
    help="Workflow file (Retab YAML, or JSON).", show_default=False)]
DbOption = Annotated[str | None, typer.Option("--db", help=DB_HELP, show_default=False)]
# validate and graph never open the database; they accept --db so scripts can pass it
# to every command alike.
UnusedDbOption = Annotated[str | None, typer.Option("--db", hidden=True)]
JsonOption = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
BlocksOption = Annotated[list[str] | None, typer.Option(
    "--blocks", help=BLOCKS_HELP, show_default=False)]
INPUT_HELP = (
    "Run input, repeatable: BLOCK=VALUE. VALUE is JSON (or @file.json) for a start_json "
    "block and a file path for a start_document block. With one start block, BLOCK= may "
    "be left out."
)


@app.command()
@handle_errors
def run(
    workflow: WorkflowArg,
    inputs: Annotated[list[str] | None, typer.Option(
        "--input", "-i", help=INPUT_HELP, metavar="BLOCK=VALUE", show_default=False)] = None,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the finished run as JSON (no live view).")] = False,
    concurrency: Annotated[int | None, typer.Option(
        "--concurrency", "-c", min=1, help="Blocks running at once (default: 8).",
        show_default=False)] = None,
    durability: Annotated[RunDurability, typer.Option(
        "--durability", case_sensitive=False,
        help=RUN_DURABILITY_HELP,
    )] = RunDurability.process,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Print only the run id (no live view, no summary).")] = False,
    wait: Annotated[bool, typer.Option("--wait", help=WAIT_HELP)] = False,
    show_all: Annotated[bool, typer.Option("--all", help=ALL_HELP)] = False,
    blocks: BlocksOption = None,
    detach: Annotated[bool, typer.Option(
        "--detach", help="Queue the run for `stepwell worker` and print its id; execute "
        "nothing here.")] = False,
    executor: Annotated[str, typer.Option("--executor", help=EXECUTOR_HELP)] = "local",
) -> None:
    """Run a workflow; show its steps live; exit 0 completed, 1 failed, 3 awaiting review."""
    from engine.cli_run import run_command

    raise typer.Exit(run_command(
        workflow, inputs=list(inputs or []), db=db, as_json=as_json, concurrency=concurrency,
        durability=durability, quiet=quiet, wait=wait, show_all=show_all,
        blocks=list(blocks or []), detach=detach, executor=executor))


@app.command()
@handle_errors
def validate(workflow: WorkflowArg, as_json: JsonOption = False,
             db: UnusedDbOption = None, blocks: BlocksOption = None) -> None:
    """Check a workflow and list every problem with its YAML path and fix (exit 2 if any)."""
    from engine.cli_render import diagnostics_table
    from engine.cli_run import cli_engine
    from engine.contracts.errors import WorkflowLoadError

    engine = cli_engine(resolve_db(db), list(blocks or []))
    try:
        wf = engine.load(workflow_file(workflow))
    except WorkflowLoadError as exc:
        if not as_json:
            raise
        print_json({"is_valid": False, "diagnostics": [{
            "code": "WORKFLOW_LOAD_ERROR", "message": exc.problem, "yaml_path": "",
            "fix": exc.fix, "severity": "error", "details": {}}]})
        raise typer.Exit(EXIT_USAGE) from None
    diagnostics = engine.validate(wf)
    is_valid = not any(d.severity == "error" for d in diagnostics)
    if as_json:
        print_json({"is_valid": is_valid, "diagnostics": [d.to_dict() for d in diagnostics]})
    elif diagnostics:
        stdout().print(diagnostics_table(diagnostics))
    if not as_json and is_valid:
        stdout().print(f"valid: {len(wf.blocks)} blocks, {len(wf.edges)} edges")
    if not is_valid:
        if not as_json:
            errors = sum(d.severity == "error" for d in diagnostics)
            fail(f"{workflow} is invalid: {errors} problem{'' if errors == 1 else 's'} "
                 "(listed above). Apply the fixes and validate again.")
        raise typer.Exit(EXIT_USAGE)


@app.command()
@handle_errors
def graph(
    workflow: Annotated[Path | None, typer.Argument(
        help="Workflow file (Retab YAML, or JSON); optional with --run.",
        show_default=False)] = None,
    run_id: Annotated[str | None, typer.Option(
        "--run", "-r", help="Colour the blocks by this run's step statuses (without a "
        "workflow file, the run's own workflow is drawn).", show_default=False)] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write the Mermaid text to FILE instead of stdout.",
        show_default=False)] = None,
    db: DbOption = None,
    blocks: BlocksOption = None,
) -> None:
    """Print the workflow as a Mermaid flowchart: every edge, full handle ids."""
    from engine.cli_graph import graph_text

    text = graph_text(None if workflow is None else workflow_file(workflow), run_id=run_id,
                      db=db, blocks=list(blocks or []))
    emit_text(text, output)


def cli_command() -> Any:
    """The command tree as click runs it, help text cleaned (:mod:`engine.cli_help`)."""
    from engine.cli_help import polish

    return polish(typer.main.get_command(app))
