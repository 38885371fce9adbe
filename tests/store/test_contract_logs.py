"""The store contract for step logs, through the protocols only, for every store."""

from __future__ import annotations

import pytest

from engine.contracts.errors import IllegalTransition, NotFoundError, UsageError
from engine.contracts.logs import AttemptLog, LogEntry
from engine.contracts.store import Store
from engine.contracts.values import StepStatus
from store.api import ReadAPI
from tests.store.helpers import T0, ev, lifecycle, new_run


def entries(*messages: str, stream: str = "stdout") -> tuple[LogEntry, ...]:
    return tuple(LogEntry(stream=stream, message=m, at=T0 + i) for i, m in enumerate(messages))


def started(store: Store, *steps: str, run_id: str = "run_1", org: str = "org_local") -> None:
    store.create_run(new_run(run_id, organization_id=org), now=T0)
    for step in steps:
        store.apply(run_id, lifecycle(step), now=T0)


def test_logs_are_kept_in_order_across_attempts(store: Store) -> None:
    started(store, "price", "total")
    store.append_logs("run_1", [AttemptLog(step_id="price", attempt=0,
                                           entries=entries("one", "two"))], now=T0)
    store.append_logs("run_1", [
        AttemptLog(step_id="price", attempt=1, entries=(LogEntry(
            stream="logging", message="retrying", at=T0 + 5, level="WARNING",
            logger="app", truncated=True),)),
        AttemptLog(step_id="total", attempt=0, entries=entries("sum"))], now=T0)
    page = store.page_logs("run_1", "price")
    assert [(r.seq, r.attempt, r.message) for r in page.items] == [
        (1, 0, "one"), (2, 0, "two"), (3, 1, "retrying")]
    third = page.items[2]
    assert (third.stream, third.level, third.logger, third.truncated, third.at) == (
        "logging", "WARNING", "app", True, T0 + 5)
    assert not page.more_after and not page.more_before
    assert [r.message for r in store.page_logs("run_1", "total").items] == ["sum"]
    assert [r.message for r in store.page_logs("run_1", "price", attempt=1).items] == [
        "retrying"]


def test_logs_handed_to_apply_are_committed_with_the_batch(store: Store) -> None:
    store.create_run(new_run("run_1"), now=T0)
    store.apply("run_1", lifecycle("price")[:3], now=T0)
    # lines stored while the attempt ran (the heartbeat's drain), then the rest with
    # the outcome: numbering goes on across the two
    store.append_logs("run_1", [AttemptLog(step_id="price", attempt=0,
                                           entries=entries("early"))], now=T0)
    warning = LogEntry(stream="logging", message="slow", at=T0 + 2, level="WARNING",
                       logger="app")
    store.apply("run_1", [ev("price", StepStatus.COMPLETED, outputs={})], now=T0 + 1, logs=[
        AttemptLog(step_id="price", attempt=0,
                   entries=(*entries("late"), warning, *entries("last", stream="stderr"))),
        AttemptLog(step_id="other", attempt=0, entries=entries("a loop's note"))])
    page = store.page_logs("run_1", "price").items
    assert [(r.seq, r.message, r.stream, r.level, r.logger, r.truncated) for r in page] == [
        (1, "early", "stdout", None, None, False), (2, "late", "stdout", None, None, False),
        (3, "slow", "logging", "WARNING", "app", False),
        (4, "last", "stderr", None, None, False)]
    assert store.load_steps("run_1")[0].status is StepStatus.COMPLETED
    # a batch of logs alone
    store.apply("run_1", [], now=T0 + 2, logs=[
        AttemptLog(step_id="price", attempt=1, entries=entries("retried"))])
    assert [(r.seq, r.attempt) for r in store.page_logs("run_1", "price").items][-1] == (5, 1)


def test_a_refused_batch_keeps_none_of_its_logs(store: Store) -> None:
    store.create_run(new_run("run_1"), now=T0)
    store.apply("run_1", lifecycle("price"), now=T0)
    with pytest.raises(IllegalTransition):
        store.apply("run_1", [ev("price", StepStatus.RUNNING)], now=T0 + 1, logs=[
            AttemptLog(step_id="price", attempt=0, entries=entries("lost"))])
    assert store.page_logs("run_1", "price").items == []
    with pytest.raises(NotFoundError):
        store.apply("run_nope", [], now=T0, logs=[
            AttemptLog(step_id="x", attempt=0, entries=entries("a"))])


def test_log_pages_follow_the_seq_cursor(store: Store) -> None:
    started(store, "chatty")
    store.append_logs("run_1", [AttemptLog(step_id="chatty", attempt=0,
                                           entries=entries(*map(str, range(5))))], now=T0)
    first = store.page_logs("run_1", "chatty", limit=2)
    assert [r.seq for r in first.items] == [1, 2] and first.more_after
    second = store.page_logs("run_1", "chatty", after=first.items[-1].seq, limit=2)
    assert [r.seq for r in second.items] == [3, 4] and second.more_before
    last = store.page_logs("run_1", "chatty", after=4, limit=2)
    assert [r.message for r in last.items] == ["4"] and not last.more_after
    assert store.page_logs("run_1", "chatty", after=99).items == []


def test_a_step_that_wrote_nothing_has_an_empty_log(store: Store) -> None:
    started(store, "quiet")
    assert store.page_logs("run_1", "quiet").items == []


def test_unknown_runs_and_steps_and_bad_pages(store: Store) -> None:
    started(store, "price")
    with pytest.raises(NotFoundError):
        store.page_logs("run_nope", "price")
    with pytest.raises(NotFoundError):
        store.page_logs("run_1", "nope")
    with pytest.raises(NotFoundError):
        store.append_logs("run_nope", [AttemptLog(step_id="x", attempt=0,
                                                  entries=entries("a"))], now=T0)
    for bad in ({"limit": 0}, {"limit": 1001}, {"after": -1}):
        with pytest.raises(UsageError):
            store.page_logs("run_1", "price", **bad)  # type: ignore[arg-type]


def test_logs_of_another_organization_do_not_exist(store: Store) -> None:
    started(store, "price", org="org_a")
    store.append_logs("run_1", [AttemptLog(step_id="price", attempt=0,
                                           entries=entries("secret"))], now=T0)
    with pytest.raises(NotFoundError):
        store.page_logs("run_1", "price", organization_id="org_b")
    assert store.page_logs("run_1", "price", organization_id="org_a").items


def test_the_read_api_serves_log_lines(store: Store) -> None:
    started(store, "price")
    store.append_logs("run_1", [AttemptLog(step_id="price", attempt=0,
                                           entries=entries("a", "b", "c"))], now=T0)
    api = ReadAPI(store)
    page = api.list_step_logs("price", run_id="run_1", limit=2)
    assert [line.message for line in page.data] == ["a", "b"]
    assert page.list_metadata.after == "2"
    data = page.model_dump(mode="json")
    assert data["data"][0]["at"].endswith("Z") and data["data"][0]["seq"] == 1
    rest = api.list_step_logs("price", run_id="run_1", after=2)
    assert [line.message for line in rest.data] == ["c"] and rest.list_metadata.after is None
