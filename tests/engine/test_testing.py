"""engine.testing: run_block, stubs, assert_step, the in-memory store, custom block types."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from blocks.registry import default_registry
from engine import Engine, Workflow
from engine.contracts.errors import InputError, RegistryError, UsageError, WorkflowValidationError
from engine.testing import (
    INSTANT_RETRY,
    Attempts,
    Failure,
    Outputs,
    ScriptedProvider,
    StubCall,
    assert_step,
    run_block,
)
from tests.engine.embedding_blocks import (
    MODULE,
    OBJECT,
    RiskScore,
    loop_workflow,
    risk_workflow,
    vat_workflow,
)

ROUTE = {"conditions": [{"id": "big", "name": "Big", "handle_key": "big", "condition": {
    "logical_operator": "and", "sub_conditions": [
        {"path_ref": {"input": "default", "path": "net"}, "operator": "greater_than",
         "value": 1000}]}}], "has_else": True}


@pytest.fixture
def engine() -> Engine:
    with Engine(":memory:", retry=INSTANT_RETRY) as eng:
        yield eng


# --------------------------------------------------------------------------- run_block


def test_run_block_returns_outputs_lifecycle_and_artifact() -> None:
    run = run_block("function", {"python": f"{MODULE}:add_vat", "output_schema": OBJECT},
                    {"input-json-0": {"net": 100}})
    assert run.ok and run.status == "completed"
    assert run.output == {"net": 100, "gross": 120.0}
    assert run.transitions == ["pending", "queued", "running", "completed"]
    assert run.artifact["operation"] == "function_invocation"
    assert run.artifact["inputs"] == {"net": 100}
    assert run.step.block_id == "function" and run.step.handle_inputs["input-json-0"].data == {
        "net": 100}


def test_run_block_routes_a_conditional_both_ways() -> None:
    big = run_block("conditional", ROUTE, {"input-json-0": {"net": 5000}}, block_id="route")
    assert big.outputs == {"output-json-big": {"net": 5000}}
    assert big.artifact["selected_handles"] == ["output-json-big"]
    small = run_block("conditional", ROUTE, {"input-json-0": {"net": 5}})
    assert small.outputs == {"output-json-else": {"net": 5}}


def test_run_block_reports_a_failing_block_as_an_error_status() -> None:
    run = run_block("function", {"python": f"{MODULE}:add_vat", "output_schema": OBJECT},
                    {"input-json-0": {"gross": 1}})
    assert run.status == "error" and not run.ok
    assert run.error["category"] == "permanent" and run.error["code"] == "FUNCTION_RAISED"
    assert "add_vat" not in run.outputs
    with pytest.raises(AssertionError, match="ended error"):
        _ = run.output


def test_run_block_feeds_files_and_returns_their_bytes(tmp_path: Path) -> None:
    text = tmp_path / "note.txt"
    text.write_text("Invoice number: 42\nTotal: 12.50 EUR\n")
    parsed = run_block("parse", {}, {"input-file-0": text})
    assert parsed.ok, parsed.error
    assert "Invoice number: 42" in parsed.output["text"]
    sorted_ = run_block("classifier", {"categories": [{"name": "invoice"}, {"name": "other"}]},
                        {"document": text}, provider={"classifier": "other"})
    assert list(sorted_.outputs) == ["output-file-other"]
    assert sorted_.files["output-file-other"] == text.read_bytes()
    assert sorted_.model == "scripted"


def test_run_block_with_a_scripted_provider_can_trigger_a_review(tmp_path: Path) -> None:
    doc = tmp_path / "a.txt"
    doc.write_text("hello")
    schema = {"type": "object", "properties": {"total": {"type": "number"}},
              "required": ["total"]}
    provider = ScriptedProvider({"read": {"total": None}})
    run = run_block("extract", {"json_schema": schema,
                                "review": {"predicate": {"kind": "any_required_field_null"}}},
                    {"document": doc}, provider=provider, block_id="read")
    assert run.status == "awaiting_review"
    assert run.review is not None and run.review["status"] == "pending"
    assert [c.method for c in provider.calls] == ["extract"]


def test_run_block_runs_a_block_def_from_a_workflow_and_start_blocks() -> None:
    block = vat_workflow().block("vat")
    assert run_block(block, inputs={"input-json-0": {"net": 10}}).output == {
        "net": 10, "gross": 12.0}
    start = run_block("start_json", {"json_schema": {"type": "object"}}, run_input={"a": 1})
    assert start.output == {"a": 1}


def test_run_block_runs_a_custom_block_type_instance() -> None:
    run = run_block(RiskScore(), {"weight": 3}, {"invoice": {"amount": 50}})
    assert run.outputs == {"output-json-high": {"amount": 50, "score": 150}}
    assert run.artifact == {"operation": "risk_scoring", "score": 150,
                            "id": run.step.artifact.id}


def test_run_block_is_fast_for_pure_blocks() -> None:
    run_block("conditional", ROUTE, {"input-json-0": {"net": 1}})
    started = time.perf_counter()
    for _ in range(5):
        run_block("conditional", ROUTE, {"input-json-0": {"net": 1}})
    assert (time.perf_counter() - started) / 5 < 1.0  # generous: milliseconds in practice


def test_run_block_rejects_unknown_handles_listing_the_real_ones() -> None:
    with pytest.raises(InputError) as info:
        run_block("merge_dicts", {"inputs": [{"name": "a"}, {"name": "b"}]}, {"c": {}})
    message = str(info.value)
    assert "no input handle 'c'" in message
    assert "input-json-a, input-json-b" in message and "(also written a, b)" in message


def test_run_block_validates_config_like_a_workflow() -> None:
    with pytest.raises(WorkflowValidationError) as info:
        run_block("conditional", {"conditons": []}, {"input-json-0": {}})
    assert "Valid fields: conditions, has_else, retry" in str(info.value)


def test_run_block_refuses_containers_and_wrong_file_values() -> None:
    with pytest.raises(UsageError, match="for_each"):
        run_block("for_each", {"map_method": "iterate_array"}, {})
    with pytest.raises(InputError, match="file handle"):
        run_block("parse", {}, {"input-file-0": "not a path object"})


# --------------------------------------------------------------------------- stubs


def test_block_stub_replaces_the_block_and_is_recorded(engine: Engine) -> None:
    engine.stubs = {"vat": {"net": 1, "gross": 99}}
    result = engine.run(vat_workflow(), {"invoice": {"net": 1}})
    assert result.ok
    step = assert_step(result, "vat", status="completed", output={"net": 1, "gross": 99},
                       artifact={"operation": "stub", "stub_key": "vat"})
    assert step.handle_inputs["input-json-0"].data == {"net": 1}
    assert result.outputs["done"]["input-json-0"]["data"] == {"net": 1, "gross": 99}


def test_transient_failure_twice_then_success_retries_like_a_real_block(engine: Engine) -> None:
    engine.stubs = {"vat": Attempts(Failure.transient("503 from ERP"),
                                    Failure.transient("503 from ERP"), {"gross": 1})}
    result = engine.run(vat_workflow(), {"invoice": {"net": 1}})
    assert result.ok, result.error
    assert_step(result, "vat", status="completed", retry_count=2, output={"gross": 1})
    moves = [t["status"] for t in engine.store.transitions(result.run_id, "vat")]
    assert moves == ["pending", "queued", "running", "queued", "running", "queued", "running",
                     "completed"]


def test_failures_fail_the_step_and_skip_dependents(engine: Engine) -> None:
    engine.stubs = {"vat": Failure.permanent("ledger closed", code="LEDGER_CLOSED")}
    result = engine.run(vat_workflow(), {"invoice": {"net": 1}})
    assert result.status == "error" and result.failing_step_id == "vat"
    step = assert_step(result, "vat", status="error", error="ledger closed", retry_count=0)
    assert step.lifecycle.details.error_code == "LEDGER_CLOSED"
    assert_step(result, "done", status="skipped", reason="upstream_error: vat")


def test_a_stubbed_failure_records_a_stack_that_says_it_was_scripted(engine: Engine) -> None:
    engine.stubs = {"vat": Attempts(Failure.transient("503"), Failure.permanent("closed"))}
    result = engine.run(vat_workflow(), {"invoice": {"net": 1}})
    step = assert_step(result, "vat", status="error", retry_count=1, error="closed")
    assert step.lifecycle.details.stack_trace == (
        "Scripted failure: stub 'vat' answered Failure.permanent(...) for attempt 2; no "
        "block code ran, so there is no traceback.\n")
    retried = [t["detail"]["error"] for t in engine.store.transitions(result.run_id, "vat")
               if t["status"] == "queued" and t["detail"]]
    assert [e["details"]["stack_trace"].split(";")[0] for e in retried] == [
        "Scripted failure: stub 'vat' answered Failure.transient(...) for attempt 1"]


def test_a_failure_raised_outside_a_stub_keeps_its_real_stack() -> None:
    assert Failure.transient("503").error().stack_trace is None


def test_transient_failures_exhaust_the_retry_policy(engine: Engine) -> None:
    engine.stubs = {"vat": Failure.transient("timeout")}
    result = engine.run(vat_workflow(), {"invoice": {"net": 1}})
    assert_step(result, "vat", status="error", retry_count=2, error="timeout")


def test_attempts_that_run_out_say_so(engine: Engine) -> None:
    engine.stubs = {"vat": Attempts(Failure.transient("x"))}
    result = engine.run(vat_workflow(), {"invoice": {"net": 1}})
    assert_step(result, "vat", status="error", error="scripts 1 attempts but attempt 2 ran")


def test_outputs_stub_picks_the_branch_of_a_routing_block(engine: Engine) -> None:
    engine.registry.register(RiskScore())
    engine.stubs = {"risk": Outputs({"output-json-low": {"score": 0}})}
    result = engine.run(risk_workflow(), {"invoice": {"amount": 1000}})
    assert result.ok
    assert_step(result, "risk", outputs={"output-json-low": {"score": 0}})
    assert_step(result, "escalate", status="skipped",
                reason="branch_not_selected: risk.output-json-high")


def test_plain_value_for_a_block_with_several_outputs_is_an_error(engine: Engine) -> None:
    engine.registry.register(RiskScore())
    engine.stubs = {"risk": {"score": 0}}
    result = engine.run(risk_workflow(), {"invoice": {"amount": 1}})
    assert_step(result, "risk", status="error",
                error="has 2 output handles (output-json-high, output-json-low)")


def test_step_stub_targets_one_loop_iteration_and_callables_see_inputs(engine: Engine) -> None:
    calls: list[StubCall] = []

    def triple(call: StubCall) -> dict:
        calls.append(call)
        return {"value": call.input["value"] * 3}

    engine.stubs = {"each_iter_1_double": triple}
    result = engine.run(loop_workflow(), {"start": {"items": [{"value": 1}, {"value": 2}]}})
    assert result.outputs["done"]["input-json-0"]["data"] == [{"value": 2}, {"value": 6}]
    assert [(c.step_id, c.iteration, c.attempt) for c in calls] == [("each_iter_1_double", 1, 0)]
    assert_step(result, "each_iter_0_double", artifact={"operation": "function_invocation"})


def test_async_callable_stub(engine: Engine) -> None:
    async def answer(call: StubCall) -> dict:
        return {"value": -call.input["value"]}

    engine.stubs = {"double": answer}
    result = engine.run(loop_workflow(), {"start": {"items": [{"value": 4}]}})
    assert result.outputs["done"]["input-json-0"]["data"] == [{"value": -4}]


def test_callable_object_stub_with_an_async_call_is_awaited(engine: Engine) -> None:
    class Negate:
        async def __call__(self, call: StubCall) -> dict:
            return {"value": -call.input["value"]}

    engine.stubs = {"double": Negate()}
    result = engine.run(loop_workflow(), {"start": {"items": [{"value": 4}]}})
    assert result.outputs["done"]["input-json-0"]["data"] == [{"value": -4}]


def test_stubbing_a_missing_block_is_an_error_naming_it_and_nothing_is_persisted(
        engine: Engine) -> None:
    engine.stubs = {"dobule": {}, "each_iter_0_nope": {}}
    with pytest.raises(UsageError) as info:
        engine.run(loop_workflow(), {"start": {"items": []}})
    message = str(info.value)
    assert "'dobule' is not a block or step id" in message and "Did you mean 'double'" in message
    assert "'each_iter_0_nope'" in message and "Block ids: done, double, each, start" in message
    assert engine.client.workflows.runs.list().data == []


def test_containers_sentinels_and_notes_cannot_be_stubbed(engine: Engine) -> None:
    wf = loop_workflow()
    wf.blocks.append(wf.blocks[0].model_copy(update={"id": "memo", "type": "note",
                                                     "config": {}}))
    engine.stubs = {"each": [], "each_iter_0_each_sentinel_start": {}, "memo": 1}
    with pytest.raises(UsageError) as info:
        engine.run(wf, {"start": {"items": []}})
    message = str(info.value)
    assert "'each' is a for_each container" in message
    assert "loop sentinel" in message and "'memo' is a note block" in message


def test_stubbed_workflow_runs_in_milliseconds() -> None:
    wf = loop_workflow()
    with Engine(":memory:", stubs={"double": {"value": 0}}) as eng:
        eng.run(wf, {"start": {"items": [{"value": 1}]}})
        started = time.perf_counter()
        result = eng.run(wf, {"start": {"items": [{"value": 1}, {"value": 2}]}})
        elapsed = time.perf_counter() - started
    assert result.ok
    assert elapsed < 2.0  # generous bound; the measured figure is a few milliseconds


# --------------------------------------------------------------------------- assert_step


def test_assert_step_failure_message_says_what_differs_and_what_exists(engine: Engine) -> None:
    engine.stubs = {"vat": Failure.permanent("ledger closed")}
    result = engine.run(vat_workflow(), {"invoice": {"net": 1}})
    with pytest.raises(AssertionError) as info:
        assert_step(result, "vat", status="completed", output={"gross": 1.2})
    message = str(info.value)
    assert f"step 'vat' (function) of run {result.run_id} does not match:" in message
    assert "status: expected 'completed', got 'error'" in message
    assert "output: expected one fired handle, got none" in message
    assert "the step failed: ledger closed (permanent, STUB_FAILURE)" in message
    assert "steps of the run: invoice (completed), vat (error), done (skipped)" in message


def test_assert_step_shows_an_output_diff(engine: Engine) -> None:
    result = engine.run(vat_workflow(), {"invoice": {"net": 10}})
    with pytest.raises(AssertionError) as info:
        assert_step(result, "vat", outputs={"output-json-0": {"net": 10, "gross": 13}})
    message = str(info.value)
    assert "outputs differ (- expected, + actual)" in message
    assert '-    "gross": 13,' in message and '+    "gross": 12.0,' in message


def test_assert_step_on_a_missing_step_suggests_close_ids(engine: Engine) -> None:
    result = engine.run(vat_workflow(), {"invoice": {"net": 10}})
    with pytest.raises(AssertionError, match="has no step 'vta'. Did you mean 'vat'"):
        assert_step(result, "vta")
    assert_step(engine, "vat", run_id=result.run_id, status="completed")
    assert_step(engine.client, "vat", run_id=result.run_id, status="completed")
    with pytest.raises(UsageError, match="needs run_id"):
        assert_step(engine, "vat")


# --------------------------------------------------------------------------- store, provider


@pytest.mark.parametrize("db", [":memory:", "sqlite://"])
def test_in_memory_store_runs_and_reads_back(db: str) -> None:
    with Engine(db) as eng:
        assert eng.db == ":memory:" and eng.store.in_memory
        first = eng.run(vat_workflow(), {"invoice": {"net": 1}})
        second = eng.run(vat_workflow(), {"invoice": {"net": 2}})
        runs = eng.client.workflows.runs.list().data
        assert {r.id for r in runs} == {first.run_id, second.run_id}
        assert_step(second, "vat", output={"net": 2, "gross": 2.4})


def test_file_store_is_the_same_code_path(tmp_path: Path) -> None:
    with Engine(f"sqlite:///{tmp_path / 'x.db'}") as eng:
        result = eng.run(vat_workflow(), {"invoice": {"net": 1}})
    assert (tmp_path / "x.db").is_file()
    with Engine(tmp_path / "x.db") as again:
        assert_step(again, "vat", run_id=result.run_id, status="completed")


def test_provider_kwarg_sets_the_model_provider(tmp_path: Path) -> None:
    doc = tmp_path / "a.txt"
    doc.write_text("anything")
    wf = (Workflow.builder("cls").block("doc", "start_document")
          .block("sort", "classifier", config={"categories": [{"name": "a"}, {"name": "b"}]})
          .block("a_done", "end", config={"inputs": [{"type": "file"}]})
          .edge("doc", "sort").edge("sort", "a_done", source_handle="output-file-a").build())
    with Engine(":memory:", provider={"sort": "a"}) as eng:
        assert isinstance(eng.services["model_provider"], ScriptedProvider)
        result = eng.run(wf, {"doc": doc})
        assert_step(result, "sort", status="completed")
        assert eng.client.workflows.steps.get("sort", run_id=result.run_id).model == "scripted"
    with pytest.raises(UsageError, match="unknown model provider 'nope'"):
        Engine(":memory:", provider="nope")


# --------------------------------------------------------------------------- custom block types


def test_custom_block_type_is_validated_like_built_ins(engine: Engine) -> None:
    engine.registry.register(RiskScore())
    problems = engine.validate(risk_workflow(target_handle="input-json-invoic"))
    [bad] = [d for d in problems if d.code == "UNKNOWN_INPUT_HANDLE"]
    assert "input-json-history, input-json-invoice" in bad.render()
    bad_config = risk_workflow()
    bad_config.blocks[1] = bad_config.blocks[1].model_copy(update={"config": {"wieght": 1}})
    with pytest.raises(WorkflowValidationError, match="Valid fields: retry, threshold, weight"):
        engine.run(bad_config, {"invoice": {"amount": 1}})


def test_custom_block_type_runs_and_is_persisted_like_built_ins(engine: Engine) -> None:
    engine.registry.register(RiskScore())
    result = engine.run(risk_workflow(), {"invoice": {"amount": 70}})
    assert result.ok
    step = assert_step(result, "risk", status="completed",
                       outputs={"output-json-high": {"amount": 70, "score": 140.0}},
                       artifact={"operation": "risk_scoring", "score": 140.0})
    assert step.block_type == "risk_score"
    assert step.handle_inputs["input-json-invoice"].data == {"amount": 70}
    assert_step(result, "file", status="skipped", reason="branch_not_selected: risk.output-json-low")
    legacy = engine.client.workflows.runs.steps.list(result.run_id)
    assert {s.node_id: s.node_type for s in legacy}["risk"] == "risk_score"


def test_registering_a_type_twice_is_a_clear_error() -> None:
    registry = default_registry()
    registry.register(RiskScore())
    with pytest.raises(RegistryError, match="'risk_score' is already registered .by RiskScore"):
        registry.register(RiskScore())
    with pytest.raises(RegistryError, match="'conditional' is already registered"):
        default_registry().register(type("Mine", (RiskScore,), {"type_name": "conditional"})())


def test_custom_block_returning_what_its_handles_cannot_carry(engine: Engine) -> None:
    engine.registry.register(RiskScore())
    result = engine.run(risk_workflow(), {"invoice": {"amount": 1, "bad": "decimal"}})
    assert result.status == "error"
    step = assert_step(result, "risk", status="error",
                       error="block 'risk' (risk_score) put data on JSON handle "
                             "'output-json-low' that cannot be stored as JSON")
    assert "Decimal" in step.lifecycle.message and "Return dicts, lists" in step.lifecycle.message
    assert step.lifecycle.details.error_code == "OUTPUT_NOT_JSON"
    wrong_kind = engine.run(risk_workflow(), {"invoice": {"amount": 1, "bad": "file"}})
    assert_step(wrong_kind, "risk", status="error",
                error="put a file payload on json handle 'output-json-low'. Use Payload.json")
