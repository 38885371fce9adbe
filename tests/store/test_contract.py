"""The store contract suite: every Store implementation must pass it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.contracts.errors import ConflictError, IllegalTransition, NotFoundError, StorageError
from engine.contracts.events import InputRecord, RunUpdate, StepEvent
from engine.contracts.store import Store
from engine.contracts.values import FileRef, Payload, RunStatus
from store.codec import PAYLOAD_INLINE_LIMIT
from store.sqlite import SQLiteStore
from tests.store.helpers import T0, S, error_info, ev, frame, lifecycle, new_run


def _raw(store: SQLiteStore, sql: str, *params: object) -> list[tuple[object, ...]]:
    return store._conn.execute(sql, params).fetchall()


def test_store_satisfies_the_protocol(store: SQLiteStore) -> None:
    proto: Store = store  # conformance is checked by mypy
    assert proto.files is store.local_files


# ------------------------------------------------------------------ runs


def test_create_and_load_run(store: SQLiteStore) -> None:
    store.create_run(new_run(metadata={"k": "v"}, organization_id="org_a"), now=T0)
    run = store.load_run("run_1")
    assert run.status is RunStatus.PENDING
    assert run.definition == {"blocks": []}
    assert run.inputs == {"start": {"a": 1}}
    assert run.workflow_digest == "sha_1"
    assert run.organization_id == "org_a"
    assert run.owner_pid is not None
    assert run.cancel_requested is False


def test_duplicate_run_is_a_conflict(store: SQLiteStore) -> None:
    store.create_run(new_run(), now=T0)
    with pytest.raises(ConflictError, match="already exists"):
        store.create_run(new_run(), now=T0)


def test_unknown_run(store: SQLiteStore) -> None:
    with pytest.raises(NotFoundError):
        store.load_run("nope")
    with pytest.raises(NotFoundError):
        store.apply("nope", [ev("a", S.PENDING)], now=T0)
    with pytest.raises(NotFoundError):
        store.heartbeat("nope", T0)


def test_owner_heartbeat_and_cancel(store: SQLiteStore) -> None:
    store.create_run(new_run(), now=T0)
    store.set_owner("run_1", 4242, T0 + 1)
    store.heartbeat("run_1", T0 + 2)
    assert not store.cancel_requested("run_1")
    store.request_cancel("run_1")
    assert store.cancel_requested("run_1")
    run = store.load_run("run_1")
    assert (run.owner_pid, run.heartbeat_at, run.cancel_requested) == (4242, T0 + 2, True)


def test_run_update_lifecycle(store: SQLiteStore) -> None:
    store.create_run(new_run(), now=T0)
    store.apply("run_1", [], RunUpdate(status=RunStatus.RUNNING), now=T0 + 1)
    store.apply("run_1", [ev("hil", S.PENDING)], RunUpdate(
        status=RunStatus.AWAITING_REVIEW, waiting_for_block_ids=["hil"]), now=T0 + 2)
    row = _raw(store, "SELECT status, started_at, waiting_for FROM runs")[0]
    assert row == ("awaiting_review", T0 + 1, '["hil"]')
    store.apply("run_1", [], RunUpdate(status=RunStatus.RUNNING), now=T0 + 3)
    store.apply("run_1", [ev("hil", S.CANCELLED, reason="cancelled_by_user")], RunUpdate(
        status=RunStatus.ERROR, failing_step_id="hil", error=error_info("bad"),
        outputs={"end": {"x": 1}}), now=T0 + 4)
    status, started, completed, failing, error, waiting, outputs = _raw(
        store, "SELECT status, started_at, completed_at, failing_step_id, error, "
        "waiting_for, outputs FROM runs")[0]
    assert (status, started, completed, failing, waiting) == ("error", T0 + 1, T0 + 4, "hil", None)
    assert json.loads(str(error))["details"]["block_id"] == "hil"
    assert json.loads(str(outputs)) == {"end": {"x": 1}}
    assert store.load_run("run_1").status is RunStatus.ERROR


# ------------------------------------------------------------------ steps


def test_full_lifecycle_is_persisted(store: SQLiteStore) -> None:
    store.create_run(new_run(), now=T0)
    out = {"output-json-0": Payload.json({"total": 3})}
    store.apply("run_1", lifecycle("a")[:3], now=T0)
    store.apply("run_1", [ev("a", S.COMPLETED, outputs=out, model="gpt", tokens={"total_tokens": 5},
                             cost={"total": 0.1, "currency": "USD"},
                             trace_spans=[{"name": "call"}])], now=T0 + 2)
    [step] = store.load_steps("run_1")
    assert step.status is S.COMPLETED
    assert step.outputs == out
    row = _raw(store, "SELECT created_at, queued_at, started_at, completed_at, duration_ms, "
               "model, tokens FROM steps")[0]
    assert row == (T0, T0, T0, T0 + 2, 2000, "gpt", '{"total_tokens":5}')
    assert [t["status"] for t in store.transitions("run_1")] == [
        "pending", "queued", "running", "completed"]


def test_steps_load_in_creation_order_with_control_and_reason(store: SQLiteStore) -> None:
    store.create_run(new_run(), now=T0)
    store.apply("run_1", [ev("z", S.PENDING), ev("a", S.PENDING), ev("m", S.PENDING)], now=T0)
    store.apply("run_1", [ev("a", S.SKIPPED, reason="branch_not_selected: c.output-json-1")],
                now=T0 + 1)
    store.apply("run_1", [ev("z", S.QUEUED), ev("z", S.RUNNING),
                          ev("z", S.COMPLETED, control={"kind": "loop_decision", "matched": True})],
                now=T0 + 2)
    steps = store.load_steps("run_1")
    assert [s.step_id for s in steps] == ["z", "a", "m"]
    assert steps[0].control == {"kind": "loop_decision", "matched": True}
    assert steps[1].reason == "branch_not_selected: c.output-json-1"
    assert steps[2].status is S.PENDING


def test_retry_records_the_failed_attempt(store: SQLiteStore) -> None:
    store.create_run(new_run(), now=T0)
    store.apply("run_1", lifecycle("a")[:3], now=T0)
    store.apply("run_1", [ev("a", S.QUEUED, retry_count=1, error=error_info("timeout"))], now=T0 + 1)
    store.apply("run_1", [ev("a", S.RUNNING, retry_count=1)], now=T0 + 2)
    store.apply("run_1", [ev("a", S.COMPLETED, retry_count=1)], now=T0 + 3)
    [step] = store.load_steps("run_1")
    assert step.retry_count == 1
    trail = store.transitions("run_1", "a")
    assert [(t["status"], t["retry_count"]) for t in trail] == [
        ("pending", 0), ("queued", 0), ("running", 0), ("queued", 1), ("running", 1),
        ("completed", 1)]
    assert trail[3]["detail"]["error"]["message"] == "timeout"
    assert [r[0] for r in _raw(store, "SELECT seq FROM transitions ORDER BY seq")] == list(range(6))
    assert trail[3]["detail"]["error"]["details"]["error_code"] == "FUNCTION_RAISED"
    # first queue/start times are kept; duration spans every attempt
    assert _raw(store, "SELECT queued_at, started_at, duration_ms FROM steps")[0] == (
        T0, T0, 3000)


def test_error_and_reason_are_stored(store: SQLiteStore) -> None:
    store.create_run(new_run(), now=T0)
    store.apply("run_1", lifecycle("a")[:3] + [ev("a", S.ERROR, error=error_info())], now=T0)
    error = json.loads(str(_raw(store, "SELECT error FROM steps")[0][0]))
    assert error == {
        "message": "boom", "stage": "execution", "category": "permanent",
        "details": {"stack_trace": None, "block_id": "a", "block_name": "A",
                    "error_code": "FUNCTION_RAISED", "context": {"line": 3}},
    }


# ------------------------------------------------------------------ transitions


@pytest.mark.parametrize("events", [
    [ev("a", S.PENDING), ev("a", S.RUNNING)],                      # skips queued
    [ev("a", S.PENDING), ev("a", S.PENDING)],                      # created twice
    [ev("b", S.QUEUED)],                                           # never created
    [ev("a", S.PENDING), ev("a", S.QUEUED), ev("a", S.RUNNING),
     ev("a", S.COMPLETED), ev("a", S.RUNNING)],                    # leaves a terminal state
])
def test_illegal_transitions_write_nothing(store: SQLiteStore, events: list[StepEvent]) -> None:
    store.create_run(new_run(), now=T0)
    store.apply("run_1", [ev("x", S.PENDING)], now=T0)
    with pytest.raises(IllegalTransition):
        store.apply("run_1", [ev("x", S.QUEUED), *events], RunUpdate(status=RunStatus.RUNNING),
                    now=T0 + 1)
    assert _raw(store, "SELECT step_id, status FROM steps") == [("x", "pending")]
    assert len(store.transitions("run_1")) == 1
    assert store.load_run("run_1").status is RunStatus.PENDING
    # the store is still usable and its view of the steps unchanged
    store.apply("run_1", [ev("x", S.QUEUED)], now=T0 + 2)
    assert store.load_steps("run_1")[0].status is S.QUEUED


def test_illegal_move_of_a_persisted_step(store: SQLiteStore) -> None:
    store.create_run(new_run(), now=T0)
    store.apply("run_1", lifecycle("a"), now=T0)
    with pytest.raises(IllegalTransition, match="state='completed'"):
        store.apply("run_1", [ev("a", S.QUEUED)], now=T0 + 1)


def test_status_map_is_reseeded_from_the_database(tmp_path: Path) -> None:
    """A second store (another process) on the same file sees the persisted statuses."""
    path = tmp_path / "shared.db"
    with SQLiteStore(path) as first:
        first.create_run(new_run(), now=T0)
        first.apply("run_1", lifecycle("a")[:2], now=T0)
    with SQLiteStore(path) as second:
        with pytest.raises(IllegalTransition):
            second.apply("run_1", [ev("a", S.COMPLETED)], now=T0 + 1)
        second.apply("run_1", [ev("a", S.RUNNING)], now=T0 + 1)
        assert second.load_steps("run_1")[0].status is S.RUNNING


def test_stale_status_map_is_reloaded(tmp_path: Path) -> None:
    """If another process moved a step, the store reloads and re-checks the move."""
    path = tmp_path / "shared.db"
    with SQLiteStore(path) as one, SQLiteStore(path) as two:
        one.create_run(new_run(), now=T0)
        one.apply("run_1", lifecycle("a")[:3], now=T0)
        two.apply("run_1", [ev("a", S.AWAITING_REVIEW)], now=T0 + 1)   # two moves it
        one.apply("run_1", [ev("a", S.COMPLETED)], now=T0 + 2)          # legal from both
        with pytest.raises(IllegalTransition):
            two.apply("run_1", [ev("a", S.CANCELLED)], now=T0 + 3)      # stale: completed
        assert [t["status"] for t in one.transitions("run_1")][-2:] == [
            "awaiting_review", "completed"]


# ------------------------------------------------------------------ payloads


def test_sourced_inputs_are_stored_as_references(store: SQLiteStore) -> None:
    store.create_run(new_run(), now=T0)
    data = {"invoice": "INV-1", "lines": list(range(50))}
    store.apply("run_1", lifecycle("a", outputs={"output-json-0": Payload.json(data)}), now=T0)
    sourced = {"input-json-0": InputRecord(payload=Payload.json(data), source_step="a",
                                           source_handle="output-json-0"),
               "input-json-1": InputRecord(payload=Payload.json({"injected": True}))}
    store.apply("run_1", lifecycle("b", inputs=sourced), now=T0 + 1)
    raw = json.loads(str(_raw(store, "SELECT inputs FROM steps WHERE step_id = 'b'")[0][0]))
    assert raw == {"input-json-0": {"ref": ["a", "output-json-0"]},
                   "input-json-1": {"type": "json", "data": {"injected": True}}}
    step = store.reader().get_step("b", run_id="run_1")
    assert step.handle_inputs["input-json-0"].model_dump() == {"type": "json", "data": data}
    assert step.handle_inputs["input-json-1"].model_dump() == {
        "type": "json", "data": {"injected": True}}


def test_large_payloads_go_to_blobs_and_come_back(store: SQLiteStore) -> None:
    store.create_run(new_run(), now=T0)
    big = {"text": "x" * (PAYLOAD_INLINE_LIMIT + 10)}
    small = {"n": 1}
    outputs = {"output-json-0": Payload.json(big), "output-json-1": Payload.json(small)}
    store.apply("run_1", lifecycle("a", outputs=outputs), now=T0)
    store.apply("run_1", lifecycle("b", inputs={
        "input-json-0": InputRecord(payload=Payload.json(big), source_step="a",
                                    source_handle="output-json-0"),
        "input-json-1": InputRecord(payload=Payload.json(big))}), now=T0)
    raw_out, raw_in = _raw(store, "SELECT outputs, inputs FROM steps ORDER BY seq")[0][0], \
        _raw(store, "SELECT inputs FROM steps ORDER BY seq")[1][0]
    stored = json.loads(str(raw_out))
    assert set(stored["output-json-0"]) == {"blob"}
    assert stored["output-json-1"] == {"type": "json", "data": small}
    assert len(str(raw_out)) < 1000 and len(str(raw_in)) < 1000
    assert store.load_steps("run_1")[0].outputs == outputs
    reader = store.reader()
    wire = {"type": "json", "data": big}
    assert reader.get_step("a").handle_outputs["output-json-0"].model_dump() == wire
    b = reader.get_step("b")
    assert b.handle_inputs["input-json-0"].model_dump() == wire
    assert b.handle_inputs["input-json-1"].model_dump() == wire


def test_file_payloads(store: SQLiteStore) -> None:
    store.create_run(new_run(), now=T0)
    ref = store.files.put_bytes(b"%PDF-1.4 hello", "invoice.pdf")
    assert ref.mime_type == "application/pdf"
    store.apply("run_1", lifecycle("start", outputs={"output-file-0": Payload.file(ref)},
                                   block_type="start_document"), now=T0)
    [step] = store.load_steps("run_1")
    assert step.outputs["output-file-0"].document == ref
    assert store.files.read_bytes(step.outputs["output-file-0"].document or ref) == b"%PDF-1.4 hello"


def test_artifacts_are_recorded_with_deterministic_ids(store: SQLiteStore) -> None:
    store.create_run(new_run(), now=T0)
    artifact = {"operation": "function_invocation", "output": {"x": 1}}
    store.apply("run_1", lifecycle("a")[:3], now=T0)
    store.apply("run_1", [ev("a", S.COMPLETED, artifact=artifact)], now=T0 + 1)
    art_id, operation = _raw(store, "SELECT artifact_id, artifact_operation FROM steps")[0]
    assert operation == "function_invocation"
    assert str(art_id).startswith("art_") and len(str(art_id)) == 16
    record = store.reader().get_artifact(str(art_id))
    assert record["output"] == {"x": 1} and record["step_id"] == "a"
    # same run, step and attempt -> same id (a resumed attempt overwrites its record)
    other = SQLiteStore(":memory:")
    other.create_run(new_run(), now=T0)
    other.apply("run_1", lifecycle("a")[:3] + [ev("a", S.COMPLETED, artifact=artifact)], now=T0)
    assert _raw(other, "SELECT artifact_id FROM steps")[0][0] == art_id
    other.close()


def test_artifact_without_operation_is_rejected(store: SQLiteStore) -> None:
    store.create_run(new_run(), now=T0)
    store.apply("run_1", lifecycle("a")[:3], now=T0)
    with pytest.raises(StorageError, match="operation"):
        store.apply("run_1", [ev("a", S.COMPLETED, artifact={"x": 1})], now=T0)
    assert store.load_steps("run_1")[0].status is S.RUNNING


def test_non_json_output_is_a_storage_error(store: SQLiteStore) -> None:
    store.create_run(new_run(), now=T0)
    store.apply("run_1", lifecycle("a")[:3], now=T0)
    with pytest.raises(StorageError, match="JSON-compatible"):
        store.apply("run_1", [ev("a", S.COMPLETED, cost={"x": object()})], now=T0)


def test_loop_scope_is_stored(store: SQLiteStore) -> None:
    store.create_run(new_run(), now=T0)
    scope = (frame("outer", 0), frame("inner", 2))
    store.apply("run_1", [ev("outer_iter_0_inner_iter_2_leaf", S.PENDING, block_id="leaf",
                             scope=scope)], now=T0)
    loops = store.reader().get_step("outer_iter_0_inner_iter_2_leaf").loop_containers
    assert [(c.container_id, c.iteration) for c in loops] == [("outer", 0), ("inner", 2)]


def test_file_ref_payload_round_trip(store: SQLiteStore) -> None:
    ref = FileRef(id="file_" + "0" * 24, filename="a.txt", mime_type="text/plain")
    store.create_run(new_run(), now=T0)
    store.apply("run_1", lifecycle("a", outputs={"output-file-0": Payload.file(ref)}), now=T0)
    assert store.load_steps("run_1")[0].outputs["output-file-0"] == Payload.file(ref)


def test_large_run_outputs_come_back_inline(store: SQLiteStore) -> None:
    store.create_run(new_run(), now=T0)
    big = {"output-json-0": {"type": "json", "data": "y" * (PAYLOAD_INLINE_LIMIT + 1)}}
    store.apply("run_1", [], RunUpdate(status=RunStatus.COMPLETED, outputs={"end": big}),
                now=T0)
    assert len(str(_raw(store, "SELECT outputs FROM runs")[0][0])) < 1000
    assert store.reader().get_run("run_1").outputs == {"end": big}


def test_awaiting_review_opens_a_review(store: SQLiteStore) -> None:
    store.create_run(new_run(), now=T0)
    proposed = {"output-json-0": Payload.json({"amount": 100})}
    store.apply("run_1", lifecycle("gate")[:3] + [ev(
        "gate", S.AWAITING_REVIEW, outputs=proposed, control={"review": {"why": "amount"}})],
        now=T0)
    [review] = store.reviews(run_id="run_1")
    assert (review.step_id, review.block_id, review.status) == ("gate", "gate", "pending")
    assert review.data == {"outputs": {"output-json-0": {"type": "json", "data": {"amount": 100}}},
                           "review": {"why": "amount"}}
    decided, changed = store.decide_review(review.id, approved=True, data={"amount": 90},
                                           has_data=True, now=T0 + 5)
    assert changed and decided.decision == "approved" and decided.decided_at == T0 + 5
    assert store.review(review.id).decision_data == {"data": {"amount": 90}}
    assert store.reviews(status="approved")[0].id == review.id
    store.apply("run_1", [ev("gate", S.COMPLETED)], now=T0 + 6)
    [legacy] = store.reader().list_legacy_steps("run_1")
    assert legacy.requires_human_review and legacy.human_review_approved is True
    assert legacy.human_reviewed_at is not None
    with pytest.raises(NotFoundError):
        store.review("rev_missing")


def test_load_steps_carries_the_error_of_failed_steps(store: SQLiteStore) -> None:
    store.create_run(new_run(), now=T0)
    store.apply("run_1", lifecycle("a")[:3] + [ev("a", S.QUEUED, retry_count=1,
                                                  error=error_info("flaky"))], now=T0)
    store.apply("run_1", [ev("a", S.RUNNING, retry_count=1),
                          ev("a", S.ERROR, retry_count=1, error=error_info("dead"))], now=T0)
    store.apply("run_1", lifecycle("b")[:3] + [ev("b", S.QUEUED, retry_count=1,
                                                  error=error_info("flaky"))], now=T0)
    a, b = store.load_steps("run_1")
    assert a.error is not None and a.error["message"] == "dead"
    assert a.error["details"]["error_code"] == "FUNCTION_RAISED"
    assert b.error is None          # retried, not failed


def test_a_new_run_is_owned_and_alive(store: SQLiteStore) -> None:
    store.create_run(new_run(), now=T0)
    run = store.load_run("run_1")
    assert run.heartbeat_at == T0 and run.owner_pid is not None
