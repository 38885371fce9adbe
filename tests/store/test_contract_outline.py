"""The store contract for overviews of runs (:mod:`engine.contracts.outline`), for every
store, through the protocols only: a run with a for_each of five items (one failed, one
still running), a nested loop, a step waiting for a review and a skipped branch."""

from __future__ import annotations

import pytest

from engine.contracts.errors import NotFoundError
from engine.contracts.logs import LOOP_LOGGER, AttemptLog, LogEntry
from engine.contracts.outline import iteration_of, parse_loop_note
from engine.contracts.store import Store
from tests.store.helpers import T0, S, error_info, ev, frame, lifecycle, new_run


def loop_run(store: Store, run_id: str = "run_1", org: str = "org_local") -> None:
    """``batch`` -> ``each`` (for_each over 5 items: 3 fails, 4 runs) -> ``total``
    (pending); ``each`` holds ``rows`` (a for_each of 2 items in item 0); ``gate``
    awaits a review; ``small`` was skipped."""
    store.create_run(new_run(run_id, organization_id=org, workflow_name="Loops"), now=T0)
    store.apply(run_id, lifecycle("batch"), now=T0)
    store.apply(run_id, lifecycle("each", block_type="for_each"), now=T0 + 1)
    for i in range(5):
        scope = (frame("each", i),)
        start = ev(f"each_iter_{i}_each_sentinel_start", S.PENDING,
                   block_id="each_sentinel_start", block_type="for_each_sentinel_start",
                   scope=scope)
        events = [start, *[ev(start.step_id, s, block_id=start.block_id,
                              block_type=start.block_type, scope=scope)
                           for s in (S.QUEUED, S.RUNNING, S.COMPLETED)]]
        check = f"each_iter_{i}_check"
        events.append(ev(check, S.PENDING, block_id="check", scope=scope))
        end = {"block_id": "each_sentinel_end", "block_type": "for_each_sentinel_end",
                   "scope": scope}
        events += [ev(check, S.QUEUED, block_id="check", scope=scope),
                   ev(check, S.RUNNING, block_id="check", scope=scope)]
        if i == 3:
            events += [ev(check, S.ERROR, block_id="check", scope=scope,
                          error=error_info("item 3 is not allowed")),
                       ev(f"each_iter_{i}_each_sentinel_end", S.PENDING, **end),
                       ev(f"each_iter_{i}_each_sentinel_end", S.SKIPPED, reason="upstream",
                          **end)]
        elif i < 3:
            events.append(ev(check, S.COMPLETED, block_id="check", scope=scope))
            events += lifecycle(f"each_iter_{i}_each_sentinel_end", **end)
        store.apply(run_id, events, now=T0 + 2 + i)
    inner = (frame("each", 0), frame("rows", 1))
    store.apply(run_id, lifecycle("each_iter_0_rows", block_id="rows", block_type="for_each",
                                  scope=(frame("each", 0),))
                + lifecycle("each_iter_0_rows_iter_1_cell", block_id="cell", scope=inner),
                now=T0 + 8)
    store.apply(run_id, [ev("total", S.PENDING),
                         ev("gate", S.PENDING, block_type="hil"),
                         ev("gate", S.QUEUED, block_type="hil"),
                         ev("gate", S.RUNNING, block_type="hil"),
                         ev("gate", S.AWAITING_REVIEW, block_type="hil",
                            outputs={}),
                         ev("small", S.PENDING), ev("small", S.SKIPPED,
                                                    reason="branch_not_selected")],
                now=T0 + 9)
    note = LogEntry(stream="stepwell", message="5 items, 4 at a time; a failed item "
                    "becomes null", at=T0 + 1, logger=LOOP_LOGGER)
    inner_note = LogEntry(stream="stepwell", message="2 items, 1 at a time; a failed item "
                          "fails the loop", at=T0 + 8, logger=LOOP_LOGGER)
    store.append_logs(run_id, [AttemptLog(step_id="each", attempt=0, entries=(note,)),
                               AttemptLog(step_id="each_iter_0_rows", attempt=0,
                                          entries=(inner_note,))], now=T0 + 9)


