"""``stepwell graph``: the Mermaid flowchart of a workflow, optionally coloured by a run.

The workflow is compiled when it is valid, so the chart shows what runs: every edge
inside containers (the generated boundary edges too, dotted) with full handle ids
(``output-json-0 → input-json-expense``, not the short names an author may write). An
invalid workflow is drawn as written, with a note on stderr.

``--run RUN_ID`` colours each block by its steps in that run (a block in a loop has one
step per iteration: the most telling status wins, error first, then running, waiting,
queued, pending, cancelled, completed, skipped) and adds ``3/5 completed`` to blocks
with several steps. Without a workflow file the run's stored definition is drawn.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.cli_support import existing_db, stderr

#: Which status a block shows when its steps differ, most telling first.
PRIORITY = ("error", "running", "awaiting_review", "queued", "pending", "cancelled",
            "completed", "skipped")


def block_statuses(steps: Iterable[Mapping[str, Any]]
                   ) -> tuple[dict[str, str], dict[str, str]]:
    """Per block: the status to colour it by, and a note for blocks with several steps.

    Args:
        steps: the run's steps as dicts (``block_id``, ``lifecycle.status``).

    Returns:
        ``(statuses, notes)``, both keyed by block id.
    """
    seen: dict[str, list[str]] = {}
    for step in steps:
        status = str((step.get("lifecycle") or {}).get("status") or step.get("status") or "")
        seen.setdefault(str(step.get("block_id")), []).append(status)
    statuses: dict[str, str] = {}
    notes: dict[str, str] = {}
    for block_id, found in seen.items():
        statuses[block_id] = next((s for s in PRIORITY if s in found), found[0])
        if len(found) > 1:
            note = f"{found.count('completed')}/{len(found)} completed"
            errors = found.count("error")
            notes[block_id] = note + (f", {errors} error" if errors else "")
    return statuses, notes


def graph_text(workflow: Path | None, *, run_id: str | None, db: str | Path | None,
               blocks: Sequence[str] = ()) -> str:
    """The Mermaid text ``stepwell graph`` prints.

    Args:
        workflow: the workflow file; None draws the run's stored definition.
        run_id: colour the blocks by this run's steps.
        db: the database holding ``run_id``.
        blocks: ``--blocks MODULE:ATTR`` references (custom block types).

    Raises:
        UsageError: neither a workflow nor a run, or a bad ``--blocks``.
        NotFoundError: no such run.
        WorkflowLoadError: the file cannot be read as a workflow.
    """
    from engine.contracts.errors import UsageError, WorkflowValidationError
    from engine.definition import Workflow, load_workflow
    from engine.graph import compile_workflow
    from engine.mermaid import to_mermaid
    from engine.plugins import block_registry

    if workflow is None and run_id is None:
        raise UsageError("Pass a workflow file, or --run RUN_ID to draw a run's workflow.")
    registry = block_registry(blocks)
    statuses: dict[str, str] = {}
    notes: dict[str, str] = {}
    definition = None
    if run_id is not None:
        definition, steps = _run_steps(existing_db(db), run_id)
        statuses, notes = block_statuses(steps)
    wf = load_workflow(workflow) if workflow is not None else Workflow.from_dict(definition or {})
    target: Any = wf
    try:
        target = compile_workflow(wf, registry)
    except WorkflowValidationError as exc:
        stderr().print(f"[yellow]{wf.source} is not valid ({len(exc.diagnostics)} "
                       "problem(s)); drawn as written. See `stepwell validate`.[/]",
                       soft_wrap=True)
    text = to_mermaid(target, registry, statuses=statuses, notes=notes)
    return text if text.endswith("\n") else text + "\n"


def _run_steps(db: str, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The stored definition and every step of ``run_id``."""
    from engine.cli_live import list_all_steps
    from engine.core import Engine
    from store.client import Client

    with Engine(db) as engine:
        definition = engine.store.load_run(run_id).definition
    with Client(db) as client:
        return definition, list_all_steps(client, run_id)
