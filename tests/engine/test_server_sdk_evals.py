"""Block evals through the SDK against ``stepwell serve``, and ``stepwell evals run``.

``client.workflows.evals`` create/list/get/update/delete, ``evals.runs``
create/get/list/cancel, ``evals.results`` list/get; an eval replays its block on the
draft with saved inputs and checks its assertion, from the API and from the CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from retab import Retab

from tests.engine.sdk_server import (
    INVOICE,
    KEY_A,
    KEY_B,
    LABEL,
    ROOT,
    ServeProcess,
    error_of,
    transform_spec,
    wait_eval_run,
    wait_for,
)

LABEL_EQUALS = {"target": {"output_handle_id": "output-json-0", "path": "label"},
                "condition": {"kind": "equals", "expected": LABEL}}
TOTAL_ABOVE = {"target": {"output_handle_id": "output-json-0", "path": "doubled_total"},
               "condition": {"kind": "number_compare", "op": "gt", "expected": 5000}}


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with ServeProcess(tmp_path_factory.mktemp("evals")) as process:
        yield process


@pytest.fixture(scope="module")
def a(serve: ServeProcess) -> Retab:
    return serve.client(KEY_A)


@pytest.fixture(scope="module")
def b(serve: ServeProcess) -> Retab:
    return serve.client(KEY_B)


@pytest.fixture(scope="module")
def workflow(a: Retab) -> dict[str, Any]:
    wid = a.workflows.apply(transform_spec("Evals")).workflow_id
    run = wait_for(a, a.workflows.runs.create(wid, json_inputs={"invoice_in": INVOICE}).id)
    manual = a.workflows.evals.create(
        wid, {"type": "block", "block_id": "transform"},
        {"type": "manual", "handle_inputs": {"input-json-0": {"type": "json", "data": INVOICE}}},
        LABEL_EQUALS, name="label")
    captured = a.workflows.evals.create(
        wid, {"type": "block", "block_id": "transform"},
        {"type": "run_step", "run_id": run.id}, TOTAL_ABOVE, name="big total")
    return {"workflow_id": wid, "run": run, "manual": manual, "captured": captured}


def test_evals_crud(a: Retab, b: Retab, workflow: dict[str, Any]) -> None:
    wid, manual = workflow["workflow_id"], workflow["manual"]
    assert manual.target.block_id == "transform" and manual.assertion.id
    assert manual.source.type == "manual"
    assert {e.id for e in a.workflows.evals.list(wid)} == {manual.id, workflow["captured"].id}
    assert a.workflows.evals.list(wid, target_block_id="invoice_in").data == []
    renamed = a.workflows.evals.update(manual.id, name="label matches")
    assert renamed.name == "label matches" and a.workflows.evals.get(manual.id).name == renamed.name
    for call in (lambda: b.workflows.evals.get(manual.id),
                 lambda: b.workflows.evals.update(manual.id, name="x"),
                 lambda: b.workflows.evals.delete(manual.id),
                 lambda: b.workflows.evals.list(wid),
                 lambda: b.workflows.evals.create(
                     wid, {"type": "block", "block_id": "transform"},
                     {"type": "manual", "handle_inputs": {}}, LABEL_EQUALS)):
        assert error_of(call).status_code == 404
    spare = a.workflows.evals.create(wid, {"type": "block", "block_id": "transform"},
                                     {"type": "manual"}, LABEL_EQUALS)
    a.workflows.evals.delete(spare.id)
    assert error_of(lambda: a.workflows.evals.get(spare.id)).status_code == 404


def test_bad_evals_are_refused_and_nothing_is_stored(a: Retab, serve: ServeProcess,
                                                      workflow: dict[str, Any]) -> None:
    wid = workflow["workflow_id"]
    http = serve.http(KEY_A)
    before = {e.id for e in a.workflows.evals.list(wid)}
    target = {"type": "block", "block_id": "transform"}
    source = {"type": "manual", "handle_inputs": {}}
    bad_bodies = [
        {"workflow_id": wid, "target": target, "source": source,
         "assertion": {"target": {"output_handle_id": "output-json-0"},
                       "condition": {"kind": "matches_regex", "pattern": "("}}},
        {"workflow_id": wid, "target": target, "source": source,
         "assertion": {"condition": {"kind": "teleports"}}},
        {"workflow_id": wid, "target": {"type": "block", "block_id": "ghost"}, "source": source,
         "assertion": LABEL_EQUALS},
        {"workflow_id": wid, "target": {"type": "block", "block_id": "invoice_in"},
         "source": source, "assertion": LABEL_EQUALS},
        {"workflow_id": wid, "target": target, "assertion": LABEL_EQUALS,
         "source": {"type": "manual", "handle_inputs": {"input-json-7": {"data": 1}}}},
        {"workflow_id": wid, "target": target, "assertion": LABEL_EQUALS,
         "source": {"type": "manual", "handle_inputs": {"input-json-0": {
             "type": "file", "document": {"id": "file_someone_else", "filename": "x.pdf",
                                          "mime_type": "application/pdf"}}}}},
    ]
    for body in bad_bodies:
        response = http.post("/v1/workflows/evals", json=body)
        assert response.status_code in (404, 422), (body, response.text)
    other_run = a.workflows.apply(transform_spec("Evals elsewhere")).workflow_id
    run = wait_for(a, a.workflows.runs.create(other_run, json_inputs={"invoice_in": INVOICE}).id)
    foreign = http.post("/v1/workflows/evals", json={
        "workflow_id": wid, "target": target, "assertion": LABEL_EQUALS,
        "source": {"type": "run_step", "run_id": run.id}})
    assert foreign.status_code == 422  # a run of another workflow
    assert {e.id for e in a.workflows.evals.list(wid)} == before


def test_eval_runs_and_results(a: Retab, b: Retab, workflow: dict[str, Any]) -> None:
    wid = workflow["workflow_id"]
    run = a.workflows.evals.runs.create(wid)
    assert run.total_evals == 2
    done = wait_eval_run(a, run.id)
    assert done.lifecycle.status == "completed"
    assert (done.counts.outcome.passed, done.counts.outcome.failed) == (1, 1)
    results = {r.eval_id: r for r in a.workflows.evals.results.list(run.id)}
    passed = results[workflow["manual"].id]
    assert passed.verdict == "passed" and passed.assertion_result.actual_value == LABEL
    failed = results[workflow["captured"].id]
    assert failed.verdict == "failed" and failed.assertion_result.actual_value == 1025.0
    assert a.workflows.evals.results.get(failed.id).verdict == "failed"
    latest = a.workflows.evals.get(workflow["manual"].id).latest_run_summary
    assert latest is not None and latest.outcome.value == "passed"
    single = a.workflows.evals.runs.create(
        wid, {"type": "single", "eval_id": workflow["manual"].id})
    assert wait_eval_run(a, single.id).total_evals == 1
    by_block = a.workflows.evals.runs.create(wid, {"type": "block", "block_id": "transform"})
    assert wait_eval_run(a, by_block.id).total_evals == 2
    listed = [r.id for r in a.workflows.evals.runs.list(workflow_id=wid)]
    assert listed[:3] == [by_block.id, single.id, run.id]
    assert [r.id for r in a.workflows.evals.runs.list(
        workflow_id=wid, eval_id=workflow["manual"].id)] == listed[:3]
    assert a.workflows.evals.runs.list(workflow_id=wid, status="running").data == []
    ended = error_of(lambda: a.workflows.evals.runs.cancel(run.id))
    assert ended.status_code == 409
    for call in (lambda: b.workflows.evals.runs.get(run.id),
                 lambda: b.workflows.evals.runs.cancel(run.id),
                 lambda: b.workflows.evals.results.list(run.id),
                 lambda: b.workflows.evals.results.get(failed.id),
                 lambda: b.workflows.evals.runs.create(wid)):
        assert error_of(call).status_code == 404
    assert b.workflows.evals.runs.list(workflow_id=wid).data == []


def test_an_eval_follows_the_draft(a: Retab, workflow: dict[str, Any]) -> None:
    wid = a.workflows.apply(transform_spec("Evals on drafts")).workflow_id
    check = a.workflows.evals.create(
        wid, {"type": "block", "block_id": "transform"},
        {"type": "manual", "handle_inputs": {"input-json-0": {"type": "json", "data": INVOICE}}},
        LABEL_EQUALS)
    a.workflows.blocks.update("transform", workflow_id=wid, config={
        "code": "from models import Input, Output\n\ndef transform(input_data: Input) -> "
                "Output:\n    return Output(label='changed', doubled_total=0)\n"})
    done = wait_eval_run(a, a.workflows.evals.runs.create(
        wid, {"type": "single", "eval_id": check.id}).id)
    result = a.workflows.evals.results.list(done.id).data[0]
    assert result.verdict == "failed" and result.assertion_result.actual_value == "changed"


def test_cancel_a_pending_eval_run(a: Retab, serve: ServeProcess,
                                   workflow: dict[str, Any]) -> None:
    wid = workflow["workflow_id"]
    runs = [a.workflows.evals.runs.create(wid) for _ in range(3)]
    cancelled = [a.workflows.evals.runs.cancel(r.id) for r in runs[1:]
                 if a.workflows.evals.runs.get(r.id).lifecycle.status != "completed"]
    for item in cancelled:
        assert item.lifecycle.status in ("cancelled", "running")
    for run in runs:
        assert wait_eval_run(a, run.id).lifecycle.status in ("completed", "cancelled")


def test_stepwell_evals_run_from_the_cli(serve: ServeProcess, workflow: dict[str, Any]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPWELL_")}
    command = [sys.executable, "-m", "engine.cli", "evals", "run", workflow["workflow_id"],
               "--db", str(serve.db), "--org", "org_a", "--json"]
    done = subprocess.run(command, check=False, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 1, done.stderr  # one eval fails on purpose
    report = json.loads(done.stdout)
    verdicts = sorted(r["verdict"] for r in report["results"])
    assert verdicts == ["failed", "passed"] and report["status"] == "completed"
    only = subprocess.run([*command[:-1], "--eval", workflow["manual"].id], check=False,
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert only.returncode == 0, only.stdout + only.stderr
    assert "1/1 evals passed" in only.stdout
    listed = serve.client(KEY_A).workflows.evals.runs.list(workflow_id=workflow["workflow_id"],
                                                           trigger_type="manual").data
    assert len(listed) == 2
