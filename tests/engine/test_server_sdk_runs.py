"""Runs, artifacts and block executions through the SDK against ``stepwell serve``.

``runs.list`` with every filter the SDK sends, ``runs.delete``, ``runs.export``,
``artifacts.list/get`` (each artifact type a document workflow and a function produce,
parsed by the SDK's own models), ``blocks.executions.create/list``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from retab import Retab

from tests.engine.sdk_server import (
    DOCUMENT_SPEC,
    INVOICE,
    INVOICE_PDF,
    KEY_A,
    KEY_B,
    ServeProcess,
    error_of,
    transform_spec,
    wait_for,
)


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with ServeProcess(tmp_path_factory.mktemp("runs")) as process:
        yield process


@pytest.fixture(scope="module")
def a(serve: ServeProcess) -> Retab:
    return serve.client(KEY_A)


@pytest.fixture(scope="module")
def b(serve: ServeProcess) -> Retab:
    return serve.client(KEY_B)


@pytest.fixture(scope="module")
def transform_runs(a: Retab) -> dict[str, Any]:
    wid = a.workflows.apply(transform_spec("Runs")).workflow_id
    runs = []
    for n, vendor in enumerate(("Alpha", "Beta", "Gamma")):
        run = a.workflows.runs.create(wid, json_inputs={"invoice_in": {**INVOICE, "vendor": vendor,
                                                                       "total_due": n + 1}},
                                      metadata={"batch": "b1" if n < 2 else "b2"})
        runs.append(wait_for(a, run.id))
    return {"workflow_id": wid, "runs": runs}


@pytest.fixture(scope="module")
def document_run(a: Retab) -> Any:
    wid = a.workflows.apply(DOCUMENT_SPEC).workflow_id
    run = a.workflows.runs.create(wid, documents={"upload": INVOICE_PDF})
    done = wait_for(a, run.id)
    assert done.lifecycle.status == "completed", done.lifecycle
    return done


def test_runs_list_filters(a: Retab, transform_runs: dict[str, Any]) -> None:
    wid, runs = transform_runs["workflow_id"], transform_runs["runs"]
    ids = [r.id for r in runs]
    listed = a.workflows.runs.list(workflow_id=wid, limit=100).data
    assert [r.id for r in listed] == ids[::-1]
    assert [r.id for r in a.workflows.runs.list(workflow_id=wid, order="asc").data] == ids
    assert [r.id for r in a.workflows.runs.list(workflow_id=wid, status="completed").data
            ] == ids[::-1]
    assert a.workflows.runs.list(workflow_id=wid, exclude_status="completed").data == []
    assert len(a.workflows.runs.list(workflow_id=wid, trigger_type="api").data) == 3
    assert a.workflows.runs.list(workflow_id=wid, trigger_type="manual").data == []
    today = datetime.now(UTC).date()
    assert len(a.workflows.runs.list(workflow_id=wid, from_date=str(today),
                                     to_date=str(today)).data) == 3
    tomorrow = str(today + timedelta(days=1))
    assert a.workflows.runs.list(workflow_id=wid, from_date=tomorrow).data == []
    assert len(a.workflows.runs.list(workflow_id=wid, min_duration_ms=0,
                                     max_duration_ms=10**9).data) == 3
    assert [r.id for r in a.workflows.runs.list(search=ids[1]).data] == [ids[1]]
    assert [r.id for r in a.workflows.runs.list(
        workflow_id=wid, metadata=json.dumps({"batch": "b2"})).data] == [ids[2]]
    page = a.workflows.runs.list(workflow_id=wid, limit=1, sort_by="timing.created_at")
    assert [r.id for r in page.data] == [ids[2]] and page.list_metadata.after == ids[2]
    assert [r.id for r in a.workflows.runs.list(workflow_id=wid, limit=1, after=ids[2]).data
            ] == [ids[1]]


def test_runs_export_as_csv(a: Retab, b: Retab, transform_runs: dict[str, Any]) -> None:
    wid, runs = transform_runs["workflow_id"], transform_runs["runs"]
    exported = a.workflows.runs.export(wid, "transform", preferred_columns=["label"],
                                       delimiter=",")
    rows = list(csv.DictReader(io.StringIO(exported.csv_data)))
    assert exported.rows == 3 and exported.columns == 5
    assert list(rows[0]) == ["run_id", "step_id", "created_at", "label", "doubled_total"]
    assert {r["label"] for r in rows} == {"Alpha INV-7731", "Beta INV-7731", "Gamma INV-7731"}
    chosen = a.workflows.runs.export(wid, "transform", selected_run_ids=[runs[0].id])
    assert chosen.rows == 1 and ";" in chosen.csv_data.splitlines()[0]
    inputs = a.workflows.runs.export(wid, "transform", export_source="inputs",
                                     selected_run_ids=[runs[1].id], delimiter=",")
    assert next(iter(csv.DictReader(io.StringIO(inputs.csv_data))))["vendor"] == "Beta"
    assert a.workflows.runs.export(wid, "transform", status="error").rows == 0
    assert error_of(lambda: b.workflows.runs.export(wid, "transform")).status_code == 404
    typo = error_of(lambda: a.workflows.runs.export(wid, "transfrom"))
    assert typo.status_code == 404 and "Did you mean 'transform'" in str(typo)


def test_run_delete(a: Retab, b: Retab, transform_runs: dict[str, Any]) -> None:
    wid = transform_runs["workflow_id"]
    run = wait_for(a, a.workflows.runs.create(wid, json_inputs={"invoice_in": INVOICE}).id)
    assert error_of(lambda: b.workflows.runs.delete(run.id)).status_code == 404
    a.workflows.runs.delete(run.id)
    assert error_of(lambda: a.workflows.runs.get(run.id)).status_code == 404
    assert error_of(lambda: a.workflows.steps.list(run.id)).status_code == 404
    assert error_of(lambda: a.workflows.runs.delete(run.id)).status_code == 404


def test_artifacts_of_every_type_parse(a: Retab, b: Retab, document_run: Any,
                                       transform_runs: dict[str, Any]) -> None:
    listed = list(a.workflows.artifacts.list(run_id=document_run.id))
    operations = {x.operation for x in listed}
    assert {"parse", "extraction", "classification", "split"} <= operations
    for item in listed:
        full = a.workflows.artifacts.get(item.id)
        assert full.operation == item.operation and full.id == item.id
    only = a.workflows.artifacts.list(run_id=document_run.id, operation="extraction").data
    assert [x.operation for x in only] == ["extraction"]
    by_block = a.workflows.artifacts.list(run_id=document_run.id, block_id="read").data
    assert [x.operation for x in by_block] == ["parse"]
    fn_run = transform_runs["runs"][0]
    step = a.workflows.artifacts.list(step_id="transform", run_id=fn_run.id).data
    invocation = a.workflows.artifacts.get(step[0].id)
    assert invocation.operation == "function_invocation"
    assert invocation.output == {"label": "Alpha INV-7731", "doubled_total": 2}
    unscoped = error_of(lambda: a.workflows.artifacts.list())
    assert unscoped.status_code == 400 and unscoped.code == "MISSING_PARAMETER"
    assert error_of(lambda: b.workflows.artifacts.list(run_id=document_run.id)
                    ).status_code == 404
    assert error_of(lambda: b.workflows.artifacts.get(listed[0].id)).status_code == 404


def test_block_executions(a: Retab, b: Retab, transform_runs: dict[str, Any]) -> None:
    wid, run = transform_runs["workflow_id"], transform_runs["runs"][0]
    done = a.workflows.blocks.executions.create(run.id, "transform")
    assert done.lifecycle.status == "completed" and done.source_run_id == run.id
    assert done.handle_outputs["output-json-0"].data == {"label": "Alpha INV-7731",
                                                         "doubled_total": 2}
    a.workflows.blocks.update("transform", workflow_id=wid,
                              config={"code": "from models import Input, Output\n\n"
                                              "def transform(input_data: Input) -> Output:\n"
                                              "    return Output(label='x', doubled_total=0)\n"})
    again = a.workflows.blocks.executions.create(run.id, "transform")
    assert again.handle_outputs["output-json-0"].data == {"label": "x", "doubled_total": 0}
    listed = list(a.workflows.blocks.executions.list(run.id, "transform"))
    assert [x.id for x in listed] == [again.id, done.id]
    drifted_upstream = a.workflows.blocks.update(
        "invoice_in", workflow_id=wid, config={"json_schema": {"type": "object"}},
        config_mode="replace")
    assert drifted_upstream.id == "invoice_in"
    refused = error_of(lambda: a.workflows.blocks.executions.create(run.id, "transform"))
    assert refused.status_code == 409 and refused.code == "INELIGIBLE"
    forced = a.workflows.blocks.executions.create(run.id, "transform", check_eligibility=False)
    assert forced.lifecycle.status == "completed"
    wrong = error_of(lambda: a.workflows.blocks.executions.create(run.id, "transform",
                                                                  n_consensus=3))
    assert wrong.status_code == 422
    assert error_of(lambda: b.workflows.blocks.executions.create(run.id, "transform")
                    ).status_code == 404
    assert error_of(lambda: b.workflows.blocks.executions.list(run.id, "transform")
                    ).status_code == 404
    assert error_of(lambda: a.workflows.blocks.executions.create(run.id, "ghost")
                    ).status_code == 404
