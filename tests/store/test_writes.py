"""The write path's shortcuts agree with what they stand for."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.contracts.artifacts import artifact_id
from engine.contracts.errors import ErrorCategory, ErrorStage, StorageError
from engine.contracts.events import InputRecord, StepErrorInfo, StepEvent
from engine.contracts.values import LEGAL_MOVES, Payload, StepStatus
from store.stepdata import TAG_DIGITS, artifact_stub, in_row_id
from tests.store.helpers import T0


@pytest.mark.parametrize("operation", ["function_invocation", "extraction", "plugin_op"])
@pytest.mark.parametrize("attempt", [0, 3])
def test_artifact_stub_is_the_ids_prefix_and_tag(operation: str, attempt: int) -> None:
    ev = StepEvent(step_id="s1", block_id="b", block_type="function", label="b",
                   status=StepStatus.COMPLETED, retry_count=attempt,
                   artifact={"operation": operation})
    stub, op = artifact_stub("run-1", ev)
    full = artifact_id(operation, "run-1", "s1", attempt)
    prefix, _, digits = full.partition("_")
    assert (stub, op) == (f"{prefix}_{digits[:TAG_DIGITS]}", operation)


@pytest.mark.parametrize("artifact", [{}, {"operation": ""}, {"operation": 3}])
def test_artifact_stub_without_an_operation_names_the_step(artifact: dict) -> None:
    ev = StepEvent(step_id="s1", block_id="b", block_type="function", label="b",
                   status=StepStatus.COMPLETED, artifact=artifact)
    with pytest.raises(StorageError, match="'s1'"):
        artifact_stub("run-1", ev)


def test_an_int_now_reads_back_as_float_times_on_every_transition() -> None:
    """Times the trail keeps and times the view reads from a step's columns look alike."""
    from store.sqlite import SQLiteStore
    from tests.store.helpers import ev, lifecycle, new_run

    with SQLiteStore(":memory:") as store:
        store.create_run(new_run(), now=1_780_000_000)
        store.apply("run_1", lifecycle("a")[:3], now=1_780_000_000)
        # a retry keeps its times in the trail; the first queue and start do not
        store.apply("run_1", [ev("a", StepStatus.QUEUED, retry_count=1),
                              ev("a", StepStatus.RUNNING, retry_count=1)], now=1_780_000_001)
        store.apply("run_1", [ev("a", StepStatus.COMPLETED, retry_count=1, outputs={})],
                    now=1_780_000_002)
        moves = store.transitions("run_1")
    assert [(m["status"], m["at"]) for m in moves] == [
        ("pending", 1_780_000_000.0), ("queued", 1_780_000_000.0),
        ("running", 1_780_000_000.0), ("queued", 1_780_000_001.0),
        ("running", 1_780_000_001.0), ("completed", 1_780_000_002.0)]
    assert all(type(m["at"]) is float for m in moves)


def test_new_rows_of_mixed_shapes_keep_their_order_and_columns(monkeypatch) -> None:
    """A batch creating rows of several shapes (a loop's iterations) goes as multi-row
    inserts in chunks; seq, status, scope, inputs, outputs and times come out as one
    insert per row would write them."""
    from store import writes
    from store.sqlite import SQLiteStore
    from tests.store.helpers import S, ev, frame, new_run

    monkeypatch.setattr(writes, "INSERT_CHUNK", 4)  # several chunks, one partial
    events = []
    for i in range(5):
        scope = (frame("each", i),)
        events += [ev(f"s{i}", S.PENDING, scope=scope), ev(f"b{i}", S.PENDING, scope=scope),
                   ev(f"e{i}", S.PENDING, scope=scope)]
        events += [ev(f"s{i}", S.QUEUED), ev(f"s{i}", S.RUNNING),
                   ev(f"s{i}", S.COMPLETED, outputs={"out": Payload.json({"i": i})})]
        events += [ev(f"b{i}", S.QUEUED), ev(f"b{i}", S.RUNNING)]
    with SQLiteStore(":memory:") as store:
        store.create_run(new_run(), now=T0)
        store.apply("run_1", events, now=T0)
        conn = store.db.conn
        rows = conn.execute("SELECT step_id, status, scope, outputs, started_at, "
                            "completed_at, reserve IS NOT NULL FROM steps ORDER BY seq"
                            ).fetchall()
    assert [r[0] for r in rows] == [f"{p}{i}" for i in range(5) for p in "sbe"]
    for i in range(5):
        start, body, end = rows[3 * i:3 * i + 3]
        assert json.loads(start[2]) == [frame("each", i).to_dict()]
        assert start[1:2] == ("completed",) and json.loads(start[3]) == {
            "out": {"type": "json", "data": {"i": i}}}
        assert (start[5], start[6]) == (T0, 0)  # ended: no room kept
        assert body[1] == "running" and body[4] == T0 and body[5] is None and body[6] == 1
        assert end[1] == "pending" and end[3] is None and end[6] == 1


