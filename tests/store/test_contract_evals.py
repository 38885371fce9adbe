"""The eval and file-catalog contract, through the protocols only, on every store."""

from __future__ import annotations

import dataclasses

import pytest

from engine.contracts.catalog import FileCatalog, FileEntry, FileFilters, UploadSession
from engine.contracts.errors import NotFoundError, StorageError
from engine.contracts.evals import (
    BlockExecution,
    EvalDefinition,
    EvalResult,
    EvalRun,
    EvalRunFilters,
    EvalStore,
)
from engine.contracts.store import Store

T0 = 1_700_000_000.0


def an_eval(n: int, *, org: str = "org_a", workflow: str = "wf_1", block: str = "fn"
            ) -> EvalDefinition:
    return EvalDefinition(id=f"wfeval_{n}", workflow_id=workflow, organization_id=org,
                          name=f"eval {n}", block_id=block,
                          source={"type": "manual", "handle_inputs": {}},
                          handle_inputs={"input-json-0": {"type": "json", "data": n}},
                          assertion={"target": {"output_handle_id": "output-json-0"},
                                     "condition": {"kind": "exists"}, "id": "assert_1"},
                          created_at=T0 + n, updated_at=T0 + n)


def a_run(n: int, *, org: str = "org_a", status: str = "pending") -> EvalRun:
    return EvalRun(id=f"wfevalrun_{n}", workflow_id="wf_1", organization_id=org,
                   workflow_version_id="v1", scope={"type": "workflow"}, status=status,
                   trigger="api", total=1, created_at=T0 + n)


def a_result(n: int, run: str, eval_id: str, *, org: str = "org_a") -> EvalResult:
    return EvalResult(id=f"wfresult_{n}", eval_run_id=run, eval_id=eval_id, workflow_id="wf_1",
                      organization_id=org, block_id="fn", block_type="function",
                      status="completed", verdict="passed", created_at=T0 + n,
                      handle_outputs={"output-json-0": {"type": "json", "data": {"x": n}}},
                      assertion_result={"outcome": "passed"}, warnings=["w"])


def test_stores_implement_the_protocols(store: Store) -> None:
    assert isinstance(store, EvalStore) and isinstance(store, FileCatalog)


def test_evals_round_trip_and_page(store: Store) -> None:
    for n in range(5):
        store.save_eval(an_eval(n, block="fn" if n % 2 == 0 else "other"))
    store.save_eval(an_eval(9, org="org_b"))
    assert store.get_eval("wfeval_1", "org_a") == an_eval(1, block="other")
    with pytest.raises(NotFoundError):
        store.get_eval("wfeval_9", "org_a")  # another organization's
    newest = store.page_evals("org_a", workflow_id="wf_1", limit=2)
    assert [e.id for e in newest.items] == ["wfeval_4", "wfeval_3"] and newest.more_after
    rest = store.page_evals("org_a", workflow_id="wf_1", limit=10, after="wfeval_3")
    assert [e.id for e in rest.items] == ["wfeval_2", "wfeval_1", "wfeval_0"]
    assert rest.more_before and not rest.more_after
    only = store.page_evals("org_a", workflow_id="wf_1", block_id="other", descending=False)
    assert [e.id for e in only.items] == ["wfeval_1", "wfeval_3"]
    with pytest.raises(NotFoundError):
        store.page_evals("org_a", workflow_id="wf_1", after="wfeval_9")
    renamed = dataclasses.replace(an_eval(1), name="renamed")
    store.save_eval(renamed)
    assert store.get_eval("wfeval_1", "org_a").name == "renamed"
    store.delete_eval("wfeval_1", "org_a")
    with pytest.raises(NotFoundError):
        store.delete_eval("wfeval_1", "org_a")
    with pytest.raises(NotFoundError):
        store.delete_eval("wfeval_9", "org_a")


def test_a_cancel_request_survives_later_saves(store: Store) -> None:
    store.save_eval_run(a_run(1, status="running"))
    flagged = store.cancel_eval_run("wfevalrun_1", "org_a", reason="stop", now=T0 + 5)
    assert flagged.cancel_requested and flagged.status == "running"
    store.save_eval_run(dataclasses.replace(a_run(1), status="running", started_at=T0 + 2))
    kept = store.get_eval_run("wfevalrun_1", "org_a")
    assert kept.cancel_requested and kept.started_at == T0 + 2
    store.save_eval_run(a_run(2))
    pending = store.cancel_eval_run("wfevalrun_2", "org_a", reason="stop", now=T0 + 6)
    assert (pending.status, pending.completed_at) == ("cancelled", T0 + 6)
    store.save_eval_run(dataclasses.replace(a_run(2), status="completed"))
    assert store.get_eval_run("wfevalrun_2", "org_a").status == "cancelled"
    with pytest.raises(NotFoundError):
        store.cancel_eval_run("wfevalrun_1", "org_b", reason="x", now=T0)


