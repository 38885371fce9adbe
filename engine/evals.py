"""Block evals: saved inputs for one block, replayed on the workflow's draft, and checked.

Theory of operation. An eval (:class:`~engine.contracts.evals.EvalDefinition`) names a
block of a registered workflow, the handle inputs to give it and one assertion
(:mod:`engine.eval_checks`). Inputs are given by hand, or captured from a step of an
earlier run of the same workflow when the eval is saved (:func:`capture_inputs`), so the
eval keeps working after that run is deleted.

An eval run is planned, then executed:

1. :func:`plan_eval_run` picks the evals of the scope (one eval, one block's, or the whole
   workflow's), and stores the run (``pending``) with one ``pending`` result per eval, all
   against the draft version of that moment.
2. :func:`execute_eval_run` replays each eval's block through
   :func:`engine.block_runs.replay_block` (the engine's block test path) on that version
   and stores each result as it completes: verdict ``passed`` / ``failed``, or
   ``blocked`` when the block failed or the assertion could not be evaluated. A cancel
   request is honoured between evals: the rest become ``cancelled``.

The HTTP API (``client.workflows.evals``) and ``stepwell evals run WORKFLOW`` both use
these two calls, so an eval gives the same verdict from either.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from engine.contracts.errors import InputError, NotFoundError, StepwellError
from engine.contracts.evals import EvalDefinition, EvalResult, EvalRun
from engine.definition import Workflow
from engine.eval_checks import blocked, check_assertion, parse_assertion

if TYPE_CHECKING:
    from engine.contracts.store import Store
    from engine.core import Engine

#: Scope kinds of an eval run.
SCOPES = ("workflow", "block", "single")


def new_id(prefix: str) -> str:
    """A fresh random id: ``prefix`` and 20 hex characters."""
    return f"{prefix}_{os.urandom(10).hex()}"


def capture_inputs(store: Store, organization_id: str, *, workflow_id: str, block_id: str,
                   run_id: str, step_id: str | None) -> dict[str, Any]:
    """The handle inputs a step of an earlier run received (wire form).

    Args:
        store: the store holding the run.
        organization_id: the caller's organization.
        workflow_id / block_id: what the eval targets; the run and step must match them.
        run_id / step_id: the step to capture (``step_id`` defaults to ``block_id``).

    Raises:
        NotFoundError: no such run or step in this organization.
        InputError: the run is of another workflow, or the step of another block.
    """
    run = store.read_run(run_id, organization_id=organization_id)
    if run.workflow_id != workflow_id:
        raise InputError(f"source.run_id: run {run_id} is a run of {run.workflow_id}, not of "
                         f"{workflow_id}. Capture inputs from a run of the same workflow.")
    step = store.read_step(step_id or block_id, run_id=run_id,
                           organization_id=organization_id)
    if step.block_id != block_id:
        raise InputError(f"source.step_id: step {step.step_id} is a step of block "
                         f"{step.block_id!r}, not of {block_id!r}.")
    return dict(step.inputs)


def check_target(workflow: Workflow, block_id: str, registry: Any) -> str:
    """The type of the block an eval targets.

    Raises:
        InputError: the workflow has no such block, or it does not execute (a container,
            a note, a start block).
    """
    block = workflow.block(block_id)
    if block is None:
        known = ", ".join(b.id for b in workflow.blocks) or "none"
        raise InputError(f"target.block_id: the workflow's draft has no block {block_id!r} "
                         f"(blocks: {known}).")
    impl = registry.get(block.type) if block.type in registry else None
    if impl is None or impl.container or not impl.executes or impl.role.is_start:
        raise InputError(f"target.block_id: block {block_id!r} ({block.type}) does not "
                         "execute on inputs; evals target blocks such as function, extract, "
                         "split, classifier, conditional.")
    return block.type


def check_assertion_handle(workflow: Workflow, block_id: str, assertion: Mapping[str, Any],
                           registry: Any) -> None:
    """Refuse an assertion on an output handle the target block does not have.

    Such an eval could only ever fail, with nothing to compare. A block the draft lacks,
    or whose config does not parse, is left to :func:`check_target` and the eval run.

    Raises:
        InputError: the block has no output handle ``assertion.target.output_handle_id``;
            the message lists the handles it has.
    """
    block = workflow.block(block_id)
    if block is None or block.type not in registry:
        return
    impl = registry.get(block.type)
    try:
        handles = sorted(impl.output_handles(impl.parse_config(block.config)))
    except (ValueError, StepwellError):
        return  # an invalid config: the eval run reports it as blocked
    handle = (assertion.get("target") or {}).get("output_handle_id")
    if handle not in handles:
        raise InputError(f"assertion.target.output_handle_id: block {block_id!r} "
                         f"({block.type}) has no output handle {handle!r}; its output handles "
                         f"are {', '.join(handles) or 'none'}. Target one of them.")


def new_eval(*, workflow_id: str, organization_id: str, block_id: str, name: str | None,
             source: Mapping[str, Any], handle_inputs: Mapping[str, Any],
             assertion: Any, now: float) -> EvalDefinition:
    """An eval ready to save (the assertion parsed; raises InputError when it does not)."""
    return EvalDefinition(id=new_id("wfeval"), workflow_id=workflow_id,
                          organization_id=organization_id, name=name, block_id=block_id,
                          source=dict(source), handle_inputs=dict(handle_inputs),
                          assertion=parse_assertion(assertion), created_at=now,
                          updated_at=now)


def _all_evals(store: Store, organization_id: str, workflow_id: str,
               block_id: str | None) -> list[EvalDefinition]:
    out: list[EvalDefinition] = []
    after = None
    while True:
        page = store.page_evals(organization_id, workflow_id=workflow_id, block_id=block_id,
                                limit=1000, after=after, descending=False)
        out.extend(page.items)
        if not page.more_after:
            return out
        after = page.items[-1].id


def plan_eval_run(store: Store, organization_id: str, *, workflow_id: str,
                  scope: Mapping[str, Any] | None, trigger: str, now: float) -> EvalRun:
    """Store a new ``pending`` eval run and a ``pending`` result per eval in ``scope``.

    Args:
        store: where evals, runs and results live.
        organization_id: the caller's organization.
        workflow_id: the workflow whose evals run (on its draft).
        scope: None or ``{"type": "workflow"}``, ``{"type": "block", "block_id"}``,
            ``{"type": "single", "eval_id"}``.
        trigger: ``api`` or ``manual``.
        now: the creation time.

    Raises:
        NotFoundError: no such workflow, or (``single``) no such eval of it.
    """
    store.get_workflow(workflow_id, organization_id)
    draft = store.workflow_version(workflow_id, organization_id, "draft")
    kind = (scope or {}).get("type", "workflow")
    if kind == "single":
        chosen = store.get_eval(str((scope or {})["eval_id"]), organization_id)
        if chosen.workflow_id != workflow_id:
            raise NotFoundError("eval", chosen.id, f"It is not an eval of {workflow_id}.")
        evals = [chosen]
    else:
        block = (scope or {}).get("block_id") if kind == "block" else None
        evals = _all_evals(store, organization_id, workflow_id, block)
    run = EvalRun(id=new_id("wfevalrun"), workflow_id=workflow_id,
                  organization_id=organization_id, workflow_version_id=draft.id,
                  scope=dict(scope or {"type": "workflow"}), status="pending", trigger=trigger,
                  total=len(evals), created_at=now)
    store.save_eval_run(run)
    for index, item in enumerate(evals):
        store.save_eval_result(EvalResult(
            id=new_id("wfresult"), eval_run_id=run.id, eval_id=item.id,
            workflow_id=workflow_id, organization_id=organization_id, block_id=item.block_id,
            block_type="", status="pending", handle_inputs=dict(item.handle_inputs),
            created_at=now + index * 1e-6))
    return run


def run_results(store: Store, run: EvalRun) -> list[EvalResult]:
    """Every result of an eval run, in creation order."""
    out: list[EvalResult] = []
    after = None
    while True:
        page = store.page_eval_results(run.organization_id, eval_run_id=run.id, limit=1000,
                                       after=after, descending=False)
        out.extend(page.items)
        if not page.more_after:
            return out
        after = page.items[-1].id


async def execute_eval_run(engine: Engine, run_id: str, organization_id: str) -> EvalRun:
    """Replay every pending result of a planned run, then end the run.

    Returns:
        The run as it ended (``completed``, ``cancelled``, or ``error`` when its version
        could not be read).
    """
    store = engine.store
    run = store.get_eval_run(run_id, organization_id)
    if run.status in ("completed", "error", "cancelled"):
        return run
    run = replace(run, status="running", started_at=time.time())
    store.save_eval_run(run)
    try:
        version = store.workflow_version(run.workflow_id, organization_id,
                                         run.workflow_version_id)
    except NotFoundError as exc:
        return _end(store, run, "error", error=str(exc))
    workflow = Workflow.from_dict(version.definition, source=run.workflow_id)
    for result in run_results(store, run):
        if result.status != "pending":
            continue
        current = store.get_eval_run(run_id, organization_id)
        if current.cancel_requested or current.status == "cancelled":
            return _cancel_rest(store, current)
        store.save_eval_result(await _one(engine, workflow, result))
    return _end(store, store.get_eval_run(run_id, organization_id), "completed")


def _end(store: Store, run: EvalRun, status: str, *, error: str | None = None) -> EvalRun:
    if run.status == "cancelled":
        return run
    ended = replace(run, status=status, error=error, completed_at=time.time())
    store.save_eval_run(ended)
    return ended


def _cancel_rest(store: Store, run: EvalRun) -> EvalRun:
    now = time.time()
    for result in run_results(store, run):
        if result.status in ("pending", "queued", "running"):
            store.save_eval_result(replace(result, status="cancelled", completed_at=now))
    ended = replace(run, status="cancelled", reason=run.reason or "cancelled by request",
                    completed_at=now)
    store.save_eval_run(ended)
    return ended


async def _one(engine: Engine, workflow: Workflow, result: EvalResult) -> EvalResult:
    """Replay one eval and judge it."""
    from engine.block_runs import replay_block

    store = engine.store
    started = time.time()
    try:
        definition = store.get_eval(result.eval_id, result.organization_id)
        block_type = check_target(workflow, definition.block_id, engine.registry)
        replayed = await replay_block(engine, workflow, definition.block_id,
                                      definition.handle_inputs,
                                      organization_id=result.organization_id)
    except StepwellError as exc:
        return replace(result, status="error", error=str(exc), started_at=started,
                       completed_at=time.time())
    if replayed.status == "error":
        outcome = blocked(definition.assertion, "block_execution_failed",
                          replayed.message or "the block failed")
    else:
        outcome = check_assertion(definition.assertion, replayed.outputs)
    return replace(result, block_type=block_type, status="completed",
                   verdict=outcome.outcome, handle_outputs=replayed.handle_outputs,
                   artifact=replayed.artifact, assertion_result=outcome.to_dict(),
                   warnings=[] if replayed.status != "error" else [replayed.message or ""],
                   started_at=replayed.started_at, completed_at=replayed.completed_at)


def outcome_counts(results: list[EvalResult]) -> dict[str, dict[str, int]]:
    """``{"lifecycle_counts": {...}, "outcome": {...}}`` of a run's results."""
    lifecycle = {s: 0 for s in ("pending", "queued", "running", "completed", "error",
                                "cancelled")}
    outcome = {"passed": 0, "failed": 0, "blocked": 0}
    for result in results:
        lifecycle[result.status] = lifecycle.get(result.status, 0) + 1
        if result.status == "completed" and result.verdict in outcome:
            outcome[result.verdict] += 1
    return {"lifecycle_counts": lifecycle, "outcome": outcome}


def end_interrupted(store: Store, organization_ids: list[str], now: float) -> list[str]:
    """End the API eval runs a stopped server left ``pending`` or ``running``.

    A server executes eval runs on its own threads; when it stops, they stop. At its next
    start it calls this, so no run stays ``running`` forever: each becomes ``error``
    (its unfinished results ``cancelled``), and can be run again.

    Returns:
        The ids of the runs ended.
    """
    from engine.contracts.evals import EvalRunFilters

    ended: list[str] = []
    for org in organization_ids:
        filters = EvalRunFilters(statuses=("pending", "queued", "running"), triggers=("api",))
        after = None
        while True:
            page = store.page_eval_runs(org, filters, limit=1000, after=after)
            for run in page.items:
                for result in run_results(store, run):
                    if result.status in ("pending", "queued", "running"):
                        store.save_eval_result(replace(result, status="cancelled",
                                                       completed_at=now))
                store.save_eval_run(replace(run, status="error", completed_at=now,
                                            error="interrupted: the server stopped while it "
                                                  "ran; create the eval run again"))
                ended.append(run.id)
            if not page.more_after:
                break
            after = page.items[-1].id
    return ended