def test_a_mixed_insert_of_an_existing_step_is_stale() -> None:
    """A row another process created first fails the multi-row insert like a single one
    (StaleStatuses: the batch is planned again) and leaves nothing of the batch."""
    from store.sqlite import SQLiteStore
    from store.writes import StaleStatuses, StepWriter
    from tests.store.helpers import S, ev, new_run

    with SQLiteStore(":memory:") as store:
        store.create_run(new_run(), now=T0)
        store.apply("run_1", [ev("b", S.PENDING)], now=T0)
        writer = StepWriter(store.local_files)
        plan = writer.plan("run_1", [ev("a", S.PENDING), ev("a", S.QUEUED),
                                     ev("b", S.PENDING)], {}, T0)
        conn = store.db.conn
        with pytest.raises(StaleStatuses):
            conn.execute("BEGIN IMMEDIATE")
            try:
                writer.write(conn, "run_1", plan, None, T0)
            finally:
                conn.execute("ROLLBACK")
        assert conn.execute("SELECT step_id FROM steps").fetchall() == [("b",)]


def test_a_write_tried_again_in_a_new_transaction_writes_the_same_rows() -> None:
    """``Database.write`` runs the writer again when ``SQLITE_BUSY`` rolls a
    transaction back: a plan written twice gives the rows and artifact ids one write
    gives (ids made from a stub and the row's seq only once)."""
    from store.sqlite import SQLiteStore
    from store.writes import StepWriter
    from tests.store.helpers import S, ev, frame, in_row_artifact_id, new_run

    record = {"operation": "function_invocation"}
    inner = (frame("loop", 0),)
    events = [ev("a", S.RUNNING), ev("a", S.COMPLETED, artifact=record),
              *[ev("loop_iter_0_b", status, scope=inner)
                for status in (S.PENDING, S.QUEUED, S.RUNNING)],
              ev("loop_iter_0_b", S.COMPLETED, scope=inner, artifact=record)]
    with SQLiteStore(":memory:") as store:
        store.create_run(new_run(), now=T0)
        store.apply("run_1", [ev("a", S.PENDING), ev("a", S.QUEUED)], now=T0)
        writer = StepWriter(store.local_files)
        plan = writer.plan("run_1", events, {"a": S.QUEUED}, T0)
        conn = store.db.conn
        for last in (False, True):
            conn.execute("BEGIN IMMEDIATE")
            created = writer.write(conn, "run_1", plan, None, T0)  # seqs looked up
            conn.execute("COMMIT" if last else "ROLLBACK")
        rows = conn.execute("SELECT step_id, seq, status, artifact_id FROM steps "
                            "ORDER BY seq").fetchall()
    assert [r[:3] for r in rows] == [("a", 1, "completed"), ("loop_iter_0_b", 2, "completed")]
    assert created == [("loop_iter_0_b", 2)]
    for step_id, seq, _, made in rows:
        assert made == in_row_artifact_id("function_invocation", seq, "run_1", step_id, 0)


def test_a_move_of_a_step_without_a_row_is_stale() -> None:
    """A plan moving a step whose row is gone (another process deleted it) writes
    nothing: StaleStatuses, and the batch is planned again from the database."""
    from store.sqlite import SQLiteStore
    from store.writes import StaleStatuses, StepWriter
    from tests.store.helpers import S, ev, new_run

    with SQLiteStore(":memory:") as store:
        store.create_run(new_run(), now=T0)
        store.apply("run_1", [ev("a", S.PENDING), ev("b", S.PENDING)], now=T0)
        writer = StepWriter(store.local_files)
        plan = writer.plan("run_1", [ev("a", S.QUEUED), ev("gone", S.QUEUED)],
                           {"a": S.PENDING, "gone": S.PENDING}, T0)
        conn = store.db.conn
        for seqs in ({"a": 1}, {"a": 1, "gone": 2}):  # looked up, or stale in the map
            conn.execute("BEGIN IMMEDIATE")
            try:
                with pytest.raises(StaleStatuses):
                    writer.write(conn, "run_1", plan, None, T0, seqs=seqs)
            finally:
                conn.execute("ROLLBACK")
        assert conn.execute("SELECT step_id, status FROM steps ORDER BY seq").fetchall() == [
            ("a", "pending"), ("b", "pending")]


def test_a_long_stretch_of_one_shape_between_mixed_rows_keeps_the_order() -> None:
    """Rows of one shape in a long stretch (executemany) and the mixed rows around it
    (multi-row inserts) are numbered in the order the batch created them."""
    from store.sqlite import SQLiteStore
    from tests.store.helpers import S, ev, new_run

    started = [ev("a", S.PENDING), ev("a", S.QUEUED), ev("a", S.RUNNING)]
    waiting = [ev(f"w{i}", S.PENDING) for i in range(6)]
    events = [*started, *waiting, ev("c", S.PENDING), ev("c", S.QUEUED),
              ev("d", S.PENDING), ev("e", S.PENDING)]
    with SQLiteStore(":memory:") as store:
        store.create_run(new_run(), now=T0)
        store.apply("run_1", events, now=T0)
        rows = store.db.conn.execute("SELECT step_id, status FROM steps ORDER BY seq"
                                     ).fetchall()
    assert rows == [("a", "running"), *[(f"w{i}", "pending") for i in range(6)],
                    ("c", "queued"), ("d", "pending"), ("e", "pending")]


