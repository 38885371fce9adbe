"""The store contract suite: runs, steps, transitions and payloads, through the protocols only.

Runs against every implementation (``store`` fixture, :data:`tests.store.conftest.OPENERS`);
nothing here knows how a store keeps its data. SQLite specifics (columns, WAL, several
processes on one file) are in ``test_sqlite.py``.
"""

from __future__ import annotations

import threading

import pytest

from engine.contracts.errors import (
    ConflictError,
    IllegalTransition,
    NotFoundError,
    StorageError,
)
from engine.contracts.events import InputRecord, RunUpdate, StepEvent
from engine.contracts.reads import StepRecord
from engine.contracts.store import Store
from engine.contracts.values import FileRef, Payload, RunStatus
from store.api import ReadAPI
from store.codec import PAYLOAD_INLINE_LIMIT
from tests.store.conftest import StoreFactory
from tests.store.helpers import T0, S, error_info, ev, frame, lifecycle, new_run


def _step(store: Store, step_id: str, run_id: str = "run_1") -> StepRecord:
    return store.read_step(step_id, run_id=run_id)


# ------------------------------------------------------------------ runs


def test_create_and_load_run(store: Store) -> None:
    store.create_run(new_run(metadata={"k": "v"}, organization_id="org_a"), now=T0)
    run = store.load_run("run_1")
    assert run.status is RunStatus.PENDING
    assert run.definition == {"blocks": []}
    assert run.inputs == {"start": {"a": 1}}
    assert run.workflow_digest == "sha_1"
    assert run.organization_id == "org_a"
    assert run.owner_pid is not None
    assert run.cancel_requested is False
    assert store.read_run("run_1").metadata == {"k": "v"}


def test_duplicate_run_is_a_conflict(store: Store) -> None:
    store.create_run(new_run(), now=T0)
    with pytest.raises(ConflictError, match="already exists"):
        store.create_run(new_run(), now=T0)


