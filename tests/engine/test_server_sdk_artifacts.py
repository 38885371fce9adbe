"""Artifacts of logic blocks through the SDK's own models, against ``stepwell serve``.

A run with a conditional, a human review gate (approved), a while_loop and a
split_by_key for_each produces ``conditional_evaluation``, ``review_trigger_evaluation``,
``while_loop_termination``, ``function_invocation`` and ``partition`` artifacts;
``artifacts.get`` parses each into the model of its operation (document blocks are
covered by ``test_server_sdk_runs.py``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from retab import Retab

from tests.engine.sdk_server import INVOICE_PDF, KEY_A, ServeProcess, wait_for

LOGIC = """\
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata:
  name: Logic artifacts
spec:
  blocks:
    facts: {type: start_json}
    route:
      type: conditional
      config:
        conditions:
          - branch_name: if
            sub_conditions:
              - {path: data.total, operator: is_greater_than, value: 100}
    gate: {type: hil, config: {instructions: Check the total}}
    refine:
      type: while_loop
      config:
        max_iterations: 4
        termination_conditions:
          - {path: data.status, operator: is_equal_to, value: done}
      children:
        step:
          type: function
          config:
            output_schema:
              type: object
              properties: {attempts: {type: integer}, status: {type: string}}
            code: |
              from models import Input, Output

              def transform(input_data: Input) -> Output:
                  attempts = (input_data.attempts or 0) + 1
                  return Output(attempts=attempts, status="done" if attempts >= 2 else "again")
  edges:
    - source: {block: facts, handle: output-json-0}
      target: {block: route, handle: input-json-0}
    - source: {block: route, handle: output-json-if}
      target: {block: gate, handle: input-json-0}
    - source: {block: facts, handle: output-json-0}
      target: {block: refine, handle: loop-left-in}
"""

PER_INVOICE = """\
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata:
  name: Partition artifacts
spec:
  blocks:
    bundle: {type: start_document}
    per_invoice:
      type: for_each
      config:
        map_method: split_by_key
        key: invoice_number
        instructions: Invoice number at the top of each invoice
      children:
        read: {type: parse}
  edges:
    - source: {block: bundle, handle: output-file-0}
      target: {block: per_invoice, handle: fe-left-in}
    - source: {block: per_invoice, handle: fe-left-out}
      target: {block: read, handle: input-file-0}
"""


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with ServeProcess(tmp_path_factory.mktemp("artifacts")) as process:
        yield process


@pytest.fixture(scope="module")
def a(serve: ServeProcess) -> Retab:
    return serve.client(KEY_A)


def every_artifact(client: Retab, run_id: str) -> dict[str, object]:
    """Each artifact of the run parsed by ``artifacts.get``, by operation (loop checks of
    iterations that did not end the loop have no termination reason the SDK accepts;
    see docs/http.md#artifacts)."""
    found: dict[str, object] = {}
    for item in client.workflows.artifacts.list(run_id=run_id):
        if item.operation == "while_loop_termination":
            found.setdefault(item.operation, item)
            continue
        parsed = client.workflows.artifacts.get(item.id)
        assert parsed.operation == item.operation and parsed.id == item.id
        found.setdefault(item.operation, parsed)
    return found


def test_logic_blocks(a: Retab, serve: ServeProcess) -> None:
    wid = a.workflows.apply(LOGIC).workflow_id
    run = a.workflows.runs.create(wid, json_inputs={"facts": {"total": 250, "attempts": 0,
                                                              "status": "new"}})
    deadline = time.monotonic() + 90
    while (status := a.workflows.runs.get(run.id).lifecycle.status) != "awaiting_review":
        assert status not in ("completed", "error", "cancelled") and time.monotonic() < deadline
        time.sleep(0.1)
    review = a.workflows.reviews.list(run_id=run.id).data[0]
    [proposal] = a.workflows.reviews.versions.list(review.id).data
    a.workflows.reviews.approve(review.id, version_id=proposal.id)
    assert wait_for(a, run.id).lifecycle.status == "completed"
    found = every_artifact(a, run.id)
    assert {"conditional_evaluation", "review_trigger_evaluation", "function_invocation",
            "while_loop_termination"} <= set(found), sorted(found)
    route = found["conditional_evaluation"]
    assert route.selected_handles == ["output-json-if"]  # type: ignore[attr-defined]
    checks = serve.http(KEY_A).get("/v1/workflows/artifacts", params={
        "run_id": run.id, "operation": "while_loop_termination"}).json()["data"]
    ended = [c for c in checks if c["termination_reason"] is not None]
    assert None in [c["termination_reason"] for c in checks]  # the iteration that went on
    assert ended and {c["termination_reason"] for c in ended} == {"condition_matched"}
    for check in ended:
        parsed = a.workflows.artifacts.get(check["id"])
        assert parsed.termination_reason.value == "condition_matched"  # type: ignore[union-attr]


def test_partition(a: Retab) -> None:
    wid = a.workflows.apply(PER_INVOICE).workflow_id
    run = wait_for(a, a.workflows.runs.create(wid, documents={"bundle": INVOICE_PDF}).id)
    assert run.lifecycle.status == "completed", run.lifecycle
    found = every_artifact(a, run.id)
    partition = found["partition"]
    assert partition.key == "invoice_number"  # type: ignore[attr-defined]
    assert [c.key for c in partition.output] == ["INV-2026-0042"]  # type: ignore[attr-defined]
    assert "parse" in found