def test_eval_runs_and_results_filter_and_page(store: Store) -> None:
    store.save_eval_run(a_run(1, status="completed"))
    store.save_eval_run(dataclasses.replace(a_run(2), trigger="manual"))
    store.save_eval_run(a_run(3, org="org_b"))
    store.save_eval_result(a_result(1, "wfevalrun_1", "wfeval_1"))
    store.save_eval_result(a_result(2, "wfevalrun_2", "wfeval_2"))
    assert store.get_eval_result("wfresult_1", "org_a") == a_result(1, "wfevalrun_1", "wfeval_1")
    every = store.page_eval_runs("org_a", EvalRunFilters())
    assert [r.id for r in every.items] == ["wfevalrun_2", "wfevalrun_1"]
    def ids(**kw: object) -> list[str]:
        return [r.id for r in store.page_eval_runs("org_a", EvalRunFilters(**kw)).items]
    assert ids(statuses=("completed",)) == ["wfevalrun_1"]
    assert ids(exclude_statuses=("completed",)) == ["wfevalrun_2"]
    assert ids(triggers=("manual",)) == ["wfevalrun_2"]
    assert ids(eval_id="wfeval_1") == ["wfevalrun_1"]
    assert ids(block_id="nope") == []
    assert ids(created_from=T0 + 2) == ["wfevalrun_2"]
    assert ids(created_to=T0 + 2) == ["wfevalrun_1"]
    assert ids(workflow_id="wf_other") == []
    of_run = store.page_eval_results("org_a", eval_run_id="wfevalrun_2")
    assert [r.id for r in of_run.items] == ["wfresult_2"]
    of_eval = store.page_eval_results("org_a", eval_id="wfeval_1")
    assert [r.id for r in of_eval.items] == ["wfresult_1"]
    assert store.page_eval_results("org_b", eval_run_id="wfevalrun_2").items == []
    with pytest.raises(NotFoundError):
        store.get_eval_result("wfresult_1", "org_b")


def test_block_executions(store: Store) -> None:
    for n in range(3):
        store.save_block_execution(BlockExecution(
            id=f"wfsim_{n}", workflow_id="wf_1", organization_id="org_a",
            workflow_version_id="v", source_run_id="run_1", source_step_id="fn",
            block_id="fn", block_type="function", status="completed", created_at=T0 + n,
            handle_outputs={"output-json-0": {"type": "json", "data": n}},
            routing_decisions=["output-json-0"], artifact={"operation": "function_invocation"}))
    page = store.page_block_executions("org_a", run_id="run_1", block_id="fn", limit=2)
    assert [x.id for x in page.items] == ["wfsim_2", "wfsim_1"] and page.more_after
    assert store.get_block_execution("wfsim_0", "org_a").routing_decisions == ["output-json-0"]
    assert store.page_block_executions("org_b", run_id="run_1", block_id="fn").items == []
    with pytest.raises(NotFoundError):
        store.get_block_execution("wfsim_0", "org_b")


def test_values_json_cannot_hold_are_refused(store: Store) -> None:
    with pytest.raises(StorageError):
        store.save_eval(dataclasses.replace(an_eval(1), handle_inputs={"x": object()}))
    with pytest.raises(NotFoundError):
        store.get_eval("wfeval_1", "org_a")


def test_file_entries_and_uploads(store: Store) -> None:
    entry = FileEntry(id="file_1", organization_id="org_a", filename="March.pdf",
                      mime_type="application/pdf", size=10, created_at=T0)
    assert store.record_file(entry) == entry
    again = store.record_file(dataclasses.replace(entry, filename="other.pdf", created_at=T0 + 9))
    assert again == entry  # the first entry wins
    store.record_file(dataclasses.replace(entry, id="file_2", filename="notes.txt",
                                          mime_type="text/plain", created_at=T0 + 1))
    store.record_file(dataclasses.replace(entry, organization_id="org_b"))
    assert store.file_entry("file_1", "org_b").organization_id == "org_b"
    with pytest.raises(NotFoundError):
        store.file_entry("file_2", "org_b")
    files = store.page_files("org_a", FileFilters())
    assert [f.id for f in files.items] == ["file_2", "file_1"]
    assert [f.id for f in store.page_files("org_a", FileFilters(filename="marc")).items
            ] == ["file_1"]
    assert [f.id for f in store.page_files("org_a", FileFilters(mime_type="text/plain")).items
            ] == ["file_2"]
    assert store.page_files("org_a", FileFilters(created_from=T0 + 5)).items == []
    session = UploadSession(id="upl_1", organization_id="org_a", filename="a.pdf",
                            content_type=None, size=3, sha256=None, token="t",
                            created_at=T0, expires_at=T0 + 60)
    store.save_upload(session)
    assert store.upload("upl_1") == session
    store.save_upload(dataclasses.replace(session, file_id="file_1", completed_at=T0 + 1))
    assert store.upload("upl_1").file_id == "file_1"
    with pytest.raises(NotFoundError):
        store.upload("upl_2")
