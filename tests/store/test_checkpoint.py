"""The background checkpointer: its cadence follows the WAL pages commits write, and
the WAL stays bounded whatever their size."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest

from store.checkpoint import MAX_EVERY, MIN_EVERY, TARGET_PAGES, Checkpointer
from store.connection import WAL_AUTOCHECKPOINT_PAGES
from store.sqlite import SQLiteStore
from tests.store.helpers import T0, S, ev, lifecycle, new_run


def _checkpointer(**kw: object) -> Checkpointer:
    return Checkpointer("unused.db", **kw)  # type: ignore[arg-type]


def test_small_commits_stretch_the_cadence_at_most_twofold_per_checkpoint() -> None:
    ckpt = _checkpointer()
    assert ckpt.every == MIN_EVERY
    seen = []
    for _ in range(8):  # one page per commit: TARGET_PAGES commits fill the target
        ckpt.adapt(commits=ckpt.every, frames=ckpt.every)
        seen.append(ckpt.every)
    assert seen[:3] == [2 * MIN_EVERY, 4 * MIN_EVERY, 8 * MIN_EVERY]
    assert seen[-1] == TARGET_PAGES


@pytest.mark.parametrize(("commits", "frames", "every"), [
    (100, 800, 62),              # 8 pages a commit: 62 commits fill 500
    (100, 8000, MIN_EVERY),      # 80 pages a commit: 6, but never under the minimum
    (500, 250, 100),             # half a page: 1000, but twice 50 at most this time
])
def test_the_cadence_is_the_target_over_pages_per_commit(commits: int, frames: int,
                                                          every: int) -> None:
    ckpt = _checkpointer()
    ckpt.adapt(commits=commits, frames=frames)
    assert ckpt.every == every


def test_larger_commits_shorten_the_cadence_at_once() -> None:
    ckpt = _checkpointer(every=400)
    ckpt.adapt(commits=400, frames=4000)  # 10 pages a commit: 50 commits fill 500
    assert ckpt.every == MIN_EVERY


def test_a_rewound_wal_only_shortens_the_cadence() -> None:
    ckpt = _checkpointer(every=100)
    ckpt.adapt(commits=100, frames=20, rewound=True)  # frames since the rewind only
    assert ckpt.every == 100
    ckpt.adapt(commits=100, frames=1000, rewound=True)
    assert ckpt.every == MIN_EVERY


def test_the_cadence_never_passes_the_maximum() -> None:
    ckpt = _checkpointer(every=MAX_EVERY, target_pages=10**6)
    ckpt.adapt(commits=1000, frames=1000)
    assert ckpt.every == MAX_EVERY


@pytest.mark.parametrize(("commits", "frames"), [(0, 100), (100, 0), (100, -1)])
def test_nothing_to_go_by_keeps_the_cadence(commits: int, frames: int) -> None:
    ckpt = _checkpointer(every=120)
    ckpt.adapt(commits=commits, frames=frames)
    assert ckpt.every == 120


def test_no_target_keeps_a_fixed_cadence() -> None:
    ckpt = _checkpointer(every=50, target_pages=0)
    ckpt.adapt(commits=1000, frames=10)
    assert ckpt.every == 50


def _wal_pages(path: Path) -> int:
    return os.path.getsize(f"{path}-wal") // 4096


def _wait_for(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.01)


def test_one_row_commits_are_checkpointed_less_often_and_the_wal_stays_small(
        tmp_path: Path) -> None:
    path = tmp_path / "chain.db"
    steps = 6000
    with SQLiteStore(path) as store:
        store.create_run(new_run(), now=T0)
        store.apply("run_1", [ev(f"s{i}", S.PENDING) for i in range(steps)], now=T0)
        checkpointer = store._checkpointer
        assert checkpointer is not None
        deadline = time.monotonic() + 20
        i = 0
        for i in range(steps):  # a chain: each commit ends one step and starts the next
            events = [ev(f"s{i}", S.QUEUED), ev(f"s{i}", S.RUNNING)]
            if i:
                events.insert(0, ev(f"s{i - 1}", S.COMPLETED, outputs={}))
            store.apply("run_1", events, now=T0)
            if checkpointer.every > MIN_EVERY or time.monotonic() > deadline:
                break
            time.sleep(0.001)  # let the thread check the WAL between commits
        assert checkpointer.every > MIN_EVERY
        for j in range(i + 1, steps):  # more pages than the writer's checkpoint waits for
            store.apply("run_1", [ev(f"s{j - 1}", S.COMPLETED, outputs={}),
                                  ev(f"s{j}", S.QUEUED), ev(f"s{j}", S.RUNNING)], now=T0)
        # the WAL starts over at the writer's own checkpoint, so it stops growing there
        assert _wal_pages(path) < WAL_AUTOCHECKPOINT_PAGES + 200


def test_many_page_commits_keep_the_wal_bounded(tmp_path: Path) -> None:
    path = tmp_path / "fanout.db"
    with SQLiteStore(path) as store:
        store.create_run(new_run(), now=T0)
        big = {"text": "x" * 3000}
        for batch in range(500):  # each commit: 10 steps, about ten pages
            events = []
            for k in range(10):
                events += lifecycle(f"b{batch}_{k}", inputs=None)
                events[-1] = ev(f"b{batch}_{k}", S.COMPLETED, artifact={"operation": "x",
                                                                         **big})
            store.apply("run_1", events, now=T0)
        checkpointer = store._checkpointer
        assert checkpointer is not None
        _wait_for(lambda: checkpointer.every == MIN_EVERY)
        assert checkpointer.every == MIN_EVERY
        assert _wal_pages(path) < WAL_AUTOCHECKPOINT_PAGES + 200


def _wal_database(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")  # only these tests' checkpoints
    conn.execute("CREATE TABLE t (n INTEGER)")
    return conn


def test_a_finished_round_lets_the_next_transaction_start_the_wal_over(
        tmp_path: Path) -> None:
    conn = _wal_database(tmp_path / "w.db")
    try:
        ckpt = Checkpointer(str(tmp_path / "w.db"), writer=conn)
        for n in range(20):
            conn.execute("INSERT INTO t VALUES (?)", (n,))
            ckpt.committed()  # no round asked for: nothing copied
        before = ckpt.wal_generation()
        conn.execute("INSERT INTO t VALUES (20)")
        assert ckpt.wal_generation() == before  # appended, not started over
        ckpt.tail_due = True  # what the thread sets after each round
        ckpt.committed()  # copies every frame on the writer's connection
        assert not ckpt.tail_due
        conn.execute("INSERT INTO t VALUES (21)")
        assert ckpt.wal_generation() != before  # the WAL started over
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 22
    finally:
        conn.close()


def test_without_a_writer_a_round_is_never_finished_on_the_commit_path(
        tmp_path: Path) -> None:
    conn = _wal_database(tmp_path / "w.db")
    try:
        ckpt = Checkpointer(str(tmp_path / "w.db"))
        conn.execute("INSERT INTO t VALUES (1)")
        before = ckpt.wal_generation()
        ckpt.tail_due = True
        ckpt.committed()
        assert not ckpt.tail_due
        conn.execute("INSERT INTO t VALUES (2)")
        assert ckpt.wal_generation() == before
    finally:
        conn.close()


def test_finishing_a_round_does_not_wait_for_another_connections_write(
        tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    conn = _wal_database(path)
    try:
        ckpt = Checkpointer(str(path), writer=conn)
        conn.execute("INSERT INTO t VALUES (1)")
        # another connection inside a write transaction holds the write lock: a
        # PASSIVE checkpoint still copies what it can and the commit is not held up
        other = sqlite3.connect(path, isolation_level=None, timeout=0)
        other.execute("BEGIN IMMEDIATE")
        try:
            ckpt.tail_due = True
            start = time.monotonic()
            ckpt.committed()
            assert time.monotonic() - start < 1.0
            assert not ckpt.tail_due
        finally:
            other.execute("ROLLBACK")
            other.close()
    finally:
        conn.close()


def test_under_full_durability_one_page_commits_overwrite_a_small_wal(
        tmp_path: Path) -> None:
    # Left to the thread alone, 1,500 commits of a few pages each grow the WAL by about
    # 1,000 pages (the writer's own checkpoint waits for 4,000); finished by the writer,
    # each round lets the WAL start over, and it stays at the pages of a few rounds'
    # commits (about 380 here, 600 with two other processes busy on a 2-core machine).
    path = tmp_path / "full.db"
    with SQLiteStore(path, durability="full") as store:
        store.create_run(new_run(), now=T0)
        for i in range(1500):
            store.apply("run_1", [ev(f"s{i}", S.PENDING)], now=T0)
        checkpointer = store._checkpointer
        assert checkpointer is not None and checkpointer.writer is store.db.conn
        assert _wal_pages(path) < 900
        assert len(store.load_steps("run_1")) == 1500
