"""The ``stepwell`` command line.

::

    stepwell run WORKFLOW [--input BLOCK=VALUE]...   run it, live step table, summary
    stepwell validate WORKFLOW                       every problem, with its fix
    stepwell graph WORKFLOW                          Mermaid flowchart
    stepwell runs list | get RUN_ID                  runs in the database
    stepwell runs cancel | resume | rerun RUN_ID     act on a stored run
    stepwell reviews list | approve | reject         human reviews
    stepwell steps list RUN_ID | get STEP_ID         persisted steps
    stepwell serve [--host H] [--port P]             the HTTP API (docs/http.md)

Every command takes ``--db PATH`` (default ``./stepwell.db``; ``$STEPWELL_DB`` overrides
the default) and most take ``--json``. Exit codes: 0 completed, 1 the run ended in error
or was cancelled, 2 bad usage / invalid workflow / bad input / storage error, 3 the run
waits for a human review.

The commands live in small modules: :mod:`engine.cli_run` (``run`` and its summary),
:mod:`engine.cli_live` (the live step table), :mod:`engine.cli_read` (``runs``,
``steps``), :mod:`engine.cli_render` and :mod:`engine.cli_detail` (tables and detail
views), :mod:`engine.cli_inputs` (``--input`` parsing) and :mod:`engine.cli_support`
(errors, exit codes, consoles). The engine, the store and rich are imported inside the
commands, so ``--help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.cli_durable import reviews_app
from engine.cli_read import runs_app, steps_app
from engine.cli_serve import serve
from engine.cli_support import (
    DB_HELP,
    EXIT_USAGE,
    JSON_HELP,
    Durability,
    fail,
    handle_errors,
    print_json,
    resolve_db,
    stderr,
    stdout,
)

app = typer.Typer(
    name="stepwell",
    help="Run Retab-style document workflows locally; every step is saved to SQLite.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(runs_app, name="runs")
app.add_typer(steps_app, name="steps")
app.add_typer(reviews_app, name="reviews")
app.command(name="serve")(serve)

WorkflowArg = Annotated[Path, typer.Argument(
    help="Workflow file (Retab YAML, or JSON).", show_default=False)]
DbOption = Annotated[Path | None, typer.Option("--db", help=DB_HELP, show_default=False)]
# validate and graph never open the database; they accept --db so scripts can pass it
# to every command alike.
UnusedDbOption = Annotated[Path | None, typer.Option("--db", hidden=True)]
JsonOption = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
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
    durability: Annotated[Durability, typer.Option(
        "--durability", case_sensitive=False,
        help="process: survives process crashes (fast). full: also survives power loss.",
    )] = Durability.process,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Print only the run id (no live view, no summary).")] = False,
) -> None:
    """Run a workflow; show its steps live; exit 0 completed, 1 failed, 3 awaiting review."""
    from engine.cli_run import RunRequest, execute, output_mode

    request = RunRequest(
        workflow=_workflow_file(workflow), inputs=list(inputs or []), db=resolve_db(db),
        mode=output_mode(as_json=as_json, quiet=quiet), durability=durability,
        concurrency=concurrency,
    )
    raise typer.Exit(execute(request))


@app.command()
@handle_errors
def validate(workflow: WorkflowArg, as_json: JsonOption = False,
             db: UnusedDbOption = None) -> None:
    """Check a workflow and list every problem with its YAML path and fix (exit 2 if any)."""
    from engine.cli_render import diagnostics_table
    from engine.contracts.errors import WorkflowLoadError
    from engine.core import Engine

    engine = Engine(resolve_db(db))
    try:
        wf = engine.load(_workflow_file(workflow))
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
    workflow: WorkflowArg,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write the Mermaid text to FILE instead of stdout.",
        show_default=False)] = None,
    db: UnusedDbOption = None,
) -> None:
    """Print the workflow as a Mermaid flowchart."""
    from engine.definition import load_workflow
    from engine.graph import to_mermaid

    text = to_mermaid(load_workflow(_workflow_file(workflow)))
    text = text if text.endswith("\n") else text + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"Cannot write {output}: {exc.strerror or exc}. Pick a writable --output path.")
    stderr().print(f"Wrote {output}")


def _workflow_file(path: Path) -> Path:
    """``path`` if it is a readable file, else exit 2 saying what to pass."""
    if not path.exists():
        fail(f"Workflow file not found: {path}. Pass the path of a workflow YAML or JSON file.")
    if not path.is_file():
        fail(f"{path} is not a file. Pass the path of a workflow YAML or JSON file.")
    return path


def main() -> None:
    """Console-script entry point (``stepwell = engine.cli:main``)."""
    app()


if __name__ == "__main__":
    main()
