"""The flow of Retab's live SDK test, against a real ``stepwell serve``.

Retab's ``clients/python/tests/test_workflow_run_local.py`` (retab-dev/retab, commit
564cc962) applies a ``start_json -> function`` spec, finds the workflow by name, lists its
blocks to find the start block, runs the draft and polls it, then reads the function's
output from the run's steps. This module does the same with its own workflow and data,
through the unmodified SDK, and checks the routing rules that flow relies on. Every test
runs against a server on SQLite and against one on PostgreSQL (a fresh schema of the
test server, see tests/postgres.py; skipped without one).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from retab import Retab

from tests import postgres
from tests.engine.sdk_server import (
    INVOICE,
    KEY_A,
    KEY_B,
    LABEL,
    ServeProcess,
    error_of,
    transform_spec,
    wait_for,
)

NAME = "Live flow: label and double"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def serve(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    workdir = tmp_path_factory.mktemp("live")
    if request.param == "sqlite":
        with ServeProcess(workdir) as process:
            yield process
        return
    schema, url = postgres.fresh_schema()
    try:
        with ServeProcess(workdir, db=url) as process:
            yield process
    finally:
        postgres.drop(schema)


@pytest.fixture(scope="module")
def client(serve: ServeProcess) -> Retab:
    return serve.client(KEY_A)


def find_workflow(client: Retab, name: str) -> str | None:
    """The id of the caller's workflow called ``name`` that has the two blocks."""
    for workflow in client.workflows.list(limit=50).data:
        if workflow.name != name:
            continue
        types = {b.type.value for b in client.workflows.blocks.list(workflow.id).data}
        if {"start_json", "function"} <= types:
            return workflow.id
    return None


def test_the_live_flow_runs_the_draft_and_reads_the_function_output(client: Retab) -> None:
    assert find_workflow(client, NAME) is None
    applied = client.workflows.apply(yaml_definition=transform_spec(NAME), project_id="proj_live")
    workflow_id = find_workflow(client, NAME)
    assert workflow_id == applied.workflow_id

    blocks = client.workflows.blocks.list(workflow_id).data
    start = next(b for b in blocks if b.type.value == "start_json")
    run = client.workflows.runs.create(workflow_id, json_inputs={start.id: INVOICE},
                                       version="draft")
    assert run.workflow_version_id == applied.workflow_version_id if hasattr(
        applied, "workflow_version_id") else run.workflow_version_id
    done = wait_for(client, run.id)
    assert done.lifecycle.status == "completed", done.lifecycle

    outputs = [s.handle_outputs["output-json-0"].data
               for s in client.workflows.steps.list(run.id, limit=20).data
               if s.block_type.value == "function"]
    assert outputs == [{"label": LABEL, "doubled_total": INVOICE["total_due"] * 2}]


def test_the_flow_finds_only_its_own_organizations_workflow(serve: ServeProcess) -> None:
    other = serve.client(KEY_B)
    assert find_workflow(other, NAME) is None
    applied = serve.client(KEY_A).workflows.apply(transform_spec(NAME + " (isolated)"))
    missing = error_of(lambda: other.workflows.blocks.list(applied.workflow_id))
    assert (missing.status_code, missing.code) == (404, "NOT_FOUND")


def test_collection_paths_never_reach_the_workflow_route(serve: ServeProcess) -> None:
    http = serve.http(KEY_A)
    blocks = http.get("/v1/workflows/blocks")  # workflow_id missing: a bad scope, not a workflow
    assert blocks.status_code == 400 and blocks.json()["detail"]["code"] == "MISSING_PARAMETER"
    for method, path in (("GET", "/v1/workflows/blocks/nope/extra"),
                         ("DELETE", "/v1/workflows/blocks"), ("PATCH", "/v1/workflows/edges"),
                         ("GET", "/v1/workflows/nonsense/path/here"),
                         ("POST", "/v1/workflows/versions/publish")):
        response = http.request(method, path)
        assert response.status_code in (404, 405), (method, path, response.text)
        if response.status_code == 404:
            assert response.json()["detail"]["code"] == "ROUTE_NOT_FOUND", (method, path)


def test_a_probe_of_the_files_list_gets_a_page(serve: ServeProcess) -> None:
    response = serve.http(KEY_A).get("/v1/files", params={"limit": 1})
    assert response.status_code == 200
    assert set(response.json()) == {"data", "list_metadata"}


def test_both_cursors_and_missing_scopes_are_400(serve: ServeProcess, tmp_path: Path) -> None:
    http = serve.http(KEY_A)
    both = http.get("/v1/workflows/runs", params={"after": "a", "before": "b"})
    assert both.status_code == 400
    assert both.json()["detail"]["code"] == "CONFLICTING_PARAMETERS"
    for path in ("/v1/workflows/artifacts", "/v1/workflows/edges", "/v1/workflows/versions",
                 "/v1/workflows/evals", "/v1/workflows/evals/results",
                 "/v1/workflows/blocks/executions", "/v1/workflows/steps"):
        response = http.get(path)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["detail"]["code"] == "MISSING_PARAMETER"
