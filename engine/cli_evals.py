"""``stepwell evals run WORKFLOW``: replay a registered workflow's saved evals.

Evals are saved over HTTP (``client.workflows.evals.create``) for workflows registered
with ``stepwell serve``. This command runs them from the command line exactly as
``client.workflows.evals.runs.create`` does (:mod:`engine.evals`): each eval's block is
replayed on the workflow's draft with its saved inputs and its assertion is checked.
The run and its results are stored, so the HTTP API lists them too (trigger
``manual``). Exit status: 0 when every eval passed, 1 when one failed, was blocked or
could not run.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from engine.cli_read import DbOption, JsonOption
from engine.cli_support import (
    EXIT_RUN_FAILED,
    handle_errors,
    print_json,
    resolve_db,
    stdout,
)

evals_app = typer.Typer(help="Run the block evals saved for a registered workflow.",
                        no_args_is_help=True)


def _row(result: Any) -> dict[str, Any]:
    outcome = result.assertion_result or {}
    return {"eval_id": result.eval_id, "block_id": result.block_id, "status": result.status,
            "verdict": result.verdict, "actual": outcome.get("actual_value"),
            "expected": outcome.get("expected_value"),
            "why": (outcome.get("failure") or {}).get("message") or result.error}


@evals_app.command("run")
@handle_errors
def evals_run(
    workflow_id: Annotated[str, typer.Argument(help="The registered workflow (wf_...).",
                                               show_default=False)],
    block: Annotated[str | None, typer.Option(
        "--block", help="Only the evals of this block.", show_default=False)] = None,
    eval_id: Annotated[str | None, typer.Option(
        "--eval", help="Only this eval.", show_default=False)] = None,
    org: Annotated[str, typer.Option(
        "--org", help="The organization the workflow belongs to.")] = "org_local",
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Replay the workflow's evals on its draft and report each verdict."""
    import time

    import anyio

    from engine.core import Engine
    from engine.evals import execute_eval_run, plan_eval_run, run_results

    scope: dict[str, Any] | None = None
    if eval_id is not None:
        scope = {"type": "single", "eval_id": eval_id}
    elif block is not None:
        scope = {"type": "block", "block_id": block}
    with Engine(resolve_db(db)) as engine:
        planned = plan_eval_run(engine.store, org, workflow_id=workflow_id, scope=scope,
                                trigger="manual", now=time.time())
        run = anyio.run(execute_eval_run, engine, planned.id, org)
        rows = [_row(r) for r in run_results(engine.store, run)]
    failed = [r for r in rows if r["verdict"] != "passed"]
    if as_json:
        print_json({"run_id": run.id, "status": run.status, "results": rows})
    else:
        _table(run.id, rows)
    if failed:
        raise typer.Exit(EXIT_RUN_FAILED)


def _table(run_id: str, rows: list[dict[str, Any]]) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"eval run {run_id}", title_justify="left")
    for column in ("eval", "block", "verdict", "actual", "expected", "why"):
        table.add_column(column, overflow="fold")
    for row in rows:
        verdict = row["verdict"] or row["status"]
        style = "green" if verdict == "passed" else "red"
        table.add_row(escape(row["eval_id"]), escape(row["block_id"]),
                      f"[{style}]{verdict}[/{style}]", escape(repr(row["actual"])),
                      escape(repr(row["expected"])), escape(str(row["why"] or "")))
    stdout().print(table)
    passed = sum(1 for r in rows if r["verdict"] == "passed")
    stdout().print(f"{passed}/{len(rows)} evals passed")