def test_outline_steps_are_light_rows_in_creation_order(store: Store) -> None:
    loop_run(store)
    every = store.outline_steps("run_1")
    assert [s.step_id for s in every[:3]] == ["batch", "each", "each_iter_0_each_sentinel_start"]
    some = store.outline_steps("run_1", ["total", "batch", "nope", "each_iter_3_check"])
    assert [s.step_id for s in some] == ["batch", "each_iter_3_check", "total"]
    failed = some[1]
    assert (failed.status, failed.scope, failed.error, failed.block_id) == (
        "error", (("each", 3),), "item 3 is not allowed", "check")
    assert failed.started_at == T0 + 5 and failed.completed_at == T0 + 5
    assert some[2].status == "pending" and some[2].started_at is None
    sentinel = next(s for s in every if s.step_id == "each_iter_0_each_sentinel_start")
    assert sentinel.sentinel == "start" and every[0].sentinel is None
    skipped = store.outline_steps("run_1", ["small"])[0]
    assert (skipped.status, skipped.reason, skipped.label) == (
        "skipped", "branch_not_selected", "Small")


def test_block_tallies_group_steps_by_block_and_status(store: Store) -> None:
    loop_run(store)
    tallies = {(t.block_id, t.status): t for t in store.block_tallies("run_1")}
    assert tallies[("check", "completed")].count == 3
    assert tallies[("check", "error")].count == 1
    assert tallies[("check", "error")].error == "item 3 is not allowed"
    assert tallies[("check", "running")].count == 1
    assert tallies[("each_sentinel_start", "completed")].count == 5
    assert tallies[("each_sentinel_start", "completed")].block_type == \
        "for_each_sentinel_start"
    assert tallies[("each_sentinel_end", "completed")].count == 3
    assert tallies[("each_sentinel_end", "skipped")].reason == "upstream"
    assert tallies[("small", "skipped")].reason == "branch_not_selected"
    assert tallies[("gate", "awaiting_review")].count == 1
    assert tallies[("check", "completed")].error is None


def test_iterations_are_counted_and_read_by_container_step(store: Store) -> None:
    loop_run(store)
    per_item = store.iteration_tallies("run_1", "each")
    assert sorted(per_item) == [0, 1, 2, 3, 4]
    assert per_item[3] == {"completed": 1, "error": 1, "skipped": 1}
    assert per_item[4] == {"completed": 1, "running": 1}
    # the nested loop's steps count in item 0 of the outer loop
    assert per_item[0] == {"completed": 5}
    assert store.iteration_tallies("run_1", "each_iter_0_rows") == {1: {"completed": 1}}
    assert store.iteration_tallies("run_1", "batch") == {}
    members = store.iteration_steps("run_1", "each", [3, 0, 9])
    assert [s.step_id for s in members[3]] == [
        "each_iter_3_each_sentinel_start", "each_iter_3_check", "each_iter_3_each_sentinel_end"]
    assert [s.sentinel for s in members[3]] == ["start", None, "end"]
    assert "each_iter_0_rows_iter_1_cell" not in {s.step_id for s in members[0]}
    assert "each_iter_0_rows" in {s.step_id for s in members[0]}
    assert members[9] == []


def test_run_counts_and_presence_cover_many_runs(store: Store) -> None:
    loop_run(store)
    store.create_run(new_run("run_2"), now=T0 + 20)
    counts = store.run_counts(["run_1", "run_2", "nope"])
    assert set(counts) == {"run_1"}
    one = counts["run_1"]
    assert (one.items, one.items_done, one.items_failed) == (5, 3, 1)
    assert one.by_status == {"completed": 7, "error": 1, "running": 1, "pending": 1,
                             "awaiting_review": 1, "skipped": 1}
    assert one.steps == 12
    presence = store.run_presence(["run_1", "run_2", "nope"])
    assert set(presence) == {"run_1", "run_2"}
    assert presence["run_1"].waiting_since == T0 + 9
    assert presence["run_2"].waiting_since is None
    assert presence["run_2"].status == "pending" and presence["run_2"].owner_pid
    assert presence["run_2"].heartbeat_at == T0 + 20
    assert (presence["run_1"].workflow_id, presence["run_1"].workflow_name) == ("wf_1", "Loops")


def test_step_moves_are_the_trail_of_each_step(store: Store) -> None:
    loop_run(store)
    moves = store.step_moves("run_1", ["each_iter_3_check", "small", "nope"])
    assert [m.status for m in moves["each_iter_3_check"]] == [
        "pending", "queued", "running", "error"]
    assert moves["each_iter_3_check"][-1].at == T0 + 5
    assert moves["each_iter_3_check"][-1].detail["error"]["message"] == "item 3 is not allowed"
    assert moves["small"][-1].detail == {"reason": "branch_not_selected"}
    assert moves["small"][0].detail is None
    assert moves["nope"] == []


