"""The run queue contract (:class:`engine.contracts.queue.QueueStore`), on every store that
has one: claims go oldest first, a live lease is never taken, a dead one is, a handed-back
run is claimable at once, and concurrent claimants (threads with their own connections,
on SQLite and on PostgreSQL) never take the same run."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.contracts.events import RunUpdate
from engine.contracts.queue import QueueStore
from engine.contracts.store import Store
from engine.contracts.values import RunStatus
from store.sqlite import SQLiteStore
from tests.postgres import drop, fresh_schema
from tests.store.helpers import T0, S, ev, new_run

ME = os.getpid()


@pytest.fixture
def queue(store: Store) -> QueueStore:
    """The store under test, if it has a run queue."""
    if not isinstance(store, QueueStore):
        pytest.skip(f"{type(store).__name__} has no run queue")
    return store


def _queued(store: Store, *run_ids: str) -> None:
    for offset, run_id in enumerate(run_ids):
        store.create_run(new_run(run_id), now=T0 + offset)
        assert store.release(run_id, ME)  # type: ignore[attr-defined]


def test_claims_go_oldest_first(queue: QueueStore, store: Store) -> None:
    _queued(store, "run_b", "run_a", "run_c")
    claimed = [queue.claim_next(7, now=T0 + 10, stale_before=T0 + 5) for _ in range(4)]
    assert claimed == ["run_b", "run_a", "run_c", None]
    run = store.load_run("run_b")
    assert (run.owner_pid, run.heartbeat_at, run.status) == (7, T0 + 10, RunStatus.QUEUED)


def test_a_live_lease_is_kept_and_a_dead_one_taken(queue: QueueStore, store: Store) -> None:
    store.create_run(new_run(), now=T0)  # owned by this process, heartbeat T0
    assert queue.claim_next(7, now=T0 + 1, stale_before=T0 - 5) is None
    store.heartbeat("run_1", T0 + 3)
    assert queue.claim_next(7, now=T0 + 4, stale_before=T0 + 2) is None
    assert queue.claim_next(7, now=T0 + 30, stale_before=T0 + 15) == "run_1"
    assert store.load_run("run_1").owner_pid == 7


def test_release_hands_back_only_what_it_owns(queue: QueueStore, store: Store) -> None:
    store.create_run(new_run(), now=T0)
    assert not queue.release("run_1", ME + 1)  # another owner: unchanged
    assert store.load_run("run_1").owner_pid == ME
    assert queue.release("run_1", ME)
    run = store.load_run("run_1")
    assert (run.status, run.owner_pid, run.heartbeat_at) == (RunStatus.QUEUED, None, None)
    assert not queue.release("run_1", ME)
    assert not queue.release("nope", ME)


def test_a_running_run_handed_back_stays_running(queue: QueueStore, store: Store) -> None:
    store.create_run(new_run(), now=T0)
    store.apply("run_1", [ev("a", S.PENDING)], RunUpdate(status=RunStatus.RUNNING), now=T0)
    assert queue.release("run_1", ME)
    assert store.load_run("run_1").status is RunStatus.RUNNING
    assert queue.claim_next(9, now=T0 + 1, stale_before=T0) == "run_1"


def test_ended_and_waiting_runs_are_not_claimed(queue: QueueStore, store: Store) -> None:
    _queued(store, "run_done", "run_wait")
    store.apply("run_done", [], RunUpdate(status=RunStatus.COMPLETED), now=T0)
    store.apply("run_wait", [], RunUpdate(status=RunStatus.AWAITING_REVIEW,
                                          waiting_for_block_ids=["a"]), now=T0)
    assert queue.claim_next(7, now=T0 + 100, stale_before=T0 + 99) is None


def test_requeue_after_a_decision(queue: QueueStore, store: Store) -> None:
    store.create_run(new_run(), now=T0)
    assert not queue.requeue("run_1")  # pending: nothing to do
    store.apply("run_1", [], RunUpdate(status=RunStatus.AWAITING_REVIEW,
                                       waiting_for_block_ids=["a"]), now=T0)
    assert queue.requeue("run_1")
    run = store.load_run("run_1")
    assert (run.status, run.owner_pid, run.heartbeat_at) == (RunStatus.QUEUED, None, None)
    assert queue.claim_next(7, now=T0 + 1, stale_before=T0) == "run_1"
    assert not queue.requeue("nope")


# ------------------------------------------------------------------ concurrency


@pytest.fixture(params=["sqlite-file", "postgresql"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """Opens more stores on one database of the given kind (closed after the test)."""
    opened: list[Store] = []
    if request.param == "sqlite-file":
        def open_store() -> Store:
            opened.append(SQLiteStore(tmp_path / "shared.db"))
            return opened[-1]
        schema = None
    else:
        schema, url = fresh_schema()

        def open_store() -> Store:
            from store.pg import PostgresStore

            opened.append(PostgresStore(url))
            return opened[-1]
    yield open_store
    for st in opened:
        st.close()
    if schema is not None:
        drop(schema)


def test_concurrent_claims_take_each_run_once(shared: Callable[[], Store]) -> None:
    first = shared()
    runs = [f"run_{i:03d}" for i in range(60)]
    _queued(first, *runs)
    stores = [shared() for _ in range(6)]
    taken: list[list[str]] = [[] for _ in stores]
    start = threading.Barrier(len(stores))

    def claim(index: int) -> None:
        store = stores[index]
        start.wait()
        while (run_id := store.claim_next(100 + index, now=T0 + 50,  # type: ignore[attr-defined]
                                          stale_before=T0 + 40)) is not None:
            taken[index].append(run_id)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    everything = [run_id for claimed in taken for run_id in claimed]
    assert sorted(everything) == runs
    for index, claimed in enumerate(taken):
        for run_id in claimed:
            assert first.load_run(run_id).owner_pid == 100 + index