def test_unknown_run(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.load_run("nope")
    with pytest.raises(NotFoundError):
        store.apply("nope", [ev("a", S.PENDING)], now=T0)
    with pytest.raises(NotFoundError):
        store.heartbeat("nope", T0)
    with pytest.raises(NotFoundError):
        store.set_owner("nope", 1, T0)
    with pytest.raises(NotFoundError):
        store.request_cancel("nope")
    with pytest.raises(NotFoundError):
        store.cancel_requested("nope")
    assert store.load_steps("nope") == [] and store.transitions("nope") == []
    assert store.claim_owner("nope", 1, T0, seen_pid=None, seen_heartbeat=None) is False


def test_owner_heartbeat_and_cancel(store: Store) -> None:
    store.create_run(new_run(), now=T0)
    store.set_owner("run_1", 4242, T0 + 1)
    store.heartbeat("run_1", T0 + 2)
    assert not store.cancel_requested("run_1")
    store.request_cancel("run_1")
    assert store.cancel_requested("run_1")
    run = store.load_run("run_1")
    assert (run.owner_pid, run.heartbeat_at, run.cancel_requested) == (4242, T0 + 2, True)
    store.request_cancel("run_1", "user asked")
    assert store.cancel_requested("run_1") == "user asked"


def test_claim_owner_is_compare_and_set(store: Store) -> None:
    store.create_run(new_run(), now=T0)
    seen = store.load_run("run_1")
    assert store.claim_owner("run_1", 7, T0 + 1, seen_pid=seen.owner_pid,
                             seen_heartbeat=seen.heartbeat_at)
    # a second process that saw the same owner loses
    assert not store.claim_owner("run_1", 8, T0 + 2, seen_pid=seen.owner_pid,
                                 seen_heartbeat=seen.heartbeat_at)
    run = store.load_run("run_1")
    assert (run.owner_pid, run.heartbeat_at) == (7, T0 + 1)


def test_run_update_lifecycle(store: Store) -> None:
    store.create_run(new_run(), now=T0)
    store.apply("run_1", [], RunUpdate(status=RunStatus.RUNNING), now=T0 + 1)
    store.apply("run_1", [ev("hil", S.PENDING)], RunUpdate(
        status=RunStatus.AWAITING_REVIEW, waiting_for_block_ids=["hil"]), now=T0 + 2)
    run = store.read_run("run_1")
    assert (run.status, run.started_at, run.waiting_for) == ("awaiting_review", T0 + 1, ["hil"])
    store.apply("run_1", [], RunUpdate(status=RunStatus.RUNNING), now=T0 + 3)
    store.apply("run_1", [ev("hil", S.CANCELLED, reason="cancelled_by_user")], RunUpdate(
        status=RunStatus.ERROR, failing_step_id="hil", error=error_info("bad"),
        outputs={"end": {"x": 1}}), now=T0 + 4)
    run = store.read_run("run_1")
    assert (run.status, run.started_at, run.completed_at, run.failing_step_id,
            run.waiting_for) == ("error", T0 + 1, T0 + 4, "hil", None)
    assert run.error is not None and run.error["details"]["block_id"] == "hil"
    assert run.outputs == {"end": {"x": 1}}
    assert store.load_run("run_1").status is RunStatus.ERROR


def test_a_new_run_is_owned_and_alive(store: Store) -> None:
    store.create_run(new_run(), now=T0)
    run = store.load_run("run_1")
    assert run.heartbeat_at == T0 and run.owner_pid is not None


# ------------------------------------------------------------------ steps


def test_full_lifecycle_is_persisted(store: Store) -> None:
    store.create_run(new_run(), now=T0)
    out = {"output-json-0": Payload.json({"total": 3})}
    store.apply("run_1", lifecycle("a")[:3], now=T0)
    store.apply("run_1", [ev("a", S.COMPLETED, outputs=out, model="gpt", tokens={"total_tokens": 5},
                             cost={"total": 0.1, "currency": "USD"},
                             trace_spans=[{"name": "call"}])], now=T0 + 2)
    [step] = store.load_steps("run_1")
    assert step.status is S.COMPLETED
    assert step.outputs == out
    record = _step(store, "a")
    assert (record.created_at, record.started_at, record.completed_at, record.duration_ms,
            record.model, record.tokens) == (T0, T0, T0 + 2, 2000, "gpt", {"total_tokens": 5})
    assert record.cost == {"total": 0.1, "currency": "USD"}
    assert record.trace_spans == [{"name": "call"}]
    assert [t["status"] for t in store.transitions("run_1")] == [
        "pending", "queued", "running", "completed"]


def test_steps_load_in_creation_order_with_control_and_reason(store: Store) -> None:
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
    assert [s.step_id for s in store.run_steps("run_1")] == ["z", "a", "m"]


def test_retry_records_the_failed_attempt(store: Store) -> None:
    store.create_run(new_run(), now=T0)
    store.apply("run_1", lifecycle("a")[:3], now=T0)
    store.apply("run_1", [ev("a", S.QUEUED, retry_count=1, error=error_info("timeout"))],
                now=T0 + 1)
    store.apply("run_1", [ev("a", S.RUNNING, retry_count=1)], now=T0 + 2)
    store.apply("run_1", [ev("a", S.COMPLETED, retry_count=1)], now=T0 + 3)
    [step] = store.load_steps("run_1")
    assert step.retry_count == 1
    trail = store.transitions("run_1", "a")
    assert [(t["status"], t["retry_count"]) for t in trail] == [
        ("pending", 0), ("queued", 0), ("running", 0), ("queued", 1), ("running", 1),
        ("completed", 1)]
    assert trail[3]["detail"]["error"]["message"] == "timeout"
    assert trail[3]["detail"]["error"]["details"]["error_code"] == "FUNCTION_RAISED"
    assert [t["at"] for t in trail] == [T0, T0, T0, T0 + 1, T0 + 2, T0 + 3]
    # the first start time is kept; the duration spans every attempt
    record = _step(store, "a")
    assert (record.started_at, record.duration_ms) == (T0, 3000)


def test_transitions_order_across_steps(store: Store) -> None:
    store.create_run(new_run(), now=T0)
    store.apply("run_1", [ev("b", S.PENDING), ev("a", S.PENDING), ev("b", S.QUEUED)], now=T0)
    store.apply("run_1", [ev("a", S.QUEUED)], now=T0 - 1)   # an earlier time sorts first
    assert [(t["step_id"], t["status"]) for t in store.transitions("run_1")] == [
        ("a", "queued"), ("b", "pending"), ("b", "queued"), ("a", "pending")]
    assert set(store.transitions("run_1")[0]) == {"step_id", "status", "at", "retry_count",
                                                  "detail"}


def test_error_and_reason_are_stored(store: Store) -> None:
    store.create_run(new_run(), now=T0)
    store.apply("run_1", lifecycle("a")[:3] + [ev("a", S.ERROR, error=error_info())], now=T0)
    assert _step(store, "a").error == {
        "message": "boom", "stage": "execution", "category": "permanent",
        "details": {"stack_trace": None, "block_id": "a", "block_name": "A",
                    "error_code": "FUNCTION_RAISED", "context": {"line": 3}},
    }


def test_load_steps_carries_the_error_of_failed_steps(store: Store) -> None:
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


# ------------------------------------------------------------------ transitions


@pytest.mark.parametrize("events", [
    [ev("a", S.PENDING), ev("a", S.RUNNING)],                      # skips queued
    [ev("a", S.PENDING), ev("a", S.PENDING)],                      # created twice
    [ev("b", S.QUEUED)],                                           # never created
    [ev("a", S.PENDING), ev("a", S.QUEUED), ev("a", S.RUNNING),
     ev("a", S.COMPLETED), ev("a", S.RUNNING)],                    # leaves a terminal state
])
def test_illegal_transitions_write_nothing(store: Store, events: list[StepEvent]) -> None:
    store.create_run(new_run(), now=T0)
    store.apply("run_1", [ev("x", S.PENDING)], now=T0)
    with pytest.raises(IllegalTransition):
        store.apply("run_1", [ev("x", S.QUEUED), *events], RunUpdate(status=RunStatus.RUNNING),
                    now=T0 + 1)
    assert [(s.step_id, s.status) for s in store.load_steps("run_1")] == [("x", S.PENDING)]
    assert len(store.transitions("run_1")) == 1
    assert store.load_run("run_1").status is RunStatus.PENDING
    # the store is still usable and its view of the steps unchanged
    store.apply("run_1", [ev("x", S.QUEUED)], now=T0 + 2)
    assert store.load_steps("run_1")[0].status is S.QUEUED


def test_transitions_read_back_the_exact_time_of_every_move(store: Store) -> None:
    """A database store leaves out of a transition the time its row's columns hold
    (layout 8): creation, the first queue and start, the final status. Every other
    move keeps its own, and each reads back exactly."""
    t = [T0] + [T0 + i + 0.1234567 * i for i in range(1, 9)]  # a whole second, then not
    store.create_run(new_run(), now=t[0])
    store.apply("run_1", [ev(s, S.PENDING) for s in "abcdefg"], now=t[0])
    store.apply("run_1", lifecycle("a")[1:], now=t[1])                  # one batch
    store.apply("run_1", [ev("b", S.QUEUED)], now=t[1])
    store.apply("run_1", [ev("b", S.RUNNING)], now=t[2])                # a later batch
    store.apply("run_1", [ev("b", S.QUEUED, retry_count=1, error=error_info("flaky"))],
                now=t[3])
    store.apply("run_1", [ev("b", S.RUNNING, retry_count=1)], now=t[4])
    store.apply("run_1", [ev("b", S.QUEUED, retry_count=2), ev("b", S.RUNNING, retry_count=2),
                          ev("b", S.COMPLETED, retry_count=2)], now=t[5])
    store.apply("run_1", [ev("c", S.QUEUED), ev("c", S.RUNNING),
                          ev("c", S.AWAITING_REVIEW, outputs={})], now=t[2])
    store.apply("run_1", [ev("c", S.COMPLETED, outputs={})], now=t[6])
    store.apply("run_1", [ev("d", S.SKIPPED, reason="branch_not_selected: x")], now=t[3])
    store.apply("run_1", [ev("e", S.CANCELLED, reason="cancelled by user")], now=t[4])
    store.apply("run_1", [ev("f", S.QUEUED), ev("f", S.RUNNING)], now=t[5])
    store.apply("run_1", [ev("f", S.ERROR, error=error_info("dead"))], now=t[7])
    store.apply("run_1", [ev("h", S.PENDING, retry_count=3), ev("h", S.QUEUED, retry_count=3),
                          ev("h", S.RUNNING, retry_count=3)], now=t[8])
    moves = {(m["step_id"], i): (m["status"], m["at"], m["retry_count"],
                                 None if m["detail"] is None else sorted(m["detail"]))
             for i, m in enumerate(store.transitions("run_1"))}
    got: dict[str, list[tuple[object, ...]]] = {}
    for (step_id, _), move in moves.items():
        got.setdefault(step_id, []).append(move)
    err, why = ["error"], ["reason"]
    assert got == {
        "a": [("pending", t[0], 0, None), ("queued", t[1], 0, None),
              ("running", t[1], 0, None), ("completed", t[1], 0, None)],
        "b": [("pending", t[0], 0, None), ("queued", t[1], 0, None),
              ("running", t[2], 0, None), ("queued", t[3], 1, err),
              ("running", t[4], 1, None), ("queued", t[5], 2, None),
              ("running", t[5], 2, None), ("completed", t[5], 2, None)],
        "c": [("pending", t[0], 0, None), ("queued", t[2], 0, None),
              ("running", t[2], 0, None), ("awaiting_review", t[2], 0, None),
              ("completed", t[6], 0, None)],
        "d": [("pending", t[0], 0, None), ("skipped", t[3], 0, why)],
        "e": [("pending", t[0], 0, None), ("cancelled", t[4], 0, why)],
        "f": [("pending", t[0], 0, None), ("queued", t[5], 0, None),
              ("running", t[5], 0, None), ("error", t[7], 0, err)],
        "g": [("pending", t[0], 0, None)],
        "h": [("pending", t[8], 3, None), ("queued", t[8], 3, None),
              ("running", t[8], 3, None)],
    }
    assert all(type(m["at"]) is float and type(m["retry_count"]) is int
               for m in store.transitions("run_1"))


def test_illegal_move_of_a_persisted_step(store: Store) -> None:
    store.create_run(new_run(), now=T0)
    store.apply("run_1", lifecycle("a"), now=T0)
    with pytest.raises(IllegalTransition, match="state='completed'"):
        store.apply("run_1", [ev("a", S.QUEUED)], now=T0 + 1)


def test_concurrent_writers_on_one_store(store: Store) -> None:
    """Threads applying batches to their own runs through one store lose nothing."""
    for n in range(4):
        store.create_run(new_run(f"run_{n}"), now=T0)

    def write(run_id: str) -> None:
        for i in range(25):
            store.apply(run_id, lifecycle(f"s{i}", {"o": Payload.json(i)}), now=T0 + i)

    threads = [threading.Thread(target=write, args=(f"run_{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n in range(4):
        steps = store.load_steps(f"run_{n}")
        assert [s.step_id for s in steps] == [f"s{i}" for i in range(25)]
        assert {s.status for s in steps} == {S.COMPLETED}
        assert len(store.transitions(f"run_{n}")) == 100


# ------------------------------------------------------------------ payloads


def test_sourced_inputs_resolve_to_the_producer_output(store: Store) -> None:
    store.create_run(new_run(), now=T0)
    data = {"invoice": "INV-1", "lines": list(range(50))}
    store.apply("run_1", lifecycle("a", outputs={"output-json-0": Payload.json(data)}), now=T0)
    sourced = {"input-json-0": InputRecord(payload=Payload.json(data), source_step="a",
                                           source_handle="output-json-0"),
               "input-json-1": InputRecord(payload=Payload.json({"injected": True}))}
    store.apply("run_1", lifecycle("b", inputs=sourced), now=T0 + 1)
    assert _step(store, "b").inputs == {
        "input-json-0": {"type": "json", "data": data},
        "input-json-1": {"type": "json", "data": {"injected": True}}}
    step = ReadAPI(store).get_step("b", run_id="run_1")
    assert step.handle_inputs["input-json-0"].model_dump() == {"type": "json", "data": data}


def test_large_payloads_come_back(store: Store) -> None:
    store.create_run(new_run(), now=T0)
    big = {"text": "x" * (PAYLOAD_INLINE_LIMIT + 10)}
    small = {"n": 1}
    outputs = {"output-json-0": Payload.json(big), "output-json-1": Payload.json(small)}
    store.apply("run_1", lifecycle("a", outputs=outputs, control={"big": big}), now=T0)
    store.apply("run_1", lifecycle("b", inputs={
        "input-json-0": InputRecord(payload=Payload.json(big), source_step="a",
                                    source_handle="output-json-0"),
        "input-json-1": InputRecord(payload=Payload.json(big))}), now=T0)
    a = store.load_steps("run_1")[0]
    assert a.outputs == outputs and a.control == {"big": big}
    wire = {"type": "json", "data": big}
    reader = ReadAPI(store)
    assert reader.get_step("a").handle_outputs["output-json-0"].model_dump() == wire
    b = reader.get_step("b")
    assert b.handle_inputs["input-json-0"].model_dump() == wire
    assert b.handle_inputs["input-json-1"].model_dump() == wire


def test_file_payloads(store: Store) -> None:
    store.create_run(new_run(), now=T0)
    ref = store.files.put_bytes(b"%PDF-1.4 hello", "invoice.pdf")
    assert ref.mime_type == "application/pdf" and ref.id.startswith("file_")
    assert store.files.put_bytes(b"%PDF-1.4 hello", "again.pdf").id == ref.id
    store.apply("run_1", lifecycle("start", outputs={"output-file-0": Payload.file(ref)},
                                   block_type="start_document"), now=T0)
    [step] = store.load_steps("run_1")
    assert step.outputs["output-file-0"].document == ref
    document = step.outputs["output-file-0"].document or ref
    assert store.files.read_bytes(document) == b"%PDF-1.4 hello"


def test_artifacts_are_recorded_with_deterministic_ids(store_factory: StoreFactory) -> None:
    store = store_factory()
    store.create_run(new_run(), now=T0)
    artifact = {"operation": "function_invocation", "output": {"x": 1}}
    store.apply("run_1", lifecycle("a")[:3], now=T0)
    store.apply("run_1", [ev("a", S.COMPLETED, artifact=artifact)], now=T0 + 1)
    record = _step(store, "a")
    art_id = str(record.artifact_id)
    assert record.artifact_operation == "function_invocation"
    assert art_id.startswith("fninv_") and len(art_id) == len("fninv_") + 12
    found = ReadAPI(store).get_artifact(art_id)
    assert found["output"] == {"x": 1} and found["step_id"] == "a"
    assert store.read_artifact(art_id).record == artifact
    with pytest.raises(NotFoundError, match="Artifact ids"):
        store.read_artifact("art_missing")
    # same run, step and attempt -> same id (a resumed attempt overwrites its record)
    other = store_factory()
    other.create_run(new_run(), now=T0)
    other.apply("run_1", lifecycle("a")[:3] + [ev("a", S.COMPLETED, artifact=artifact)], now=T0)
    assert _step(other, "a").artifact_id == art_id


@pytest.mark.parametrize("artifact", [
    {"operation": "function_invocation", "inputs": {"n": 1}, "error": None, "stdout": None},
    {"operation": "extraction"},                                    # the operation alone
    {"output": 1, "operation": "extraction", "z": [None, {}]},      # not its first member
    {"operation": "extraction", "blob": "blob_x"},                  # the rest: a blob marker
    {"operation": "extraction", "blob": "blob_x", "more": 1},
    {"operation": "extraction", "data": "x" * (PAYLOAD_INLINE_LIMIT + 10)},  # in a blob
    {"operation": "é", "text": "ünïcode ✓", "nested": {"operation": "inner"}},
])
def test_an_artifact_reads_back_exactly_with_its_members_in_order(
        store: Store, artifact: dict[str, object]) -> None:
    """Since layout 8 a database store keeps a record without its leading ``operation``
    (the row holds it) and puts it back on read: the record, its member order included,
    is what the block returned."""
    import json

    store.create_run(new_run(), now=T0)
    store.apply("run_1", lifecycle("a")[:3] + [ev("a", S.COMPLETED, artifact=artifact)],
                now=T0)
    store.apply("run_1", lifecycle("b")[:3], now=T0)
    store.apply("run_1", [ev("b", S.COMPLETED, artifact=artifact)], now=T0 + 1)
    for step_id in ("a", "b"):
        art_id = str(_step(store, step_id).artifact_id)
        record = store.read_artifact(art_id).record
        assert json.dumps(record) == json.dumps(artifact)
        found = ReadAPI(store).get_artifact(art_id)
        assert list(found)[:len(artifact)] == list(artifact)
        assert found["operation"] == artifact["operation"]


def test_a_step_created_with_its_artifact_in_one_batch_keeps_it(store: Store) -> None:
    """Steps are created ``pending`` before they run, but a batch may also create a step
    and record its artifact (a database store then names it once the row exists; on
    PostgreSQL that batch is pipelined instead of one statement)."""
    store.create_run(new_run(), now=T0)
    artifact = {"operation": "extraction", "output": {"x": 1}}
    store.apply("run_1", lifecycle("a")[:3] + [ev("a", S.COMPLETED, artifact=artifact)],
                now=T0)
    art_id = str(_step(store, "a").artifact_id)
    assert art_id.startswith("extr_") and len(art_id) == len("extr_") + 12
    assert store.read_artifact(art_id).record == artifact


def _retried_with_artifacts(store: Store, step_id: str, final_attempt: int) -> tuple[str, str]:
    """``step_id`` records an artifact with its retry (attempt 1), then completes at
    ``final_attempt`` with another; the two artifact ids."""
    store.apply("run_1", lifecycle(step_id)[:3], now=T0)
    store.apply("run_1", [ev(step_id, S.QUEUED, retry_count=1,
                             artifact={"operation": "extraction", "n": 1})], now=T0 + 1)
    first = str(_step(store, step_id).artifact_id)
    store.apply("run_1", [ev(step_id, S.RUNNING, retry_count=1),
                          ev(step_id, S.COMPLETED, retry_count=final_attempt,
                             artifact={"operation": "extraction", "n": 2})], now=T0 + 2)
    return first, str(_step(store, step_id).artifact_id)


def test_a_later_attempt_replaces_the_record_of_the_earlier_one(store: Store) -> None:
    store.create_run(new_run(), now=T0)
    first, again = _retried_with_artifacts(store, "a", final_attempt=1)
    assert again == first  # the same attempt: its record is replaced
    assert store.read_artifact(first).record["n"] == 2
    earlier, later = _retried_with_artifacts(store, "b", final_attempt=2)
    assert later != earlier and store.read_artifact(later).record["n"] == 2
    with pytest.raises(NotFoundError):
        store.read_artifact(earlier)


def test_the_artifact_id_of_a_deleted_run_names_nothing_afterwards(store: Store) -> None:
    """SQLite gives the highest free rowid again: a step row taking the ``seq`` of a
    deleted one must not answer the deleted record's id."""
    store.create_run(new_run("run_1"), now=T0)
    store.apply("run_1", lifecycle("a")[:3] + [
        ev("a", S.COMPLETED, artifact={"operation": "extraction", "run": 1})],
        RunUpdate(status=RunStatus.COMPLETED), now=T0)
    gone = str(_step(store, "a").artifact_id)
    store.delete_run("run_1")
    store.create_run(new_run("run_2"), now=T0)
    store.apply("run_2", lifecycle("a")[:3] + [
        ev("a", S.COMPLETED, artifact={"operation": "extraction", "run": 2})], now=T0)
    kept = str(_step(store, "a", "run_2").artifact_id)
    assert store.read_artifact(kept).record["run"] == 2
    with pytest.raises(NotFoundError):
        store.read_artifact(gone)


def test_artifact_without_operation_is_rejected(store: Store) -> None:
    store.create_run(new_run(), now=T0)
    store.apply("run_1", lifecycle("a")[:3], now=T0)
    with pytest.raises(StorageError, match="operation"):
        store.apply("run_1", [ev("a", S.COMPLETED, artifact={"x": 1})], now=T0)
    assert store.load_steps("run_1")[0].status is S.RUNNING


def test_non_json_output_is_a_storage_error(store: Store) -> None:
    store.create_run(new_run(), now=T0)
    store.apply("run_1", lifecycle("a")[:3], now=T0)
    with pytest.raises(StorageError, match="JSON-compatible"):
        store.apply("run_1", [ev("a", S.COMPLETED, cost={"x": object()})], now=T0)
    assert store.load_steps("run_1")[0].status is S.RUNNING
    with pytest.raises(StorageError, match="JSON-compatible"):
        store.create_run(new_run("run_2", inputs={"start": object()}), now=T0)


def test_loop_scope_is_stored(store: Store) -> None:
    store.create_run(new_run(), now=T0)
    scope = (frame("outer", 0), frame("inner", 2))
    store.apply("run_1", [ev("outer_iter_0_inner_iter_2_leaf", S.PENDING, block_id="leaf",
                             scope=scope)], now=T0)
    loops = ReadAPI(store).get_step("outer_iter_0_inner_iter_2_leaf").loop_containers
    assert [(c.container_id, c.iteration) for c in loops] == [("outer", 0), ("inner", 2)]


def test_file_ref_payload_round_trip(store: Store) -> None:
    ref = FileRef(id="file_" + "0" * 24, filename="a.txt", mime_type="text/plain")
    store.create_run(new_run(), now=T0)
    store.apply("run_1", lifecycle("a", outputs={"output-file-0": Payload.file(ref)}), now=T0)
    assert store.load_steps("run_1")[0].outputs["output-file-0"] == Payload.file(ref)


def test_large_run_outputs_come_back_inline(store: Store) -> None:
    store.create_run(new_run(), now=T0)
    big = {"output-json-0": {"type": "json", "data": "y" * (PAYLOAD_INLINE_LIMIT + 1)}}
    store.apply("run_1", [], RunUpdate(status=RunStatus.COMPLETED, outputs={"end": big}),
                now=T0)
    assert ReadAPI(store).get_run("run_1").outputs == {"end": big}


def test_records_are_copies(store: Store) -> None:
    """Changing what a store returned changes nothing stored."""
    store.create_run(new_run(), now=T0)
    store.apply("run_1", lifecycle("a", {"o": Payload.json({"n": [1]})}, control={"c": [1]}),
                now=T0)
    store.load_steps("run_1")[0].outputs["o"].data["n"].append(2)
    store.read_step("a").outputs["o"]["data"]["n"].append(3)
    store.load_run("run_1").inputs["start"]["a"] = 2
    assert store.load_steps("run_1")[0].outputs["o"].data == {"n": [1]}
    assert store.load_run("run_1").inputs == {"start": {"a": 1}}
