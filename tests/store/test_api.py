"""Read models and queries (store.api): shapes, filters, pagination, scoping."""

from __future__ import annotations

import pytest

from engine.contracts.errors import ConflictError, NotFoundError, UsageError
from engine.contracts.events import InputRecord, RunUpdate
from engine.contracts.store import Store
from engine.contracts.values import Payload, RunStatus
from store.api import ReadAPI, sdk_legacy_step, sdk_run, sdk_step
from tests.store.helpers import T0, S, error_info, ev, frame, lifecycle, new_run


@pytest.fixture
def run_store(store: Store) -> Store:
    """A run with a document start, an extract, a split, a skipped and a failed step."""
    store.create_run(new_run(inputs={"start": {"type": "file", "document": {
        "id": "file_" + "1" * 24, "filename": "in.pdf", "mime_type": "application/pdf"}},
        "json_in": {"a": 1}}), now=T0)
    doc = store.files.put_bytes(b"%PDF-1.4 invoice", "invoice.pdf")
    page = store.files.put_bytes(b"%PDF-1.4 page", "invoice_page_1.pdf")
    store.apply("run_1", lifecycle("start", {"output-file-0": Payload.file(doc)},
                                   block_type="start"), RunUpdate(status=RunStatus.RUNNING),
                now=T0)
    file_in = {"input-file-0": InputRecord(payload=Payload.file(doc), source_step="start",
                                           source_handle="output-file-0")}
    store.apply("run_1", lifecycle("extract", {"output-json-0": Payload.json({"total": 12})},
                                   inputs=file_in, block_type="extract"), now=T0 + 1)
    store.apply("run_1", lifecycle("split", {"output-file-Invoice": Payload.file(page)},
                                   inputs=file_in, block_type="split"), now=T0 + 2)
    store.apply("run_1", [ev("cond", S.PENDING, block_type="conditional"),
                          ev("cond", S.SKIPPED, block_type="conditional",
                             reason="upstream_skipped: x")], now=T0 + 3)
    store.apply("run_1", lifecycle("fn", block_type="functions")[:3]
                + [ev("fn", S.ERROR, block_type="functions", error=error_info())], now=T0 + 4)
    store.apply("run_1", lifecycle("review", block_type="hil")[:3]
                + [ev("review", S.AWAITING_REVIEW, block_type="hil")],
                RunUpdate(status=RunStatus.AWAITING_REVIEW, waiting_for_block_ids=["review"]),
                now=T0 + 5)
    return store


# ------------------------------------------------------------------ modern step shape


def test_step_shape_matches_the_seed(run_store: Store) -> None:
    step = ReadAPI(run_store).get_step("extract").model_dump(mode="json")
    assert step["step_id"] == "extract" and step["run_id"] == "run_1"
    assert (step["block_id"], step["block_type"], step["block_label"]) == (
        "extract", "extract", "Extract")
    assert step["lifecycle"] == {"status": "completed"}
    assert step["started_at"].endswith("Z") and step["completed_at"].endswith("Z")
    assert step["loop_containers"] == []
    assert step["handle_outputs"] == {"output-json-0": {"type": "json", "data": {"total": 12}}}
    doc = step["handle_inputs"]["input-file-0"]
    assert doc["type"] == "file" and set(doc["document"]) == {"id", "filename", "mime_type"}
    assert doc["document"]["filename"] == "invoice.pdf"
    assert step["artifact"] is None and step["retry_count"] == 0 and step["model"] is None
    assert {"cost", "tokens", "trace_spans", "duration_ms", "updated_at"} <= set(step)


def test_lifecycle_variants(run_store: Store) -> None:
    reader = ReadAPI(run_store)
    assert reader.get_step("cond").lifecycle.model_dump() == {
        "status": "skipped", "reason": "upstream_skipped: x"}
    error = reader.get_step("fn").lifecycle.model_dump()
    assert error["status"] == "error" and error["message"] == "boom"
    assert (error["stage"], error["category"]) == ("execution", "permanent")
    assert error["details"]["block_id"] == "fn"
    assert error["details"]["error_code"] == "FUNCTION_RAISED"
    assert reader.get_step("review").lifecycle.status == "awaiting_review"


