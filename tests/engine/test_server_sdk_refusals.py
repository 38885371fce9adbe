"""Requests ``stepwell serve`` refuses with a clear error, through the SDK.

A block execution whose upstream block was removed since the run (409 ``INELIGIBLE``
naming it), an eval assertion on an output handle the block does not have (422 listing
its handles), an export of an unknown block (404 listing the blocks), not-found hints
that name only commands and routes that exist, and graph-edit 422s that advise an HTTP
next step rather than ``stepwell validate``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from retab import Retab

from engine.contracts.errors import LIST_HINTS, NotFoundError
from engine.definition import Workflow
from engine.server.errors import ApiError
from engine.server.run_export import export_rows
from tests.engine.sdk_server import KEY_A, ServeProcess, error_of, wait_for

PREP = """\
from models import Input, Output

def transform(input_data: Input) -> Output:
    return Output(vendor=input_data.vendor.strip())
"""
LABEL = """\
from models import Input, Output

def transform(input_data: Input) -> Output:
    return Output(label="vendor " + input_data.vendor)
"""


def indent(code: str) -> str:
    """``code`` as a YAML block scalar body under ``code: |``."""
    return "\n".join("          " + line if line else "" for line in code.splitlines())


CHAIN = f"""\
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata:
  name: Chain
spec:
  blocks:
    invoice_in: {{type: start_json}}
    prep:
      type: function
      config:
        output_schema: {{type: object, properties: {{vendor: {{type: string}}}}}}
        code: |
{indent(PREP)}
    label:
      type: function
      config:
        output_schema: {{type: object, properties: {{label: {{type: string}}}}}}
        code: |
{indent(LABEL)}
  edges:
    - source: {{block: invoice_in, handle: output-json-0}}
      target: {{block: prep, handle: input-json-0}}
    - source: {{block: prep, handle: output-json-0}}
      target: {{block: label, handle: input-json-0}}
"""


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with ServeProcess(tmp_path_factory.mktemp("refusals")) as process:
        yield process


@pytest.fixture(scope="module")
def a(serve: ServeProcess) -> Retab:
    return serve.client(KEY_A)


@pytest.fixture(scope="module")
def chain(a: Retab) -> dict[str, Any]:
    wid = a.workflows.apply(CHAIN).workflow_id
    run = wait_for(a, a.workflows.runs.create(wid, json_inputs={
        "invoice_in": {"vendor": " Acme "}}).id)
    assert run.lifecycle.status == "completed", run.lifecycle
    return {"workflow_id": wid, "run_id": run.id}


def test_execution_refused_when_an_upstream_block_was_removed(a: Retab) -> None:
    wid = a.workflows.apply(CHAIN.replace("name: Chain", "name: Chain removed")).workflow_id
    run = wait_for(a, a.workflows.runs.create(wid, json_inputs={
        "invoice_in": {"vendor": " Acme "}}).id)
    assert a.workflows.blocks.executions.create(run.id, "label").lifecycle.status == "completed"
    without_prep = CHAIN.replace("name: Chain", "name: Chain removed")
    without_prep = without_prep[:without_prep.index("    prep:")] + without_prep[
        without_prep.index("    label:"):without_prep.index("  edges:")] + """\
  edges:
    - source: {block: invoice_in, handle: output-json-0}
      target: {block: label, handle: input-json-0}
"""
    assert a.workflows.apply(without_prep).workflow_id == wid
    assert sorted(b.id for b in a.workflows.blocks.list(wid)) == ["invoice_in", "label"]
    refused = error_of(lambda: a.workflows.blocks.executions.create(run.id, "label"))
    assert refused.status_code == 409 and refused.code == "INELIGIBLE"
    assert "prep" in str(refused) and "Removed from the workflow since the run" in str(refused)
    forced = a.workflows.blocks.executions.create(run.id, "label", check_eligibility=False)
    assert forced.lifecycle.status == "completed"


def test_eval_on_a_missing_output_handle_is_refused(a: Retab, chain: dict[str, Any]) -> None:
    wid = chain["workflow_id"]
    target = {"type": "block", "block_id": "label"}
    source = {"type": "manual", "handle_inputs": {
        "input-json-0": {"type": "json", "data": {"vendor": "Acme"}}}}

    def assertion(handle: str) -> dict[str, Any]:
        return {"target": {"output_handle_id": handle, "path": "label"},
                "condition": {"kind": "equals", "expected": "vendor Acme"}}

    refused = error_of(lambda: a.workflows.evals.create(wid, target, source,
                                                        assertion("output-json-99")))
    assert refused.status_code == 422
    assert "output-json-99" in str(refused) and "output-json-0" in str(refused)
    assert list(a.workflows.evals.list(wid)) == []
    saved = a.workflows.evals.create(wid, target, source, assertion("output-json-0"))
    changed = error_of(lambda: a.workflows.evals.update(saved.id,
                                                        assertion=assertion("output-json-99")))
    assert changed.status_code == 422 and "output-json-99" in str(changed)
    assert a.workflows.evals.get(saved.id).assertion.target.output_handle_id == "output-json-0"


def test_not_found_hints_name_what_exists(a: Retab, serve: ServeProcess) -> None:
    missing = error_of(lambda: a.workflows.evals.get("wfeval_missing"))
    assert missing.status_code == 404
    assert "stepwell evals list" not in str(missing)
    assert "GET /v1/workflows/evals" in str(missing)


def test_list_hints_name_only_existing_commands() -> None:
    from typer.main import get_command

    from engine.cli_app import app

    root = get_command(app)
    for kind in ("run", "step", "review", "eval", "file", "artifact", "block version"):
        hint = str(NotFoundError(kind, "x"))
        for group, command in re.findall(r"`stepwell (\S+) ([^\s`]+)", hint):
            assert command in root.commands[group].commands, hint  # type: ignore[attr-defined]
    assert "`stepwell" not in str(NotFoundError("eval", "x"))
    assert "`stepwell" not in str(NotFoundError("file", "x"))
    assert set(LIST_HINTS) >= {"run", "step", "review", "eval", "file"}


def test_graph_edit_422_advises_an_http_step(a: Retab, chain: dict[str, Any]) -> None:
    wid = chain["workflow_id"]
    bad = error_of(lambda: a.workflows.edges.create(
        wid, "label", "prep", source_handle="output-json-0", target_handle="input-json-0"))
    assert bad.status_code == 422, bad
    assert "stepwell validate" not in str(bad) and "spec.validate" in str(bad)


def test_export_of_an_unknown_block_names_the_blocks() -> None:
    workflow = Workflow.from_dict({"blocks": [
        {"id": "invoice_in", "type": "start_json"}, {"id": "label", "type": "function"}],
        "edges": []}, source="wf_chain")
    body = SimpleNamespace(workflow_id="wf_chain", block_id="lable")
    with pytest.raises(ApiError) as refused:
        export_rows(None, body, workflow=workflow)
    assert refused.value.status == 404 and refused.value.code == "BLOCK_NOT_FOUND"
    assert "'lable'" in refused.value.message and "Did you mean 'label'" in refused.value.message
    assert refused.value.details["block_ids"] == ["invoice_in", "label"]
