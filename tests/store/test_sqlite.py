"""SQLite specifics: WAL, durability modes, several processes, error messages."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sqlite3
import stat
import tempfile
from pathlib import Path

import pytest

from engine.contracts.errors import StorageError
from engine.contracts.values import RunStatus
from store.layout import SCHEMA_VERSION
from store.sqlite import SQLiteStore
from tests.store.helpers import T0, S, lifecycle, new_run, write_steps_in_process


def test_wal_mode_and_busy_timeout(file_store: SQLiteStore) -> None:
    conn = file_store._conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 30_000
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1   # NORMAL
    # the file on disk is WAL for every other connection too
    other = sqlite3.connect(file_store.path)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()


def test_full_durability(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "full.db", durability="full") as store:
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2   # FULL
    with pytest.raises(ValueError):
        SQLiteStore(tmp_path / "x.db", durability="sometimes")


def test_schema_tables_and_indexes(file_store: SQLiteStore) -> None:
    names = {r[0] for r in file_store._conn.execute("SELECT name FROM sqlite_master")}
    assert {"runs", "steps", "transitions", "artifacts", "workflows", "reviews"} <= names
    assert {"ux_steps_step_run", "ix_steps_run_seq", "ix_runs_org_created"} <= names
    kind = file_store._conn.execute(
        "SELECT type FROM sqlite_master WHERE name = 'transitions'").fetchone()[0]
    assert kind == "view"  # over steps.trail: a transition costs no row of its own
    assert file_store._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


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
        conn = store._conn
        assert conn.execute("SELECT count(*) FROM definitions").fetchone()[0] == 2
        assert store.load_run("run_b").definition == big
        assert store.load_run("run_c").definition == {"blocks": []}
        # the runs row holds no definition: it stays one small row however big the workflow
        row_bytes = conn.execute("SELECT length(inputs) + length(metadata) + "
                                 "length(definition_id) FROM runs WHERE id = 'run_a'").fetchone()[0]
        assert row_bytes < 200
