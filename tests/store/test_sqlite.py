"""SQLite specifics: WAL, durability modes, columns as stored, several processes on one
file, error messages. What every store does is in the contract suite (``test_contract*``)."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sqlite3
import stat
import tempfile
from pathlib import Path

import pytest

from engine.contracts.artifacts import artifact_id
from engine.contracts.errors import (
    IllegalTransition,
    NotFoundError,
    StorageError,
    UsageError,
)
from engine.contracts.events import InputRecord, RunUpdate
from engine.contracts.values import Payload, RunStatus
from store.codec import PAYLOAD_INLINE_LIMIT
from store.layout import SCHEMA_VERSION
from store.sqlite import SQLiteStore
from store.writes import RESERVE, RESERVE_AHEAD
from tests.store.helpers import (
    T0,
    S,
    error_info,
    ev,
    frame,
    in_row_artifact_id,
    lifecycle,
    new_run,
    write_steps_in_process,
)


def _raw(store: SQLiteStore, sql: str, *params: object) -> list[tuple[object, ...]]:
    return store.db.conn.execute(sql, params).fetchall()


def test_wal_mode_and_busy_timeout(file_store: SQLiteStore) -> None:
    conn = file_store.db.conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 30_000
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1   # NORMAL
    # the file on disk is WAL for every other connection too
    other = sqlite3.connect(file_store.path)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()


@pytest.mark.parametrize(("durability", "synchronous", "fsync"),
                         [("process", 1, True), ("full", 2, True), ("scratch", 0, False)])
def test_durability_is_the_connections_synchronous(tmp_path: Path, durability: str,
                                                    synchronous: int, fsync: bool) -> None:
    with SQLiteStore(tmp_path / f"{durability}.db", durability=durability) as store:
        assert store.db.conn.execute("PRAGMA synchronous").fetchone()[0] == synchronous
        assert store.durability == durability
        checkpointer = store._checkpointer
        assert checkpointer is not None and checkpointer.fsync is fsync
        # only under full durability does the store's connection finish each checkpoint
        assert checkpointer.writer is (store.db.conn if durability == "full" else None)
        own = checkpointer.connection()  # what the checkpoint thread opens
        try:
            # a connection's default is FULL: only scratch turns the checkpoints' fsync off
            assert own.execute("PRAGMA synchronous").fetchone()[0] == (2 if fsync else 0)
        finally:
            own.close()
        store.create_run(new_run("run_a"), now=T0)
        store.apply("run_a", [ev("a", S.PENDING)], now=T0)
    # what was committed is in the file, whatever the durability
    with SQLiteStore(tmp_path / f"{durability}.db") as store:
        assert [s.step_id for s in store.load_steps("run_a")] == ["a"]


def test_an_unknown_durability_names_the_choices(tmp_path: Path) -> None:
    from engine.core import Engine

    for open_it in (lambda: SQLiteStore(tmp_path / "x.db", durability="sometimes"),
                    lambda: Engine(tmp_path / "x.db", durability="sometimes")):
        with pytest.raises(UsageError, match="'process' \\(the default\\), 'full' or 'scratch'"):
            open_it()
    assert not (tmp_path / "x.db").exists()


def test_schema_tables_and_indexes(file_store: SQLiteStore) -> None:
    names = {r[0] for r in file_store.db.conn.execute("SELECT name FROM sqlite_master")}
    assert {"runs", "steps", "transitions", "artifacts", "workflows", "reviews"} <= names
    assert {"ux_steps_step_run", "ix_steps_run_seq", "ix_runs_org_created"} <= names
    kind = file_store.db.conn.execute(
        "SELECT type FROM sqlite_master WHERE name = 'transitions'").fetchone()[0]
    assert kind == "view"  # over steps.trail: a transition costs no row of its own
    assert file_store.db.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_database_with_another_layout_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE steps (seq INTEGER PRIMARY KEY, run_id TEXT)")
    conn.execute("CREATE TABLE transitions (run_id TEXT, step_id TEXT, seq INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match="another storage layout.*new file"):
        SQLiteStore(path)
    assert {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")} == {
        "steps", "transitions"}  # untouched


def test_data_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "db" / "nested" / "stepwell.db"      # folders are created
    with SQLiteStore(path) as store:
        store.create_run(new_run(), now=T0)
        store.apply("run_1", lifecycle("a"), now=T0)
    with SQLiteStore(path) as store:
        assert [s.status for s in store.load_steps("run_1")] == [S.COMPLETED]
        assert store.load_run("run_1").status is RunStatus.PENDING


def test_two_processes_write_one_file_concurrently(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")          # created by the children, concurrently
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Event()
        with ctx.Pool(2) as pool:
            results = [pool.apply_async(write_steps_in_process, (path, f"run_{n}", 200, start))
                       for n in range(2)]
            start.set()
            assert [r.get(timeout=300) for r in results] == [200, 200]
    with SQLiteStore(path) as store:
        for n in range(2):
            steps = store.load_steps(f"run_{n}")
            assert len(steps) == 200
            assert {s.status for s in steps} == {S.COMPLETED}
            assert steps[7].outputs["output-json-0"].data == {"i": 7, "run": f"run_{n}"}
        assert len(store.transitions("run_0")) == len(store.transitions("run_1")) == 800


def _open_as_unprivileged(path: str) -> str:
    """Try to open a store at ``path`` in a forked child running as 'nobody'."""
    SQLiteStore(":memory:").close()           # load every module before dropping rights
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        message = "opened"
        try:
            os.setgid(65534)
            os.setuid(65534)
            SQLiteStore(path).close()
        except StorageError as exc:
            message = f"StorageError: {exc}"
        except BaseException as exc:  # noqa: BLE001 - report anything to the parent
            message = f"{type(exc).__name__}: {exc}"
        os.write(write_fd, message.encode())
        os._exit(0)
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 65536):
        chunks.append(chunk)
    os.close(read_fd)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()


def test_read_only_folder_says_what_to_do(tmp_path: Path) -> None:
    folder = Path(tempfile.mkdtemp(prefix="stepwell-ro-"))    # traversable by 'nobody'
    try:
        os.chmod(folder, stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP
                 | stat.S_IROTH | stat.S_IXOTH)
        path = str(folder / "stepwell.db")
        if os.geteuid() == 0:
            outcome = _open_as_unprivileged(path)   # root ignores permission bits
        else:
            try:
                SQLiteStore(path).close()
                outcome = "opened"
            except StorageError as exc:
                outcome = f"StorageError: {exc}"
        assert outcome.startswith("StorageError: cannot write"), outcome
        assert path in outcome
        assert "choose a writable --db path" in outcome
    finally:
        os.chmod(folder, stat.S_IRWXU)
        shutil.rmtree(folder)


def test_path_under_a_file_says_what_to_do(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="choose a writable --db path"):
        SQLiteStore(blocker / "stepwell.db")


def test_garbage_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match="not a stepwell database"):
        SQLiteStore(path)


def test_wal_is_checkpointed_in_the_background(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.db"
    with SQLiteStore(path) as store:
        store.create_run(new_run(), now=T0)
        for i in range(600):
            store.apply("run_1", lifecycle(f"s{i}"), now=T0)
        wal_pages = os.path.getsize(f"{path}-wal") // 4096
    # without checkpoints 600 commits of ~8 pages would leave ~4800 pages
    assert wal_pages < 4000


def test_a_definition_is_stored_once_and_heartbeats_leave_it_alone(tmp_path: Path) -> None:
    big = {"blocks": [{"id": f"b{i}", "type": "function", "config": {"x": "y" * 200}}
                      for i in range(200)]}
    with SQLiteStore(tmp_path / "d.db") as store:
        store.create_run(new_run("run_a", definition=big), now=T0)
        store.create_run(new_run("run_b", definition=big), now=T0)
        store.create_run(new_run("run_c", definition={"blocks": []}), now=T0)
        conn = store.db.conn
        assert conn.execute("SELECT count(*) FROM definitions").fetchone()[0] == 2
        assert store.load_run("run_b").definition == big
        assert store.load_run("run_c").definition == {"blocks": []}
        # the runs row holds no definition: it stays one small row however big the workflow
        row_bytes = conn.execute("SELECT length(inputs) + length(metadata) + "
                                 "length(definition_id) FROM runs WHERE id = 'run_a'").fetchone()[0]
        assert row_bytes < 200


# ------------------------------------------------------------------ columns as stored


def test_run_update_columns(file_store: SQLiteStore) -> None:
    file_store.create_run(new_run(), now=T0)
    file_store.apply("run_1", [], RunUpdate(status=RunStatus.RUNNING), now=T0 + 1)
    file_store.apply("run_1", [ev("hil", S.PENDING)], RunUpdate(
        status=RunStatus.AWAITING_REVIEW, waiting_for_block_ids=["hil"]), now=T0 + 2)
    row = _raw(file_store, "SELECT status, started_at, waiting_for FROM runs")[0]
    assert row == ("awaiting_review", T0 + 1, '["hil"]')
    file_store.apply("run_1", [], RunUpdate(status=RunStatus.RUNNING), now=T0 + 3)
    file_store.apply("run_1", [ev("hil", S.CANCELLED, reason="cancelled_by_user")], RunUpdate(
        status=RunStatus.ERROR, failing_step_id="hil", error=error_info("bad"),
        outputs={"end": {"x": 1}}), now=T0 + 4)
    status, started, completed, failing, error, waiting, outputs = _raw(
        file_store, "SELECT status, started_at, completed_at, failing_step_id, error, "
        "waiting_for, outputs FROM runs")[0]
    assert (status, started, completed, failing, waiting) == ("error", T0 + 1, T0 + 4, "hil", None)
    assert json.loads(str(error))["details"]["block_id"] == "hil"
    assert json.loads(str(outputs)) == {"end": {"x": 1}}
    assert file_store.load_run("run_1").status is RunStatus.ERROR


def test_full_lifecycle_columns(file_store: SQLiteStore) -> None:
    file_store.create_run(new_run(), now=T0)
    out = {"output-json-0": Payload.json({"total": 3})}
    file_store.apply("run_1", lifecycle("a")[:3], now=T0)
    file_store.apply("run_1", [ev("a", S.COMPLETED, outputs=out, model="gpt",
                                  tokens={"total_tokens": 5},
                                  cost={"total": 0.1, "currency": "USD"},
                                  trace_spans=[{"name": "call"}])], now=T0 + 2)
    [step] = file_store.load_steps("run_1")
    assert step.status is S.COMPLETED
    assert step.outputs == out
    row = _raw(file_store, "SELECT created_at, queued_at, started_at, completed_at, duration_ms, "
               "model, tokens FROM steps")[0]
    assert row == (T0, T0, T0, T0 + 2, 2000, "gpt", '{"total_tokens":5}')
    assert [t["status"] for t in file_store.transitions("run_1")] == [
        "pending", "queued", "running", "completed"]


def test_retry_columns_and_transition_numbers(file_store: SQLiteStore) -> None:
    file_store.create_run(new_run(), now=T0)
    file_store.apply("run_1", lifecycle("a")[:3], now=T0)
    file_store.apply("run_1", [ev("a", S.QUEUED, retry_count=1, error=error_info("timeout"))],
                     now=T0 + 1)
    file_store.apply("run_1", [ev("a", S.RUNNING, retry_count=1)], now=T0 + 2)
    file_store.apply("run_1", [ev("a", S.COMPLETED, retry_count=1)], now=T0 + 3)
    [step] = file_store.load_steps("run_1")
    assert step.retry_count == 1
    trail = file_store.transitions("run_1", "a")
    assert [(t["status"], t["retry_count"]) for t in trail] == [
        ("pending", 0), ("queued", 0), ("running", 0), ("queued", 1), ("running", 1),
        ("completed", 1)]
    assert trail[3]["detail"]["error"]["message"] == "timeout"
    seqs = [r[0] for r in _raw(file_store, "SELECT seq FROM transitions ORDER BY seq")]
    assert seqs == list(range(6))
    assert trail[3]["detail"]["error"]["details"]["error_code"] == "FUNCTION_RAISED"
    # first queue/start times are kept; duration spans every attempt
    assert _raw(file_store, "SELECT queued_at, started_at, duration_ms FROM steps")[0] == (
        T0, T0, 3000)


def test_error_column(file_store: SQLiteStore) -> None:
    file_store.create_run(new_run(), now=T0)
    file_store.apply("run_1", lifecycle("a")[:3] + [ev("a", S.ERROR, error=error_info())], now=T0)
    error = json.loads(str(_raw(file_store, "SELECT error FROM steps")[0][0]))
    assert error == {
        "message": "boom", "stage": "execution", "category": "permanent",
        "details": {"stack_trace": None, "block_id": "a", "block_name": "A",
                    "error_code": "FUNCTION_RAISED", "context": {"line": 3}},
    }


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


def test_sourced_inputs_are_stored_as_references(file_store: SQLiteStore) -> None:
    file_store.create_run(new_run(), now=T0)
    data = {"invoice": "INV-1", "lines": list(range(50))}
    file_store.apply("run_1", lifecycle("a", outputs={"output-json-0": Payload.json(data)}), now=T0)
    sourced = {"input-json-0": InputRecord(payload=Payload.json(data), source_step="a",
                                           source_handle="output-json-0"),
               "input-json-1": InputRecord(payload=Payload.json({"injected": True}))}
    file_store.apply("run_1", lifecycle("b", inputs=sourced), now=T0 + 1)
    raw = json.loads(str(_raw(file_store, "SELECT inputs FROM steps WHERE step_id = 'b'")[0][0]))
    assert raw == {"input-json-0": {"ref": ["a", "output-json-0"]},
                   "input-json-1": {"type": "json", "data": {"injected": True}}}
    step = file_store.reader().get_step("b", run_id="run_1")
    assert step.handle_inputs["input-json-0"].model_dump() == {"type": "json", "data": data}
    assert step.handle_inputs["input-json-1"].model_dump() == {
        "type": "json", "data": {"injected": True}}


def test_large_payloads_go_to_blobs_and_come_back(file_store: SQLiteStore) -> None:
    file_store.create_run(new_run(), now=T0)
    big = {"text": "x" * (PAYLOAD_INLINE_LIMIT + 10)}
    small = {"n": 1}
    outputs = {"output-json-0": Payload.json(big), "output-json-1": Payload.json(small)}
    file_store.apply("run_1", lifecycle("a", outputs=outputs), now=T0)
    file_store.apply("run_1", lifecycle("b", inputs={
        "input-json-0": InputRecord(payload=Payload.json(big), source_step="a",
                                    source_handle="output-json-0"),
        "input-json-1": InputRecord(payload=Payload.json(big))}), now=T0)
    raw_out, raw_in = _raw(file_store, "SELECT outputs, inputs FROM steps ORDER BY seq")[0][0], \
        _raw(file_store, "SELECT inputs FROM steps ORDER BY seq")[1][0]
    stored = json.loads(str(raw_out))
    assert set(stored["output-json-0"]) == {"blob"}
    assert stored["output-json-1"] == {"type": "json", "data": small}
    assert len(str(raw_out)) < 1000 and len(str(raw_in)) < 1000
    assert file_store.load_steps("run_1")[0].outputs == outputs
    reader = file_store.reader()
    wire = {"type": "json", "data": big}
    assert reader.get_step("a").handle_outputs["output-json-0"].model_dump() == wire
    b = reader.get_step("b")
    assert b.handle_inputs["input-json-0"].model_dump() == wire
    assert b.handle_inputs["input-json-1"].model_dump() == wire


def test_artifact_columns(file_store: SQLiteStore) -> None:
    file_store.create_run(new_run(), now=T0)
    artifact = {"operation": "function_invocation", "output": {"x": 1}}
    file_store.apply("run_1", lifecycle("a")[:3], now=T0)
    file_store.apply("run_1", [ev("a", S.COMPLETED, artifact=artifact)], now=T0 + 1)
    art_id, operation = _raw(file_store, "SELECT artifact_id, artifact_operation FROM steps")[0]
    assert operation == "function_invocation"
    assert str(art_id).startswith("fninv_") and len(str(art_id)) == len("fninv_") + 12
    record = file_store.reader().get_artifact(str(art_id))
    assert record["output"] == {"x": 1} and record["step_id"] == "a"
    # same run, step and attempt -> same id (a resumed attempt overwrites its record)
    other = SQLiteStore(":memory:")
    other.create_run(new_run(), now=T0)
    other.apply("run_1", lifecycle("a")[:3] + [ev("a", S.COMPLETED, artifact=artifact)], now=T0)
    assert _raw(other, "SELECT artifact_id FROM steps")[0][0] == art_id
    other.close()


def test_an_artifact_lives_in_its_step_row_under_an_id_that_names_the_row(
        file_store: SQLiteStore) -> None:
    file_store.create_run(new_run(), now=T0)
    first = {"operation": "function_invocation", "output": {"x": 1}}
    file_store.apply("run_1", lifecycle("z")[:3] + lifecycle("a")[:3], now=T0)
    # An attempt that asked for a retry recorded its artifact with the retry (attempt 1).
    file_store.apply("run_1", [ev("a", S.QUEUED, retry_count=1, artifact=first)], now=T0 + 1)
    [(seq, art_id, record, at)] = _raw(
        file_store, "SELECT seq, artifact_id, artifact, artifact_at FROM steps "
        "WHERE step_id = 'a'")
    assert art_id == in_row_artifact_id("function_invocation", int(seq), "run_1", "a", 1)
    assert json.loads(str(record)) == {"output": {"x": 1}}  # the operation: artifact_operation
    assert at == T0 + 1
    assert _raw(file_store, "SELECT count(*) FROM artifacts") == [(0,)]
    found = file_store.read_artifact(str(art_id))
    assert (found.run_id, found.step_id, found.record, found.created_at) == \
        ("run_1", "a", first, T0 + 1)
    # The next attempt records under a new id; the earlier id no longer names a record.
    second = {"operation": "function_invocation", "output": {"x": 2}}
    file_store.apply("run_1", [ev("a", S.RUNNING, retry_count=1),
                               ev("a", S.COMPLETED, retry_count=1, artifact=second)],
                     now=T0 + 3)
    file_store.apply("run_1", [], now=T0 + 3)
    [(again,)] = _raw(file_store, "SELECT artifact_id FROM steps WHERE step_id = 'a'")
    assert again == art_id  # same attempt: its record is replaced
    assert file_store.read_artifact(str(again)).record == second
    file_store.apply("run_1", lifecycle("b")[:3], now=T0 + 4)
    file_store.apply("run_1", [ev("b", S.QUEUED, retry_count=1, artifact=first)], now=T0 + 4)
    file_store.apply("run_1", [ev("b", S.RUNNING, retry_count=1),
                               ev("b", S.QUEUED, retry_count=2, artifact=second)], now=T0 + 5)
    [(b_seq, b_id)] = _raw(file_store, "SELECT seq, artifact_id FROM steps WHERE step_id = 'b'")
    assert b_id == in_row_artifact_id("function_invocation", int(b_seq), "run_1", "b", 2)
    with pytest.raises(NotFoundError):  # attempt 1's id: replaced by attempt 2's record
        file_store.read_artifact(
            in_row_artifact_id("function_invocation", int(b_seq), "run_1", "b", 1))
    for unknown in ("fninv_ffffff000000", "fninv_zz", "fninv_" + "f" * 30, "nounderscore",
                    str(art_id).upper(), str(art_id).replace("fninv", "extr")):
        with pytest.raises(NotFoundError):
            file_store.read_artifact(unknown)


def test_rows_created_with_their_artifact_are_named_by_the_seq_they_get(
        file_store: SQLiteStore) -> None:
    """A batch that creates steps already ended with an artifact (a loop iteration's
    rows) gives each the ``seq`` SQLite would, counted on from the highest row, even
    after that row was deleted, and names its artifact by it in the insert."""
    file_store.create_run(new_run(), now=T0)
    record = {"operation": "function_invocation", "output": {"x": 1}}
    inner = (frame("loop", 0),)
    file_store.apply("run_1", lifecycle("a")[:3], now=T0)
    file_store.apply("run_1", [ev("z", S.PENDING)], now=T0)
    with file_store.db.lock:
        file_store.db.execute("DELETE FROM steps WHERE step_id = 'z'")
    file_store._statuses.pop("run_1", None)  # the map would still hold 'z'
    created = [e for sid in ("loop_iter_0_b", "loop_iter_0_c") for e in (
        *[ev(sid, status, scope=inner) for status in (S.PENDING, S.QUEUED, S.RUNNING)],
        ev(sid, S.COMPLETED, scope=inner, artifact=record))]
    file_store.apply("run_1", [ev("q", S.PENDING), *created], now=T0 + 1)
    rows = _raw(file_store, "SELECT step_id, seq, artifact_id FROM steps ORDER BY seq")
    [(_, a_seq, _), *rest] = rows
    assert [(sid, seq) for sid, seq, _ in rest] == [
        ("q", a_seq + 1), ("loop_iter_0_b", a_seq + 2), ("loop_iter_0_c", a_seq + 3)]
    for sid, seq, art_id in rest[1:]:
        assert art_id == in_row_artifact_id("function_invocation", int(seq), "run_1", sid, 0)
        found = file_store.read_artifact(str(art_id))
        assert (found.step_id, found.record) == (sid, record)


def test_a_step_moves_in_its_own_row_and_never_in_another_runs_that_took_its_seq(
        file_store: SQLiteStore) -> None:
    """Updates find a row by the ``seq`` the store keeps. When another process deletes
    the row and SQLite gives that ``seq`` to another run's step of the same id, the move
    touches nothing of the other run: the store asks the database again and reports the
    step gone."""
    file_store.create_run(new_run(), now=T0)
    file_store.apply("run_1", [ev("a", S.PENDING), ev("a", S.QUEUED)], now=T0)
    [(seq,)] = _raw(file_store, "SELECT seq FROM steps WHERE step_id = 'a'")
    with SQLiteStore(file_store.path) as other:
        with other.db.lock:
            other.db.execute("DELETE FROM steps WHERE run_id = 'run_1'")
        other.create_run(new_run("run_2"), now=T0)
        other.apply("run_2", [ev("a", S.PENDING), ev("a", S.QUEUED)], now=T0)
    assert _raw(file_store, "SELECT run_id, seq FROM steps") == [("run_2", seq)]
    with pytest.raises(IllegalTransition, match="not created"):
        file_store.apply("run_1", [ev("a", S.RUNNING)], now=T0 + 1)
    assert _raw(file_store, "SELECT run_id, status, trail FROM steps") == [
        ("run_2", "queued", '["pending"],["queued"]')]
    # the store's own run goes on as before
    file_store.create_run(new_run("run_3"), now=T0)
    file_store.apply("run_3", lifecycle("a"), now=T0 + 2)
    assert _raw(file_store, "SELECT status FROM steps WHERE run_id = 'run_3'") == [
        ("completed",)]


def test_the_store_keeps_the_seq_of_live_steps_only(file_store: SQLiteStore) -> None:
    """Ended steps, a finished run and a deleted run leave nothing in the maps the store
    keeps per run (a long-lived server reads and deletes many runs)."""
    file_store.create_run(new_run(), now=T0)
    file_store.apply("run_1", [*lifecycle("a"), ev("b", S.PENDING)], now=T0)
    assert file_store._seqs["run_1"] == {"b": 2}
    file_store.load_steps("run_1")  # as a resume or a rerun reads a run
    assert file_store._seqs["run_1"] == {"b": 2}
    file_store.delete_run("run_1")
    assert "run_1" not in file_store._seqs and "run_1" not in file_store._statuses
    file_store.create_run(new_run("run_2"), now=T0)
    file_store.apply("run_2", lifecycle("a"), RunUpdate(status=RunStatus.COMPLETED), now=T0)
    assert "run_2" not in file_store._seqs


def test_moves_after_another_process_inserted_rows_find_their_own_rows(
        file_store: SQLiteStore) -> None:
    """Rows another process inserts between two batches take the next ``seq``s; the
    store's own rows, created before, are still moved by theirs."""
    file_store.create_run(new_run(), now=T0)
    file_store.apply("run_1", [ev("a", S.PENDING), ev("b", S.PENDING)], now=T0)
    with SQLiteStore(file_store.path) as other:
        other.create_run(new_run("run_2"), now=T0)
        other.apply("run_2", [ev("a", S.PENDING), ev("b", S.PENDING)], now=T0)
    file_store.apply("run_1", [*lifecycle("a")[1:], ev("c", S.PENDING)], now=T0 + 1)
    rows = _raw(file_store, "SELECT run_id, step_id, status FROM steps ORDER BY seq")
    assert rows == [("run_1", "a", "completed"), ("run_1", "b", "pending"),
                    ("run_2", "a", "pending"), ("run_2", "b", "pending"),
                    ("run_1", "c", "pending")]


