"""End-to-end runs through Engine: real SQLite file, real worker processes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from engine import Engine, Workflow
from engine.contracts.errors import InputError, WorkflowValidationError
from engine.contracts.values import RunStatus

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
INVOICE = EXAMPLES / "invoice_routing"


def load(name: str) -> dict:
    return json.loads((INVOICE / name).read_text())


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    with Engine(tmp_path / "run.db") as eng:
        yield eng


def transitions(db: str, run_id: str) -> dict[str, list[str]]:
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT step_id, status FROM transitions WHERE run_id = ? ORDER BY seq", (run_id,)
    ).fetchall()
    conn.close()
    out: dict[str, list[str]] = {}
    for step_id, status in rows:
        out.setdefault(step_id, []).append(status)
    return out


def test_small_invoice_is_booked_and_approval_branch_skipped(engine: Engine) -> None:
    result = engine.run(INVOICE / "workflow.yaml", {"invoice": load("invoice.json")})
    assert result.status is RunStatus.COMPLETED, result.error
    steps = {s.step_id: s for s in engine.client.workflows.steps.list(result.run_id).data}
    assert set(steps) == {"invoice", "normalise", "route_on_amount", "request_approval",
                          "book_invoice", "decision", "done"}  # the note writes no step
    skipped = steps["request_approval"].lifecycle
    assert skipped.status == "skipped"
    assert skipped.reason == "branch_not_selected: route_on_amount.output-json-needs-approval"
    decision = steps["decision"].handle_outputs["output-json-0"].data
    assert decision["action"] == "booked" and decision["amount_due"] == 4675.0
    assert set(steps["decision"].handle_inputs) == {"input-json-invoice", "input-json-booking"}
    for step in steps.values():
        if step.lifecycle.status == "completed":
            assert step.started_at and step.completed_at and step.created_at
            if step.block_type != "start_json":
                assert step.handle_inputs, step.step_id
    moves = transitions(engine.db, result.run_id)
    assert moves["normalise"] == ["pending", "queued", "running", "completed"]
    assert moves["request_approval"] == ["pending", "skipped"]
    assert result.outputs["done"]["input-json-0"]["data"]["action"] == "booked"


def test_big_invoice_takes_the_approval_branch(engine: Engine) -> None:
    result = engine.run(INVOICE / "workflow.yaml", {"invoice": load("big_invoice.json")})
    assert result.ok, result.error
    step = engine.client.workflows.steps.get("decision", run_id=result.run_id)
    assert step.handle_outputs["output-json-0"].data["approver"] == "finance-lead"
    booked = engine.client.workflows.steps.get("book_invoice", run_id=result.run_id)
    assert booked.lifecycle.reason == "branch_not_selected: route_on_amount.output-json-else"


def failing_workflow() -> Workflow:
    schema = {"type": "object"}
    return (Workflow.builder("failing")
            .block("start", "start_json")
            .block("boom", "function", config={"output_schema": schema, "code": (
                "def transform(input_data):\n"
                "    raise ValueError('amount is negative')\n")})
            .block("after_boom", "function", config={"output_schema": schema, "code": (
                "def transform(input_data):\n    return {'never': True}\n")})
            .block("side", "function", config={"output_schema": schema, "code": (
                "def transform(input_data):\n    return {'ok': input_data.x}\n")})
            .edge("start", "boom").edge("boom", "after_boom").edge("start", "side")
            .build())


def test_function_error_skips_dependents_and_fails_run(engine: Engine) -> None:
    result = engine.run(failing_workflow(), {"start": {"x": 7}})
    assert result.status is RunStatus.ERROR
    assert result.failing_step_id == "boom"
    boom = engine.client.workflows.steps.get("boom", run_id=result.run_id)
    assert boom.lifecycle.status == "error"
    assert boom.lifecycle.stage == "execution"
    assert boom.lifecycle.category == "permanent"
    assert "amount is negative" in boom.lifecycle.message
    assert "ValueError" in (boom.lifecycle.details.stack_trace or "")
    after = engine.client.workflows.steps.get("after_boom", run_id=result.run_id)
    assert after.lifecycle.reason == "upstream_error: boom"
    side = engine.client.workflows.steps.get("side", run_id=result.run_id)
    assert side.lifecycle.status == "completed"
    assert side.handle_outputs["output-json-0"].data == {"ok": 7}
    run = engine.client.workflows.runs.get(result.run_id)
    assert run.lifecycle.status == "error"
    assert run.lifecycle.failing_step_id == "boom"


def test_a_failure_before_a_long_line_skips_and_stores_every_block_of_it(engine: Engine) -> None:
    import sys

    from bench.workloads import WORKLOADS

    length = sys.getrecursionlimit() + 200  # a recursive skip cascade overflowed here
    workflow, _, _ = WORKLOADS["chain"](length)
    result = engine.run(workflow, {"start": {"m": 0}})  # no "n": the first function fails
    assert result.status is RunStatus.ERROR and result.failing_step_id == "f0"
    by_step = transitions(str(engine.store.path), result.run_id)
    assert by_step["f0"][-1] == "error"
    ends = [by_step[f"f{i}"][-1] for i in range(1, length - 1)]
    assert ends == ["skipped"] * (length - 2)
    last = engine.client.workflows.steps.get(f"f{length - 2}", run_id=result.run_id)
    assert last.lifecycle.reason == f"upstream_skipped: f{length - 3}"


SIX_MISTAKES = """
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata: {name: broken}
spec:
  blocks:
    start: {type: start_json}
    start_again: {type: start_json}
    mystery: {type: teleport}
    fn:
      type: function
      config: {code: "def transform(x): return x"}
    route:
      type: conditional
      config: {conditions: [], has_else: true, colour: blue}
  edges:
    - source: {block: start, handle: output-json-0}
      target: {block: fn, handle: input-json-0}
    - source: {block: start, handle: output-json-0}
      target: {block: ghost, handle: input-json-0}
    - source: {block: fn, handle: output-json-7}
      target: {block: route, handle: input-json-0}