def test_sdk_mapping_of_block_types(run_store: Store) -> None:
    reader = ReadAPI(run_store)
    assert reader.get_step("fn").block_type == "functions"          # true type by default
    sdk = sdk_step(reader.get_step("fn"))
    assert (sdk["block_type"], sdk["stepwell_block_type"]) == ("function", "functions")
    assert sdk_step(reader.get_step("start"))["block_type"] == "start_document"
    assert sdk_step(reader.get_step("review"))["block_type"] == "note"
    assert sdk_step(reader.get_step("extract"))["block_type"] == "extract"


# ------------------------------------------------------------------ legacy shape


def test_legacy_shape_matches_the_seed(run_store: Store) -> None:
    steps = {s.step_id: s for s in ReadAPI(run_store).list_legacy_steps("run_1")}
    assert list(steps) == ["start", "extract", "split", "cond", "fn", "review"]
    extract = steps["extract"].model_dump(mode="json")
    assert (extract["node_id"], extract["node_type"], extract["node_label"]) == (
        "extract", "extract", "Extract")
    assert extract["organization_id"] == "org_local" and extract["status"] == "completed"
    assert extract["output"] == {"total": 12}
    assert extract["duration_ms"] == 0
    assert extract["handle_inputs"]["input-file-0"]["document"]["file_id"].startswith("file_")
    assert "id" not in extract["handle_inputs"]["input-file-0"]["document"]
    assert extract["input_document"]["filename"] == "invoice.pdf"
    split = steps["split"]
    assert split.split_documents is not None and list(split.split_documents) == ["Invoice"]
    assert split.output_document is None and split.output is None
    assert steps["start"].output_document is not None
    assert steps["review"].status == "waiting_for_human"
    assert steps["review"].requires_human_review is True
    fn = steps["fn"]
    assert (fn.error, fn.error_stage, fn.error_category) == ("boom", "execution", "permanent")
    assert fn.error_details is not None and fn.error_details.block_name == "Fn"
    assert steps["extract"].error is None
    assert sdk_legacy_step(steps["start"])["node_type"] == "start"


def test_legacy_loop_fields(store: Store) -> None:
    store.create_run(new_run(), now=T0)
    store.apply("run_1", [ev("loop_iter_3_leaf", S.PENDING, block_id="leaf",
                             scope=(frame("outer", 1), frame("loop", 3)))], now=T0)
    [step] = ReadAPI(store).list_legacy_steps("run_1")
    assert (step.loop_id, step.iteration) == ("loop", 3)
    assert step.iteration_context is not None
    assert [c.container_id for c in step.iteration_context.containers] == ["outer", "loop"]


# ------------------------------------------------------------------ runs


def test_run_shape(run_store: Store) -> None:
    run = ReadAPI(run_store).get_run("run_1").model_dump(mode="json")
    assert (run["id"], run["workflow_id"], run["workflow_version_id"]) == (
        "run_1", "wf_1", "sha_1")
    assert run["trigger"]["type"] == "manual"
    assert run["lifecycle"] == {"status": "awaiting_review", "waiting_for_block_ids": ["review"]}
    assert run["timing"]["created_at"].endswith("Z") and run["timing"]["started_at"]
    assert run["inputs"]["documents"]["start"]["filename"] == "in.pdf"
    assert run["inputs"]["json_data"] == {"json_in": {"a": 1}}
    assert run["organization_id"] == "org_local" and run["metadata"] == {}


