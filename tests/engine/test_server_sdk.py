"""The unmodified retab SDK (0.0.160) against a live `stepwell` HTTP server on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from retab import Retab
from retab.types.standards import PreparedRequest
from retab.types.workflows.steps import WorkflowRunStep

from engine.server import create_app
from tests.engine.live_server import LiveServer
from tests.engine.server_workflows import (
    ECHO,
    INVOICE_PDF,
    ORDER,
    ORDER_WITH_INVOICE,
    REVIEWED,
    SLOW_LOOP,
)

KEY = "sk_test_sdk"
TERMINAL = {"completed", "error", "cancelled"}

# Seed `list-run-steps` (legacy shape): required fields and the enums of node_type/status.
LEGACY_REQUIRED = ("node_id", "node_type", "node_label", "status")
LEGACY_FIELDS = ("run_id", "organization_id", "node_id", "step_id", "node_type", "node_label",
                 "status", "started_at", "completed_at", "duration_ms", "output",
                 "handle_outputs", "handle_inputs", "created_at", "updated_at")
LEGACY_NODE_TYPES = {
    "start", "start_json", "end", "note", "parse", "edit", "extract", "split", "classifier",
    "conditional", "hil", "api_call", "functions", "reshape", "while_loop", "for_each",
    "merge_pdf", "merge_dicts", "while_loop_sentinel_start", "while_loop_sentinel_end",
    "for_each_sentinel_start", "for_each_sentinel_end"}
LEGACY_STATUSES = {"pending", "queued", "running", "completed", "skipped", "error",
                   "waiting_for_human", "cancelled"}
# Seed `get-step` (modern shape): required fields and the block_type enum.
STEP_REQUIRED = ("block_id", "step_id", "block_type", "block_label", "lifecycle", "run_id")
STEP_FIELDS = ("started_at", "completed_at", "loop_containers", "artifact", "retry_count",
               "created_at", "handle_outputs", "handle_inputs", "model")
STEP_BLOCK_TYPES = {
    "start_document", "start_json", "note", "parse", "edit", "extract", "split", "classifier",
    "conditional", "api_call", "function", "while_loop", "for_each", "merge_dicts",
    "while_loop_sentinel_start", "while_loop_sentinel_end", "for_each_sentinel_start",
    "for_each_sentinel_end"}
STEP_STATUSES = {"pending", "queued", "running", "completed", "awaiting_review", "error",
                 "skipped", "cancelled"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    db = tmp_path_factory.mktemp("sdk") / "stepwell.db"
    with LiveServer(create_app(db, api_keys={KEY: "org_sdk"})) as live:
        yield live


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Retab:
    return Retab(api_key=KEY, base_url=server.url, max_retries=0, timeout=30)


def wait_for(client: Retab, run_id: str, statuses: set[str], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        run = client.workflows.runs.get(run_id)
        if run.lifecycle.status in statuses:
            return run
        assert time.monotonic() < deadline, f"run {run_id} stuck in {run.lifecycle.status}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def order_run(client: Retab) -> Any:
    applied = client.workflows.apply(ORDER_WITH_INVOICE)
    assert applied.action == "create" and applied.created
    assert (applied.block_count, applied.edge_count) == (7, 5)
    run = client.workflows.runs.create(
        applied.workflow_id, documents={"upload": INVOICE_PDF}, json_inputs={"order": ORDER},
        metadata={"ticket": "T-1"})
    assert run.workflow_id == applied.workflow_id
    assert run.lifecycle.status in ("pending", "running")
    return wait_for(client, run.id, TERMINAL)


def test_run_with_document_and_json_completes(client: Retab, order_run: Any) -> None:
    assert order_run.lifecycle.status == "completed", order_run.lifecycle
    assert order_run.trigger.type.value == "api"
    assert order_run.metadata == {"ticket": "T-1"}
    doc = order_run.inputs.documents["upload"]
    assert (doc.filename, doc.mime_type) == ("invoice.pdf", "application/pdf")
    assert order_run.inputs.json_data == {"order": ORDER}
    assert order_run.timing.completed_at >= order_run.timing.started_at
    listed = client.workflows.runs.list(workflow_id=order_run.workflow_id)
    assert [r.id for r in listed.data] == [order_run.id]


def test_steps_list_pages_through_every_step(client: Retab, order_run: Any) -> None:
    pages: list[list[WorkflowRunStep]] = []
    after = None
    while True:
        page = client.workflows.steps.list(run_id=order_run.id, limit=4, after=after)
        pages.append(page.data)
        after = page.list_metadata.after
        if after is None:
            break
        assert page.list_metadata.after == page.data[-1].step_id
    ids = [s.step_id for p in pages for s in p]
    assert len(pages) >= 4 and all(len(p) == 4 for p in pages[:-1])
    assert len(ids) == len(set(ids)) == 3 * 3 + 6  # 3 iterations of 3 steps, 6 others
    assert ids[:6] == ["upload", "order", "read", "each_line", "total", "done"]  # creation order
    assert ids[6:9] == ["each_line_iter_0_each_line_sentinel_start", "each_line_iter_0_price",
                        "each_line_iter_0_each_line_sentinel_end"]
    # the SDK's own auto-pagination yields the same steps, in the same order
    assert [s.step_id for s in client.workflows.steps.list(run_id=order_run.id, limit=4)] == ids
    second = client.workflows.steps.list(run_id=order_run.id, limit=4, after=pages[0][-1].step_id)
    assert second.list_metadata.before == second.data[0].step_id
    back = client.workflows.steps.list(run_id=order_run.id, limit=4,
                                       before=second.data[0].step_id)
    assert [s.step_id for s in back.data] == [s.step_id for s in pages[0]]


def test_steps_get_returns_each_step(client: Retab, order_run: Any) -> None:
    steps = list(client.workflows.steps.list(run_id=order_run.id, limit=5))
    for listed in steps:
        step = client.workflows.steps.get(listed.step_id, run_id=order_run.id)
        assert step.step_id == listed.step_id and step.run_id == order_run.id
        assert step.lifecycle.status == "completed"
        assert step.block_type.value in STEP_BLOCK_TYPES
    price = client.workflows.steps.get("each_line_iter_1_price", run_id=order_run.id)
    assert price.handle_outputs["output-json-0"].data == {"sku": "B-2", "total": 99.5}
    assert [(c.container_id, c.iteration) for c in price.loop_containers] == [("each_line", 1)]
    assert price.artifact is not None and price.artifact.operation.value == "function_invocation"
    read = client.workflows.steps.get("read", run_id=order_run.id)
    document = read.handle_inputs["input-file-0"].document
    assert document.filename == "invoice.pdf" and document.id.startswith("file_")
    assert "INV" in read.handle_outputs["output-json-0"].data["text"]
    total = client.workflows.steps.get("total", run_id=order_run.id)
    assert total.handle_outputs["output-json-0"].data == {"total": 128.5, "lines": 3}
    done = client.workflows.steps.get("done", run_id=order_run.id)
    assert done.block_type.value == "note"  # `end` is not in the SDK's enum


def test_steps_list_filters(client: Retab, order_run: Any) -> None:
    prices = client.workflows.steps.list(run_id=order_run.id, block_id="price", limit=50)
    assert [s.step_id for s in prices.data] == [f"each_line_iter_{i}_price" for i in range(3)]
    functions = client.workflows.steps.list(run_id=order_run.id, block_type=["function"])
    assert {s.block_id for s in functions.data} == {"price", "total"}
    done = client.workflows.steps.list(run_id=order_run.id, status=["skipped", "error"])
    assert done.data == [] and done.list_metadata.after is None


def raw(client: Retab, method: str, url: str, **params: Any) -> Any:
    """A request through the SDK's own transport (auth, error handling)."""
    return client._prepared_request(PreparedRequest(method=method, url=url, params=params))


