"""engine.evals on an Engine over the memory store: plan, execute, cancel, interruption."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import anyio
import pytest

from engine.contracts.errors import InputError, NotFoundError
from engine.core import Engine
from engine.definition import Workflow
from engine.evals import (
    capture_inputs,
    check_target,
    end_interrupted,
    execute_eval_run,
    new_eval,
    outcome_counts,
    plan_eval_run,
    run_results,
)
from store.memory import MemoryStore

ORG = "org_e"
DOUBLE = "def transform(data):\n    return {'twice': data.n * 2}\n"


def workflow(code: str = DOUBLE) -> Workflow:
    return (Workflow.builder("evals")
            .block("n", "start_json", config={"json_schema": {
                "type": "object", "properties": {"n": {"type": "integer"}}}})
            .block("double", "function", config={"code": code, "output_schema": {
                "type": "object", "properties": {"twice": {"type": "integer"}}}})
            .block("memo", "note")
            .edge("n", "double", source_handle="output-json-0", target_handle="input-json-0")
            .build())


@pytest.fixture
def engine() -> Iterator[Engine]:
    with Engine(store=MemoryStore()) as eng:
        wf = workflow()
        eng.store.create_workflow(workflow_id="wf_e", name="evals", description="",
                                  project_id=None, definition=wf.to_dict(), yaml="",
                                  version_id=wf.digest(), organization_id=ORG, publish=True,
                                  now=1.0)
        yield eng


def save(engine: Engine, expected: int, n: int = 21) -> str:
    record = new_eval(workflow_id="wf_e", organization_id=ORG, block_id="double", name=None,
                      source={"type": "manual"},
                      handle_inputs={"input-json-0": {"type": "json", "data": {"n": n}}},
                      assertion={"target": {"output_handle_id": "output-json-0",
                                            "path": "twice"},
                                 "condition": {"kind": "equals", "expected": expected}},
                      now=2.0)
    engine.store.save_eval(record)
    return record.id


def test_a_run_replays_each_eval_on_the_draft(engine: Engine) -> None:
    passing, failing = save(engine, 42), save(engine, 41)
    run = plan_eval_run(engine.store, ORG, workflow_id="wf_e", scope=None, trigger="api",
                        now=3.0)
    assert run.status == "pending" and run.total == 2
    done = anyio.run(execute_eval_run, engine, run.id, ORG)
    assert done.status == "completed"
    verdicts = {r.eval_id: r.verdict for r in run_results(engine.store, done)}
    assert verdicts == {passing: "passed", failing: "failed"}
    counts = outcome_counts(run_results(engine.store, done))
    assert counts["outcome"] == {"passed": 1, "failed": 1, "blocked": 0}
    single = plan_eval_run(engine.store, ORG, workflow_id="wf_e",
                           scope={"type": "single", "eval_id": passing}, trigger="manual",
                           now=4.0)
    assert single.total == 1
    with pytest.raises(NotFoundError):
        plan_eval_run(engine.store, "org_other", workflow_id="wf_e", scope=None,
                      trigger="api", now=5.0)


def test_a_failing_block_is_blocked_and_a_missing_block_is_an_error(engine: Engine) -> None:
    broken = workflow("def transform(data):\n    raise ValueError('no')\n")
    current = engine.store.get_workflow("wf_e", ORG)
    engine.store.save_draft("wf_e", ORG, definition=broken.to_dict(), yaml="",
                            version_id=broken.digest(), stamps={}, expected_revision=None,
                            now=5.0)
    save(engine, 42)
    run = plan_eval_run(engine.store, ORG, workflow_id="wf_e", scope=None, trigger="api",
                        now=6.0)
    [result] = run_results(engine.store, anyio.run(execute_eval_run, engine, run.id, ORG))
    assert result.verdict == "blocked"
    assert result.assertion_result["failure"]["code"] == "block_execution_failed"
    gone = workflow().model_copy(update={"blocks": workflow().blocks[:1], "edges": []})
    engine.store.save_draft("wf_e", ORG, definition=gone.to_dict(), yaml="",
                            version_id=gone.digest(), stamps={}, expected_revision=None,
                            now=7.0)
    run = plan_eval_run(engine.store, ORG, workflow_id="wf_e", scope=None, trigger="api",
                        now=8.0)
    [result] = run_results(engine.store, anyio.run(execute_eval_run, engine, run.id, ORG))
    assert result.status == "error" and "no block 'double'" in (result.error or "")
    assert current.version_id != gone.digest()


def test_cancel_and_interruption(engine: Engine) -> None:
    save(engine, 42)
    run = plan_eval_run(engine.store, ORG, workflow_id="wf_e", scope=None, trigger="api",
                        now=3.0)
    cancelled = engine.store.cancel_eval_run(run.id, ORG, reason="stop", now=4.0)
    assert cancelled.status == "cancelled"
    assert anyio.run(execute_eval_run, engine, run.id, ORG).status == "cancelled"
    stuck = plan_eval_run(engine.store, ORG, workflow_id="wf_e", scope=None, trigger="api",
                          now=5.0)
    engine.store.save_eval_run(replace(stuck, status="running", started_at=5.0))
    assert end_interrupted(engine.store, [ORG], 9.0) == [stuck.id]
    ended = engine.store.get_eval_run(stuck.id, ORG)
    assert ended.status == "error" and "interrupted" in (ended.error or "")
    assert [r.status for r in run_results(engine.store, ended)] == ["cancelled"]
    assert end_interrupted(engine.store, [ORG], 10.0) == []


def test_targets_and_captured_inputs(engine: Engine) -> None:
    wf = workflow()
    assert check_target(wf, "double", engine.registry) == "function"
    for block in ("n", "memo", "ghost"):
        with pytest.raises(InputError):
            check_target(wf, block, engine.registry)
    with pytest.raises(NotFoundError):
        capture_inputs(engine.store, ORG, workflow_id="wf_e", block_id="double",
                       run_id="run_missing", step_id=None)
