"""A run's JSON without the read models is exactly the model's JSON, or is refused."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from engine.contracts.errors import NotFoundError
from engine.contracts.reads import RunRecord
from engine.contracts.values import Payload
from store import Client, SQLiteStore
from store.convert import run_model
from store.shapes_json import run_json
from tests.store.helpers import T0, lifecycle, new_run

BASE = RunRecord(
    id="run_1", workflow_id="wf_1", workflow_name="Invoices — März", workflow_digest="d" * 64,
    inputs={}, metadata={}, organization_id="org_1", trigger="manual", status="completed",
    failing_step_id=None, error=None, reason=None, waiting_for=None, outputs={},
    parent_run_id=None, owner_pid=None, heartbeat_at=None, created_at=1_700_000_000.0,
    started_at=1_700_000_000.5, completed_at=1_700_000_001.123456789, owner_host=None,
)
DOC = {"id": "file_abc", "filename": "a.pdf", "mime_type": "application/pdf"}

SAME = {
    "completed": {},
    "whole_seconds_and_ints": {"created_at": 1_700_000_000, "started_at": 1_700_000_001,
                               "completed_at": 1_700_000_002.0},
    "not_started": {"status": "pending", "started_at": None, "completed_at": None},
    "queued": {"status": "queued"},
    "running": {"status": "running", "completed_at": None, "owner_pid": 12},
    "awaiting": {"status": "awaiting_review", "waiting_for": ["review"]},
    "awaiting_unknown": {"status": "awaiting_review", "waiting_for": None},
    "cancelled": {"status": "cancelled", "reason": "stopped by user"},
    "cancelled_no_reason": {"status": "cancelled"},
    "error_full": {"status": "error", "failing_step_id": "extract", "error": {
        "message": "boom", "stage": "execution", "category": "permanent",
        "details": {"stack_trace": "Traceback", "block_id": "extract", "extra": 1,
                    "error_code": "E1", "context": {"n": [1, 2.5, None, True]}}}},
    "error_bare": {"status": "error", "reason": "lost", "error": None},
    "error_no_details": {"status": "error", "error": {"message": "", "details": None}},
    "inputs": {"inputs": {"start": {"type": "json", "data": {"x": [1, {"y": "z"}]}},
                          "doc": DOC, "payload": {"type": "file", "document": DOC},
                          "raw": {"type": "json", "data": 1, "more": 2}, "n": 3}},
    "data": {"metadata": {"team": "ops", "n": 2**70}, "outputs": {"end": {"a": "é"}},
             "parent_run_id": "run_0", "trigger": "api"},
    "no_outputs": {"outputs": None},
}

REFUSED = {
    "not_a_float": {"outputs": {"x": float("nan")}},
    "infinite_metadata": {"metadata": {"x": [float("inf")]}},
    "number_as_text": {"error": {"message": "m", "details": {"error_code": 7}},
                       "status": "error"},
    "details_not_a_dict": {"status": "error", "error": {"message": "m", "details": "text"}},
    "message_not_text": {"status": "error", "error": {"message": 5}},
    "waiting_not_text": {"status": "awaiting_review", "waiting_for": [1]},
    "document_not_text": {"inputs": {"doc": {**DOC, "filename": 3}}},
    "unknown_status": {"status": "skipped"},
}


def _record(**changes: Any) -> RunRecord:
    return dataclasses.replace(BASE, **changes)


@pytest.mark.parametrize("changes", SAME.values(), ids=SAME.keys())
def test_run_json_is_the_model_dump(changes: dict[str, Any]) -> None:
    record = _record(**changes)
    fast = run_json(record)
    assert fast is not None
    expected = run_model(record).model_dump(mode="json")
    assert fast == expected
    assert json.dumps(fast, indent=2) == json.dumps(expected, indent=2)  # key order too


@pytest.mark.parametrize("changes", REFUSED.values(), ids=REFUSED.keys())
def test_run_json_refuses_what_the_models_would_change(changes: dict[str, Any]) -> None:
    assert run_json(_record(**changes)) is None


def test_client_run_json_matches_the_run_model(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with SQLiteStore(path) as store:
        store.create_run(new_run("run_a"), now=T0)
        store.apply("run_a", lifecycle("extract", {"output-json-0": Payload.json({"n": 1})},
                                       block_type="extract"), now=T0)
    with Client(path) as client:
        data = client.run_json("run_a")
        assert data == client.workflows.runs.get("run_a").model_dump(mode="json")
        with pytest.raises(NotFoundError):
            client.run_json("run_missing")
    with Client(path, organization_id="org_other") as client, pytest.raises(NotFoundError):
        client.run_json("run_a")