def test_loop_sizes_come_from_the_notes_of_opened_loops(store: Store) -> None:
    loop_run(store)
    store.create_run(new_run("run_2"), now=T0)
    store.apply("run_2", lifecycle("repeat", block_type="while_loop"), now=T0)
    store.append_logs("run_2", [AttemptLog(step_id="repeat", attempt=0, entries=(
        LogEntry(stream="stdout", message="12 items on the screen", at=T0),
        LogEntry(stream="stepwell", message="loop opened: at most 10 iterations", at=T0,
                 logger=LOOP_LOGGER)))], now=T0)
    sizes = {(s.run_id, s.step_id): s for s in store.loop_sizes(["run_1", "run_2"])}
    assert set(sizes) == {("run_1", "each"), ("run_1", "each_iter_0_rows"),
                          ("run_2", "repeat")}
    assert (sizes[("run_1", "each")].items, sizes[("run_1", "each")].bound) == (5, False)
    assert sizes[("run_1", "each_iter_0_rows")].block_id == "rows"
    assert (sizes[("run_2", "repeat")].items, sizes[("run_2", "repeat")].bound) == (10, True)
    assert store.loop_sizes(["run_2"], organization_id="org_b") == []


def test_workflow_choices_name_the_workflows_with_runs(store: Store) -> None:
    loop_run(store)
    store.create_run(new_run("run_2", workflow_id="wf_2", workflow_name="Alpha"), now=T0)
    store.create_run(new_run("run_3", workflow_id="wf_2", workflow_name="Alpha"), now=T0)
    store.create_run(new_run("run_4", workflow_id="wf_3", workflow_name="Zed",
                             organization_id="org_b"), now=T0)
    choices = [(c.workflow_id, c.name, c.runs) for c in store.workflow_choices()]
    assert choices == [("wf_2", "Alpha", 2), ("wf_1", "Loops", 1), ("wf_3", "Zed", 1)]
    assert [c.workflow_id for c in store.workflow_choices(organization_id="org_b")] == ["wf_3"]


def test_another_organization_sees_no_overview(store: Store) -> None:
    loop_run(store)
    for call in (lambda: store.outline_steps("run_1", organization_id="org_b"),
                 lambda: store.block_tallies("run_1", organization_id="org_b"),
                 lambda: store.iteration_tallies("run_1", "each", organization_id="org_b"),
                 lambda: store.iteration_steps("run_1", "each", [0], organization_id="org_b"),
                 lambda: store.step_moves("run_1", ["batch"], organization_id="org_b"),
                 lambda: store.outline_steps("nope")):
        with pytest.raises(NotFoundError):
            call()
    assert store.run_counts(["run_1"], organization_id="org_b") == {}
    assert store.run_presence(["run_1"], organization_id="org_b") == {}
    assert store.loop_sizes(["run_1"], organization_id="org_b") == []
    assert store.workflow_choices(organization_id="org_b") == []
    assert store.block_tallies("run_1", organization_id="org_local")


def test_data_version_changes_with_every_commit(store: Store) -> None:
    first = store.data_version()
    assert store.data_version() == first
    store.create_run(new_run("run_1"), now=T0)
    second = store.data_version()
    assert second != first
    store.apply("run_1", lifecycle("batch"), now=T0)
    third = store.data_version()
    assert third != second
    store.request_cancel("run_1", "stop")
    assert store.data_version() != third


def reopened(store: Store) -> Store:
    """A second store object on the same storage (skips for storage one object holds)."""
    from store.pg import PostgresStore
    from store.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore) and not store.in_memory:
        return SQLiteStore(store.path)
    if isinstance(store, PostgresStore):
        return PostgresStore(store.url)
    pytest.skip("one object is the whole storage")


def test_data_version_sees_other_connections(store: Store) -> None:
    reader = reopened(store)
    try:
        before = reader.data_version()
        store.create_run(new_run("run_1"), now=T0)
        assert reader.data_version() != before
    finally:
        reader.close()


def test_loop_notes_are_parsed_and_iterations_located() -> None:
    assert parse_loop_note("30 items, 4 at a time; a failed item becomes null") == (30, False)
    assert parse_loop_note("1 item, 1 at a time; a failed item fails the loop") == (1, False)
    assert parse_loop_note("loop opened: at most 10 iterations") == (10, True)
    assert parse_loop_note("hello") is None
    assert iteration_of("each", "each_iter_12_check") == 12
    assert iteration_of("each", "each_iter_x") is None
    assert iteration_of("each", "other_iter_1_check") is None