def test_run_error_and_cancel_lifecycles(store: Store) -> None:
    store.create_run(new_run("r_err"), now=T0)
    store.apply("r_err", lifecycle("a")[:3] + [ev("a", S.ERROR, error=error_info())],
                RunUpdate(status=RunStatus.ERROR, failing_step_id="a", error=error_info()),
                now=T0)
    store.create_run(new_run("r_can"), now=T0)
    store.apply("r_can", [], RunUpdate(status=RunStatus.CANCELLED, reason="user asked"), now=T0)
    store.create_run(new_run("r_q"), now=T0)
    store.apply("r_q", [], RunUpdate(status=RunStatus.QUEUED), now=T0)
    reader = ReadAPI(store)
    err = reader.get_run("r_err").lifecycle.model_dump()
    assert err["failing_step_id"] == "a" and err["message"] == "boom"
    assert err["details"]["block_id"] == "a"
    assert reader.get_run("r_can").lifecycle.model_dump() == {
        "status": "cancelled", "reason": "user asked"}
    assert reader.get_run("r_q").lifecycle.status == "queued"
    assert sdk_run(reader.get_run("r_q"))["lifecycle"] == {"status": "pending"}
    assert reader.get_run("r_err").timing.completed_at is not None


def test_list_runs_paginates_newest_first(store: Store) -> None:
    for i in range(7):
        store.create_run(new_run(f"run_{i}", workflow_id="wf_a" if i % 2 else "wf_b"),
                         now=T0 + i)
    reader = ReadAPI(store)
    first = reader.list_runs(limit=3)
    assert [r.id for r in first.data] == ["run_6", "run_5", "run_4"]
    assert first.list_metadata.before is None and first.list_metadata.after == "run_4"
    second = reader.list_runs(limit=3, after="run_4")
    assert [r.id for r in second.data] == ["run_3", "run_2", "run_1"]
    assert second.list_metadata.model_dump() == {"before": "run_3", "after": "run_1"}
    last = reader.list_runs(limit=3, after="run_1")
    assert [r.id for r in last.data] == ["run_0"] and last.list_metadata.after is None
    back = reader.list_runs(limit=3, before="run_3")
    assert [r.id for r in back.data] == ["run_6", "run_5", "run_4"]
    assert back.list_metadata.before is None
    assert [r.id for r in reader.list_runs(workflow_id="wf_a").data] == ["run_5", "run_3", "run_1"]
    assert reader.list_runs(status="running").data == []
    assert len(reader.list_runs(status=["pending", "running"]).data) == 7


def test_organization_scoping(store: Store) -> None:
    store.create_run(new_run("mine", organization_id="org_a"), now=T0)
    store.create_run(new_run("theirs", organization_id="org_b"), now=T0)
    store.apply("mine", [ev("a", S.PENDING)], now=T0)
    store.apply("theirs", [ev("a", S.PENDING)], now=T0)
    scoped = ReadAPI(store, organization_id="org_a")
    assert [r.id for r in scoped.list_runs().data] == ["mine"]
    with pytest.raises(NotFoundError):
        scoped.get_run("theirs")
    with pytest.raises(NotFoundError):
        scoped.list_steps("theirs")
    with pytest.raises(NotFoundError):
        scoped.get_step("a", run_id="theirs")
    assert scoped.get_step("a").run_id == "mine"      # no conflict: the other run is hidden
    assert scoped.get_step("a", run_id="mine").run_id == "mine"
    assert [s.step_id for s in scoped.list_steps("mine").data] == ["a"]
    with pytest.raises(ConflictError):
        ReadAPI(store).get_step("a")


# ------------------------------------------------------------------ steps list


def _many_steps(store: Store, n: int) -> None:
    store.create_run(new_run(), now=T0)
    events = []
    for i in range(n):
        block = "even" if i % 2 == 0 else "odd"
        events += [ev(f"s{i:03d}", S.PENDING, block_id=block,
                      block_type="extract" if i % 3 == 0 else "parse")]
        if i % 5 == 0:
            events += [ev(f"s{i:03d}", S.SKIPPED, block_id=block, reason="r",
                          block_type="extract" if i % 3 == 0 else "parse")]
    store.apply("run_1", events, now=T0)