def test_mixed_inserts_fit_the_999_parameters_of_older_sqlite() -> None:
    """SQLite builds before 3.32 allow 999 parameters per statement: a batch of many
    rows of alternating shapes still goes in (in chunks that bind fewer)."""
    import sqlite3

    from store.sqlite import SQLiteStore
    from tests.store.helpers import S, ev, frame, new_run

    events = []
    for i in range(100):
        scope = (frame("each", i),)
        events += [ev(f"s{i}", S.PENDING, scope=scope), ev(f"b{i}", S.PENDING, scope=scope)]
        events += [ev(f"s{i}", S.QUEUED, inputs={}), ev(f"s{i}", S.RUNNING),
                   ev(f"s{i}", S.COMPLETED, outputs={"out": Payload.json(i)}, model="m",
                      tokens={"total_tokens": 1}, cost={"total": 0}, trace_spans=[],
                      control={"k": 1}, artifact={"operation": "function_invocation"})]
    with SQLiteStore(":memory:") as store:
        store.create_run(new_run(), now=T0)
        conn = store.db.conn
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
        store.apply("run_1", events, now=T0)
        count = conn.execute("SELECT count(*) FROM steps").fetchone()[0]
    assert count == 200


@pytest.mark.parametrize("seq", [1, 255, 2**24 - 1, 2**24, 2**40 + 7])
def test_an_in_row_id_made_in_python_is_the_one_sql_makes(seq: int) -> None:
    """The ids SQLite stores made in SQL before and the ones made in Python now are the
    same (rows written by either are read alike)."""
    stub = "fninv_3f9a0c"
    conn = sqlite3.connect(":memory:")
    made = conn.execute("SELECT substr(?1, 1, length(?1) - 6) || printf('%06x', ?2) "
                        "|| substr(?1, -6)", (stub, seq)).fetchone()[0]
    conn.close()
    assert in_row_id(stub, seq) == made
    assert made.startswith("fninv_") and made.endswith("3f9a0c")


_OPTIONAL_FIELDS: dict[str, Any] = {
    "inputs": {"in": InputRecord(payload=Payload.json(1))},
    "outputs": {"out": Payload.json({"n": 1})},
    "error": StepErrorInfo(message="m", stage=ErrorStage.EXECUTION,
                           category=ErrorCategory.PERMANENT),
    "reason": "why", "artifact": {"operation": "function_invocation", "x": 1},
    "model": "m", "tokens": {"total_tokens": 3}, "cost": {"total": 1.0},
    "trace_spans": [{"name": "s"}], "control": {"k": 1},
}
@settings(max_examples=300, deadline=None)
@given(st.sampled_from([None, StepStatus.PENDING, StepStatus.QUEUED, StepStatus.RUNNING]),
       st.lists(st.tuples(st.integers(0, 4), st.sets(st.sampled_from(sorted(_OPTIONAL_FIELDS)))),
                min_size=1, max_size=4))
def test_a_statement_s_shape_is_the_columns_its_plan_filled(
        start: StepStatus | None, moves: list[tuple[int, set[str]]]) -> None:
    """``StepChange.set`` (the statement's shape) marks exactly the columns the plan and
    the write gave a value, whatever the moves and fields folded into one change: an
    update's, and a new row's (``start`` None: created in the batch)."""
    from store.files import LocalFileStore
    from store.writes import _INSERT_OPTIONAL, StepWriter

    writer = StepWriter(LocalFileStore(":memory:"))
    events = []
    if start is None:
        events.append(StepEvent(step_id="s", block_id="s", block_type="function", label="S",
                                status=StepStatus.PENDING))
    status = start or StepStatus.PENDING
    for pick, names in moves:
        choices = sorted(LEGAL_MOVES[status])  # none from an ended step
        if not choices:
            break
        status = choices[pick % len(choices)]
        fields = {name: _OPTIONAL_FIELDS[name] for name in names}
        events.append(StepEvent(step_id="s", block_id="s", block_type="function", label="S",
                                status=status, retry_count=0, **fields))
    plan = writer.plan("run_1", events, {} if start is None else {"s": start}, T0)
    change = plan.changes["s"]
    if start is not None:
        filled = [change.cols[i] is not None for i in range(3, 19)]
        assert [bool(change.set >> i & 1) for i in range(3, 19)] == filled
        return
    from store.sqlite import SQLiteStore
    from store.writes import _COLUMN_NAMES
    from tests.store.helpers import new_run

    with SQLiteStore(":memory:") as store:
        store.create_run(new_run(), now=T0)
        conn = store.db.conn
        conn.execute("BEGIN IMMEDIATE")
        writer.write(conn, "run_1", plan, None, T0)
        conn.execute("COMMIT")
        names = ", ".join(_COLUMN_NAMES[i] for i in _INSERT_OPTIONAL)
        row = conn.execute(f"SELECT {names} FROM steps WHERE step_id = 's'").fetchone()
    # a column the plan gave a value is written (one it did not stays NULL)
    assert [value is not None for value in row] == [
        change.cols[i] is not None for i in _INSERT_OPTIONAL]