def test_legacy_run_steps_shape_matches_the_seed(client: Retab, order_run: Any) -> None:
    steps = raw(client, "GET", f"/v1/workflows/runs/{order_run.id}/steps")
    assert isinstance(steps, list) and len(steps) == 15
    for step in steps:
        assert all(step.get(f) is not None for f in LEGACY_REQUIRED), step
        assert set(LEGACY_FIELDS) <= set(step)
        assert step["node_type"] in LEGACY_NODE_TYPES and step["status"] in LEGACY_STATUSES
        assert step["run_id"] == order_run.id and step["organization_id"] == "org_sdk"
    by_id = {s["step_id"]: s for s in steps}
    assert by_id["upload"]["node_type"] == "start"
    assert by_id["total"]["node_type"] == "functions"
    assert by_id["done"]["node_type"] == "end"
    assert by_id["read"]["handle_inputs"]["input-file-0"]["document"]["file_id"].startswith("file_")
    assert by_id["total"]["output"] == {"total": 128.5, "lines": 3}
    assert by_id["each_line_iter_0_price"]["iteration"] == 0


def test_modern_step_shape_matches_the_seed(client: Retab, order_run: Any) -> None:
    for step_id in ("upload", "read", "each_line_iter_2_price", "total", "done"):
        step = raw(client, "GET", f"/v1/workflows/steps/{step_id}", run_id=order_run.id)
        assert all(step.get(f) is not None for f in STEP_REQUIRED), step
        assert set(STEP_FIELDS) <= set(step)
        assert step["block_type"] in STEP_BLOCK_TYPES
        assert step["lifecycle"]["status"] in STEP_STATUSES
        WorkflowRunStep.model_validate(step)
    done = raw(client, "GET", "/v1/workflows/steps/done", run_id=order_run.id)
    assert (done["block_type"], done["stepwell_block_type"]) == ("note", "end")
    assert done["artifact"] is None and done["stepwell_artifact"]["operation"] == "end"
    read = raw(client, "GET", "/v1/workflows/steps/read", run_id=order_run.id)
    assert read["handle_inputs"]["input-file-0"]["document"]["mime_type"] == "application/pdf"