def test_pagination_across_pages(store: Store) -> None:
    _many_steps(store, 25)
    reader = ReadAPI(store)
    seen, after, pages = [], None, 0
    while True:
        page = reader.list_steps("run_1", limit=10, after=after)
        pages += 1
        seen += [s.step_id for s in page.data]
        assert page.list_metadata.before == (None if pages == 1 else page.data[0].step_id)
        after = page.list_metadata.after
        if after is None:
            break
        assert after == page.data[-1].step_id
    assert pages == 3 and seen == [f"s{i:03d}" for i in range(25)]
    back = reader.list_steps("run_1", limit=10, before="s020")
    assert [s.step_id for s in back.data] == [f"s{i:03d}" for i in range(10, 20)]
    assert back.list_metadata.model_dump() == {"before": "s010", "after": "s019"}
    exact = reader.list_steps("run_1", limit=25)
    assert exact.list_metadata.model_dump() == {"before": None, "after": None}


def test_step_filters(store: Store) -> None:
    _many_steps(store, 30)
    reader = ReadAPI(store)
    odd = reader.list_steps("run_1", block_id="odd", limit=100).data
    assert len(odd) == 15 and {s.block_id for s in odd} == {"odd"}
    skipped = reader.list_steps("run_1", status="skipped").data
    assert [s.step_id for s in skipped] == [f"s{i:03d}" for i in range(0, 30, 5)]
    both = reader.list_steps("run_1", status=["skipped", "pending"]).data
    assert len(both) == 30
    extract_skipped = reader.list_steps("run_1", block_type=["extract"], status=["skipped"]).data
    assert [s.step_id for s in extract_skipped] == ["s000", "s015"]
    assert [s.step_id for s in reader.list_steps("run_1", step_id="s007").data] == ["s007"]
    filtered = reader.list_steps("run_1", block_id="even", limit=4)
    assert [s.step_id for s in filtered.data] == ["s000", "s002", "s004", "s006"]
    nxt = reader.list_steps("run_1", block_id="even", limit=4, after=filtered.list_metadata.after)
    assert [s.step_id for s in nxt.data] == ["s008", "s010", "s012", "s014"]


def test_waiting_for_human_is_an_alias(run_store: Store) -> None:
    page = ReadAPI(run_store).list_steps("run_1", status="waiting_for_human")
    assert [s.step_id for s in page.data] == ["review"]


def test_bad_list_arguments(store: Store) -> None:
    _many_steps(store, 3)
    reader = ReadAPI(store)
    with pytest.raises(UsageError):
        reader.list_steps("run_1", after="s000", before="s002")
    with pytest.raises(UsageError):
        reader.list_steps("run_1", limit=0)
    with pytest.raises(NotFoundError, match="Cursors"):
        reader.list_steps("run_1", after="nope")
    with pytest.raises(NotFoundError):
        reader.list_steps("no_run")


# ------------------------------------------------------------------ get step


def test_get_step_conflict_and_not_found(store: Store) -> None:
    for run_id in ("run_a", "run_b"):
        store.create_run(new_run(run_id), now=T0)
        store.apply(run_id, lifecycle("extract"), now=T0)
    reader = ReadAPI(store)
    with pytest.raises(ConflictError) as err:
        reader.get_step("extract")
    assert "run_a" in str(err.value) and "run_b" in str(err.value)
    assert "run_id" in str(err.value)
    assert reader.get_step("extract", run_id="run_b").run_id == "run_b"
    with pytest.raises(NotFoundError):
        reader.get_step("missing")
    with pytest.raises(NotFoundError):
        reader.get_step("missing", run_id="run_a")
    with pytest.raises(NotFoundError):
        reader.get_step("extract", run_id="run_zzz")
