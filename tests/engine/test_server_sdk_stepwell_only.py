"""Stepwell-only artifacts (``end``, ``merge_pdf``) through the SDK, against ``stepwell serve``.

The SDK's ``WorkflowArtifact`` union has no model for them, so ``artifacts.list`` leaves
them out and ``artifacts.get`` of one is a 404 saying where to read it. A run of
examples/invoice_routing, whose ``end`` block records an ``end`` artifact.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from retab import Retab

from engine.server.shapes import SDK_ARTIFACT_OPERATIONS
from tests.engine.sdk_server import KEY_A, KEY_B, ROOT, ServeProcess, error_of, wait_for

ROUTING = ROOT / "examples" / "invoice_routing"


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with ServeProcess(tmp_path_factory.mktemp("stepwell_only")) as process:
        yield process


@pytest.fixture(scope="module")
def a(serve: ServeProcess) -> Retab:
    return serve.client(KEY_A)


@pytest.fixture(scope="module")
def routing_run(a: Retab) -> str:
    wid = a.workflows.apply((ROUTING / "workflow.yaml").read_text()).workflow_id
    invoice = json.loads((ROUTING / "invoice.json").read_text())
    run = wait_for(a, a.workflows.runs.create(wid, json_inputs={"invoice": invoice}).id)
    assert run.lifecycle.status == "completed", run.lifecycle
    return str(run.id)


def test_list_holds_only_what_the_sdk_parses(a: Retab, serve: ServeProcess,
                                             routing_run: str) -> None:
    listed = list(a.workflows.artifacts.list(run_id=routing_run))
    assert listed and {x.operation for x in listed} <= SDK_ARTIFACT_OPERATIONS
    for item in listed:
        assert a.workflows.artifacts.get(item.id).operation == item.operation


def test_get_of_an_end_artifact_is_a_clear_404(a: Retab, serve: ServeProcess,
                                               routing_run: str) -> None:
    steps = serve.http(KEY_A).get("/v1/workflows/steps", params={"run_id": routing_run})
    [end] = [s for s in steps.json()["data"] if s.get("stepwell_artifact")
             and s["stepwell_artifact"]["operation"] == "end"]
    art_id = end["stepwell_artifact"]["id"]
    error = error_of(lambda: a.workflows.artifacts.get(art_id))
    assert error.status_code == 404
    message = str(error)
    assert "stepwell-only" in message and f"stepwell artifacts get {art_id}" in message
    # another organization gets the unknown-artifact 404, naming no run
    foreign = error_of(lambda: serve.client(KEY_B).workflows.artifacts.get(art_id))
    assert foreign.status_code == 404 and routing_run not in str(foreign)
    assert "stepwell-only" not in str(foreign)