def test_cancel_stops_a_long_run(client: Retab) -> None:
    applied = client.workflows.apply(SLOW_LOOP)
    run = client.workflows.runs.create(applied.workflow_id, json_inputs={"seed": {"round": 0}})
    deadline = time.monotonic() + 20
    while not client.workflows.steps.list(run_id=run.id, block_id="step",
                                          status=["running"]).data:
        assert time.monotonic() < deadline, "the slow step never started"
        time.sleep(0.05)
    asked = time.monotonic()
    result = client.workflows.runs.cancel(run.id)
    took = time.monotonic() - asked
    assert result.run.id == run.id
    assert result.cancellation_status.value == "cancelled"
    assert result.run.lifecycle.status == "cancelled" and took < 5.0
    final = client.workflows.runs.get(run.id)
    assert final.lifecycle.status == "cancelled"
    statuses = {s.lifecycle.status for s in client.workflows.steps.list(run_id=run.id, limit=100)}
    assert "running" not in statuses and "cancelled" in statuses
    rounds = client.workflows.steps.list(run_id=run.id, block_id="step", limit=1000).data
    assert len(rounds) < 20  # stopped long before max_iterations
    again = httpx.post(f"{client.base_url}/v1/workflows/runs/{run.id}/cancel",
                       headers={"Api-Key": KEY})
    assert again.status_code == 409 and again.json()["detail"]["code"] == "RUN_ALREADY_ENDED"


def test_cancel_right_after_create(client: Retab) -> None:
    applied = client.workflows.apply(SLOW_LOOP)
    run = client.workflows.runs.create(applied.workflow_id, json_inputs={"seed": {"round": 0}})
    result = client.workflows.runs.cancel(run.id)
    assert result.run.lifecycle.status == "cancelled"
    time.sleep(0.5)  # whatever the run's thread was doing has settled by now
    final = client.workflows.runs.get(run.id)
    assert final.lifecycle.status == "cancelled"
    steps = client.workflows.steps.list(run_id=run.id, limit=100).data
    assert all(s.lifecycle.status in ("completed", "cancelled", "skipped") for s in steps)


def start_review(client: Retab, amount: float) -> tuple[Any, Any]:
    applied = client.workflows.apply(REVIEWED)
    run = client.workflows.runs.create(applied.workflow_id, json_inputs={"claim": {"amount": amount}})
    waiting = wait_for(client, run.id, {"awaiting_review", *TERMINAL})
    assert waiting.lifecycle.status == "awaiting_review"
    assert waiting.lifecycle.waiting_for_block_ids == ["gate"]
    [review] = client.workflows.reviews.list(run_id=run.id).data
    return run, review