def test_a_new_row_keeps_room_until_its_step_first_moves(file_store: SQLiteStore) -> None:
    """Top-level steps created pending keep the most room; a loop's, and a step
    created already moving, the usual room; a step created ended, none."""
    file_store.create_run(new_run(), now=T0)
    inner = (frame("loop", 0),)
    file_store.apply("run_1", [ev("a", S.PENDING), ev("b", S.PENDING),
                               ev("loop_iter_0_c", S.PENDING, scope=inner),
                               ev("q", S.PENDING), ev("q", S.QUEUED)]
                     + lifecycle("done")[:3] + [ev("done", S.COMPLETED)], now=T0)
    reserved = dict(_raw(file_store, "SELECT step_id, reserve FROM steps"))
    assert reserved == {"a": RESERVE_AHEAD, "b": RESERVE_AHEAD, "loop_iter_0_c": RESERVE,
                        "q": RESERVE, "done": None}
    assert RESERVE == bytes(len(RESERVE)) and len(RESERVE) >= 128
    assert RESERVE_AHEAD == bytes(len(RESERVE_AHEAD)) and len(RESERVE_AHEAD) > len(RESERVE)
    file_store.apply("run_1", [ev("a", S.QUEUED), ev("loop_iter_0_c", S.QUEUED, scope=inner)],
                     now=T0 + 1)
    assert dict(_raw(file_store, "SELECT step_id, reserve FROM steps")) == \
        {"a": None, "b": RESERVE_AHEAD, "loop_iter_0_c": None, "q": RESERVE, "done": None}
    assert file_store.reader().get_step("b").lifecycle.status == "pending"


