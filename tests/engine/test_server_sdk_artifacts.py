"""Every artifact operation through the SDK's own models, against ``stepwell serve``.

Runs with each block kind that records an operation: document blocks (parse, extract,
classifier, split), a conditional, a human review gate (approved), a while_loop, a
split_by_key for_each, an edit of a PDF form, an api_call (to a local HTTP server) and
functions. ``artifacts.list`` and ``artifacts.get`` parse every artifact of every run
into the model of its operation, and together they cover every operation the SDK knows.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from retab import Retab

from engine.server.shapes import SDK_ARTIFACT_OPERATIONS
from tests.blocks import pdfs
from tests.engine.sdk_server import (
    DOCUMENT_SPEC,
    INVOICE_PDF,
    KEY_A,
    ServeProcess,
    wait_for,
)

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


FORM_AND_CALL = """\
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata:
  name: Form and call
spec:
  blocks:
    form: {{type: start_document}}
    facts: {{type: start_json}}
    fill: {{type: edit}}
    check:
      type: api_call
      config:
        url: {url}/validate
        method: POST
        output_schema:
          type: object
          properties: {{valid: {{type: boolean}}}}
  edges:
    - source: {{block: form, handle: output-file-0}}
      target: {{block: fill, handle: input-file-0}}
    - source: {{block: facts, handle: output-json-0}}
      target: {{block: fill, handle: input-json-0}}
    - source: {{block: facts, handle: output-json-0}}
      target: {{block: check, handle: input-json-0}}
"""


class Validator(BaseHTTPRequestHandler):
    """Answers every POST with ``{"valid": true}``."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"valid": True}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def validator() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Validator)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with ServeProcess(tmp_path_factory.mktemp("artifacts"),
                      "--egress-allow", "127.0.0.1") as process:
        yield process


@pytest.fixture(scope="module")
def a(serve: ServeProcess) -> Retab:
    return serve.client(KEY_A)


def every_artifact(client: Retab, run_id: str) -> dict[str, Any]:
    """Each artifact of the run parsed by ``artifacts.get``, by operation (the first of
    each); every one listed must parse."""
    found: dict[str, Any] = {}
    for item in client.workflows.artifacts.list(run_id=run_id):
        parsed = client.workflows.artifacts.get(item.id)
        assert parsed.operation == item.operation and parsed.id == item.id
        found.setdefault(item.operation, parsed)
    return found


@pytest.fixture(scope="module")
def logic_run(a: Retab) -> str:
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
    return str(run.id)


@pytest.fixture(scope="module")
def partition_run(a: Retab) -> str:
    wid = a.workflows.apply(PER_INVOICE).workflow_id
    run = wait_for(a, a.workflows.runs.create(wid, documents={"bundle": INVOICE_PDF}).id)
    assert run.lifecycle.status == "completed", run.lifecycle
    return str(run.id)


@pytest.fixture(scope="module")
def form_run(a: Retab, validator: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    form = tmp_path_factory.mktemp("form") / "form.pdf"
    form.write_bytes(pdfs.form([("name", "text"), ("address", "text")]))
    wid = a.workflows.apply(FORM_AND_CALL.format(url=validator)).workflow_id
    run = wait_for(a, a.workflows.runs.create(wid, documents={"form": form}, json_inputs={
        "facts": {"name": "Acme Corp", "address": "12 Main St"}}).id)
    assert run.lifecycle.status == "completed", run.lifecycle
    return str(run.id)


@pytest.fixture(scope="module")
def document_run(a: Retab) -> str:
    wid = a.workflows.apply(DOCUMENT_SPEC).workflow_id
    run = wait_for(a, a.workflows.runs.create(wid, documents={"upload": INVOICE_PDF}).id)
    assert run.lifecycle.status == "completed", run.lifecycle
    return str(run.id)


def test_every_operation_parses(a: Retab, logic_run: str, partition_run: str, form_run: str,
                                document_run: str) -> None:
    seen: set[str] = set()
    for run_id in (logic_run, partition_run, form_run, document_run):
        seen |= set(every_artifact(a, run_id))
    assert seen == SDK_ARTIFACT_OPERATIONS


def test_logic_blocks(a: Retab, serve: ServeProcess, logic_run: str) -> None:
    found = every_artifact(a, logic_run)
    assert {"conditional_evaluation", "review_trigger_evaluation", "function_invocation",
            "while_loop_termination"} <= set(found), sorted(found)
    route = found["conditional_evaluation"]
    assert route.selected_handles == ["output-json-if"]  # type: ignore[attr-defined]
    checks = serve.http(KEY_A).get("/v1/workflows/artifacts", params={
        "run_id": logic_run, "operation": "while_loop_termination"}).json()["data"]
    went_on = [c for c in checks if c.get("should_continue")]
    assert [c["stepwell_termination_reason"] for c in went_on] == [None]  # iteration 0
    assert [c["termination_reason"] for c in went_on] == ["max_iterations_reached"]
    ended = {c["termination_reason"] for c in checks if not c.get("should_continue")}
    assert ended == {"condition_matched"}
    for check in checks:
        parsed = a.workflows.artifacts.get(check["id"])
        reason = parsed.termination_reason  # type: ignore[union-attr]
        assert reason.value == check["termination_reason"]


def test_edit_and_api_call(a: Retab, form_run: str) -> None:
    found = every_artifact(a, form_run)
    edit = found["edit"]
    assert {f.key: f.value for f in edit.output.form_data} == {"name": "Acme Corp",
                                                               "address": "12 Main St"}
    call = found["api_call_invocation"]
    assert [x.response_status for x in call.attempts] == [200]


def test_partition(a: Retab, partition_run: str) -> None:
    found = every_artifact(a, partition_run)
    partition = found["partition"]
    assert partition.key == "invoice_number"  # type: ignore[attr-defined]
    assert [c.key for c in partition.output] == ["INV-2026-0042"]  # type: ignore[attr-defined]
    assert "parse" in found