def test_approve_a_review_resumes_the_run(client: Retab) -> None:
    run, review = start_review(client, 120)
    assert (review.block_id, review.step_id, review.run_id) == ("gate", "gate", run.id)
    assert review.block_type == "extract" and review.decision is None
    assert review.triggered_by.kind == "always"
    [proposal] = client.workflows.reviews.versions.list(review.id).data
    assert proposal.snapshot == {"amount": 120} and proposal.parent_id is None
    decided = client.workflows.reviews.approve(review.id, version_id=proposal.id)
    assert decided.submission_status == "accepted" and decided.resume_status == "resumed"
    assert decided.review.decision.verdict == "approved"
    assert decided.review.decision.version_id == proposal.id
    done = wait_for(client, run.id, TERMINAL)
    assert done.lifecycle.status == "completed"
    book = client.workflows.steps.get("book", run_id=run.id)
    assert book.handle_outputs["output-json-0"].data == {"booked": 120}
    again = client.workflows.reviews.approve(review.id, version_id=proposal.id)
    assert again.submission_status == "already_applied" and again.resume_status == "skipped"
    assert client.workflows.reviews.list(run_id=run.id).data == []  # no longer pending
    decided_list = client.workflows.reviews.list(run_id=run.id, decision_status="approved")
    assert [r.id for r in decided_list.data] == [review.id]


def test_approve_a_corrected_version(client: Retab) -> None:
    run, review = start_review(client, 80)
    [proposal] = client.workflows.reviews.versions.list(review.id).data
    fixed = client.workflows.reviews.versions.create(
        review.id, parent_id=proposal.id, snapshot={"amount": 75}, note="typo")
    assert fixed.parent_id == proposal.id and fixed.author.kind == "human"
    assert client.workflows.reviews.versions.get(fixed.id).snapshot == {"amount": 75}
    stale = httpx.post(f"{client.base_url}/v1/workflows/reviews/{review.id}/approve",
                       json={"version_id": proposal.id}, headers={"Api-Key": KEY})
    assert stale.status_code == 409
    assert stale.json()["detail"]["details"]["discarded_version_ids"] == [fixed.id]
    decided = client.workflows.reviews.approve(review.id, version_id=fixed.id)
    assert decided.review.decision.version_id == fixed.id
    wait_for(client, run.id, TERMINAL)
    book = client.workflows.steps.get("book", run_id=run.id)
    assert book.handle_outputs["output-json-0"].data == {"booked": 75}


def test_reject_a_review_skips_downstream(client: Retab) -> None:
    run, review = start_review(client, 5000)
    [proposal] = client.workflows.reviews.versions.list(review.id).data
    decided = client.workflows.reviews.reject(review.id, version_id=proposal.id,
                                              reason="not our supplier")
    assert decided.review.decision.verdict == "rejected"
    assert decided.review.decision.reason == "not our supplier"
    done = wait_for(client, run.id, TERMINAL)
    assert done.lifecycle.status == "completed"
    book = client.workflows.steps.get("book", run_id=run.id)
    assert book.lifecycle.status == "skipped" and book.lifecycle.reason == "review_rejected: gate"


def test_workflow_registry_round_trip(client: Retab) -> None:
    applied = client.workflows.apply(ECHO)
    wf = client.workflows.get(applied.workflow_id)
    assert wf.name == "Echo" and wf.published.version_id
    assert client.workflows.spec.get(applied.workflow_id).yaml_definition == ECHO
    same = client.workflows.apply(ECHO, workflow_id=applied.workflow_id)
    assert same.action == "noop" and not same.created
    changed = client.workflows.apply(ECHO.replace("name: Echo", "name: Echo 2"),
                                     workflow_id=applied.workflow_id)
    assert changed.action == "noop"  # the name is not part of the definition's digest
    bigger = ECHO.replace("done: {type: end, label: Done}",
                          "done: {type: end, label: Done}\n    memo: {type: note, label: Memo}")
    assert client.workflows.apply(bigger, workflow_id=applied.workflow_id).action == "update"
    assert client.workflows.spec.validate(ECHO).is_valid
    ids = [w.id for w in client.workflows.list(limit=100)]
    assert applied.workflow_id in ids
    old = client.workflows.runs.create(applied.workflow_id, json_inputs={"data": 1},
                                       version=wf.published.version_id)
    assert old.workflow_version_id == wf.published.version_id


def test_sdk_errors_are_typed(client: Retab, tmp_path: Path) -> None:
    from retab.exceptions import APIError

    with pytest.raises(APIError) as missing:
        client.workflows.runs.get("run_missing")
    assert missing.value.status_code == 404 and missing.value.code == "NOT_FOUND"
    with pytest.raises(APIError) as invalid:
        client.workflows.apply("apiVersion: workflows.retab.com/v1alpha2\nkind: Workflow\n"
                               "metadata: {name: x}\nspec:\n  blocks:\n    a: {type: nope}\n")
    assert invalid.value.status_code == 422 and invalid.value.code == "INVALID_WORKFLOW"
    assert invalid.value.details["diagnostics"][0]["code"]