def test_artifacts_recorded_before_layout_6_are_still_read(file_store: SQLiteStore) -> None:
    """An upgraded database keeps its older records in ``artifacts``, under hashed ids."""
    file_store.create_run(new_run(), now=T0)
    file_store.apply("run_1", lifecycle("a")[:3] + [ev("a", S.COMPLETED)], now=T0)
    old_id = artifact_id("function_invocation", "run_1", "a", 0)
    record = {"operation": "function_invocation", "output": {"old": True}}
    with file_store.db.read("test") as conn:
        conn.execute("UPDATE steps SET artifact_id = ?, artifact_operation = ?",
                     (old_id, "function_invocation"))
        conn.execute("INSERT INTO artifacts VALUES (?, 'run_1', 'a', 'function_invocation', ?, ?)",
                     (old_id, json.dumps(record), T0))
        conn.commit()
    found = file_store.read_artifact(old_id)
    assert (found.step_id, found.record) == ("a", record)
    assert file_store.reader().get_step("a").artifact is not None


def test_large_run_outputs_go_to_a_blob(file_store: SQLiteStore) -> None:
    file_store.create_run(new_run(), now=T0)
    big = {"output-json-0": {"type": "json", "data": "y" * (PAYLOAD_INLINE_LIMIT + 1)}}
    file_store.apply("run_1", [], RunUpdate(status=RunStatus.COMPLETED, outputs={"end": big}),
                now=T0)
    assert len(str(_raw(file_store, "SELECT outputs FROM runs")[0][0])) < 1000
    assert file_store.reader().get_run("run_1").outputs == {"end": big}