"""


def test_six_mistakes_give_six_diagnostics_and_nothing_runs(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(SIX_MISTAKES)
    with pytest.raises(WorkflowValidationError) as info:
        engine.run(path, {"start": {}})
    codes = sorted(d.code for d in info.value.diagnostics if d.severity == "error")
    assert len(codes) == 6, codes
    assert {"MULTIPLE_START_BLOCKS", "UNKNOWN_BLOCK_TYPE", "MISSING_USER_DECLARED_SCHEMA",
            "UNKNOWN_BLOCK_REFERENCE", "UNKNOWN_OUTPUT_HANDLE"} <= set(codes)
    assert all(d.fix for d in info.value.diagnostics)
    assert engine.client.workflows.runs.list().data == []


def test_missing_start_input_is_rejected_before_anything_is_written(engine: Engine) -> None:
    with pytest.raises(InputError, match="--input invoice="):
        engine.run(INVOICE / "workflow.yaml", {})
    assert engine.client.workflows.runs.list().data == []


def test_python_function_example_runs(tmp_path: Path) -> None:
    from examples.python_functions import pipeline

    assigned = pipeline.main(str(tmp_path / "ex.db"))
    assert assigned == {"lead": "Ada Martin", "owner": "sales", "score": 85}


def test_engines_copy_the_built_in_registry_and_keep_what_they_add() -> None:
    from engine.core import builtin_registry
    from tests.engine.embedding_blocks import RiskScore

    one, two = Engine(":memory:"), Engine(":memory:")
    assert one.registry is not two.registry
    one.registry.register(RiskScore())
    assert "risk_score" in one.registry
    assert "risk_score" not in two.registry
    assert "risk_score" not in Engine(":memory:").registry
    assert "risk_score" not in builtin_registry()
    # the built-in set is all there, each type loaded by the registry that asks
    names = builtin_registry().names(authorable_only=False)
    assert names == two.registry.names(authorable_only=False)
    assert "conditional" in names and "for_each" in names
    assert type(one.registry.get("conditional")) is type(two.registry.get("conditional"))
    # a given registry is used as given
    mine = builtin_registry()
    assert Engine(":memory:", registry=mine).registry is mine


SPLIT_CHARACTERS = r'''
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata:
  name: "receipt \ud83e\uddfe"
spec:
  blocks:
    start:
      type: start_json
      label: "start \ud83e\uddfe"
    f:
      type: function
      label: "lone \ud83e end"
      config:
        python: "tests.blocks.function_targets:split_characters"
        output_schema: {type: object}
  edges:
    - source: {block: start, handle: output-json-0}
      target: {block: f, handle: input-json-0}
'''


def test_split_and_lone_surrogates_run_and_read_back(engine: Engine, tmp_path: Path) -> None:
    # YAML reads JSON's spelling of an emoji ("\ud83e\uddfe") as two lone surrogates,
    # and a function may print or return one: none of it may stop the run or the reads
    path = tmp_path / "split.yaml"
    path.write_text(SPLIT_CHARACTERS, encoding="utf-8")
    result = engine.run(path, {"start": {"a": "\ud83e"}})
    assert result.status is RunStatus.COMPLETED, result.error
    run = engine.client.workflows.runs.get(result.run_id)
    assert run.workflow_name == "receipt \U0001f9fe"
    steps = {s.step_id: s for s in engine.client.workflows.steps.list(result.run_id).data}
    assert steps["start"].block_label == "start \U0001f9fe"
    assert steps["f"].block_label == "lone \ufffd end"
    step = engine.client.workflows.steps.get("f", run_id=result.run_id)
    assert step.handle_outputs["output-json-0"].data == {
        "out\ufffd": "v\ufffd", "pair": "\U0001f9fe"}
    assert engine.client.workflows.steps.get("start", run_id=result.run_id).handle_outputs[
        "output-json-0"].data == {"a": "\ufffd"}
    logs = engine.client.workflows.steps.logs("f", run_id=result.run_id)
    assert [e.message for e in logs.data] == ["lone \ufffd here", "warn \ufffd"]
    json.dumps(run.model_dump(mode="json"), ensure_ascii=False).encode()  # UTF-8 throughout
