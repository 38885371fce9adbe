"""Artifact records fitted to the SDK's artifact models (engine.server.artifact_shapes).

Records in the form the blocks write them (see blocks/edit.py, blocks/api_call.py,
blocks/function.py): each must parse with the SDK's ``artifacts.get`` union into the
model of its operation, and keep stepwell's own form under ``stepwell_*``. Document
blocks and logic blocks are checked end to end in ``test_server_sdk_runs.py`` and
``test_server_sdk_artifacts.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter
from retab.types.workflows import artifacts as sdk

from engine.server.artifact_shapes import artifact_json

UNION: TypeAdapter[Any] = TypeAdapter(
    sdk.ExtractionWorkflowArtifact | sdk.SplitWorkflowArtifact
    | sdk.ClassificationWorkflowArtifact | sdk.ParseWorkflowArtifact | sdk.EditWorkflowArtifact
    | sdk.PartitionWorkflowArtifact | sdk.ConditionalEvaluation | sdk.ReviewEvaluation
    | sdk.WhileLoopTermination | sdk.ApiCallInvocation | sdk.FunctionInvocation)
FILE = {"id": "file_1", "filename": "form.pdf", "mime_type": "application/pdf"}
COMMON = {"workflow_run_id": "run_1", "step_id": "step", "created_at": "2026-01-01T00:00:00Z"}
USAGE = {"model": "offline", "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0,
         "cost": 0.0}

RECORDS: dict[str, dict[str, Any]] = {
    "edit": {"operation": "edit", "id": "edt_1", "file": FILE, "model": "offline",
             "instructions": "fill it", "template_id": None, "config": {"use_template": False},
             "output": {"form_data": [{"key": "name", "type": "text", "description": "",
                                       "value": "Ada"}], "filled_count": 1, "total_fields": 1,
                        "filled_document": {**FILE, "id": "file_2"}},
             "filled_document_ref": {**FILE, "id": "file_2"}, "usage": USAGE},
    "api_call_invocation": {
        "operation": "api_call_invocation", "id": "apiinv_1", "error": None,
        "attempts": [{"attempt_number": 0, "request_method": "GET",
                      "request_url": "https://example.org/x", "request_headers": {},
                      "request_body": None, "started_at": "2026-01-01T00:00:00Z",
                      "duration_ms": 12.5, "completed_at": "2026-01-01T00:00:01Z",
                      "response_status": 503, "response_headers": {}, "response_body": "busy",
                      "error": "HTTP 503 from https://example.org/x"}]},
    "function_invocation": {"operation": "function_invocation", "id": "fninv_1",
                            "inputs": {"a": 1}, "output": {"b": 2}, "duration_ms": 3,
                            "error": None, "stdout": "hi"},
    "review_trigger_evaluation": {
        "operation": "review_trigger_evaluation", "id": "rteval_1",
        "triggered_by": "confidence_lt", "requires_human_review": True,
        "evaluations": [{"kind": "confidence_lt", "triggered": True, "threshold": 0.9,
                         "actual": 0.67}]},
}


@pytest.mark.parametrize("operation", sorted(RECORDS))
def test_records_parse_as_their_operation(operation: str) -> None:
    shaped = artifact_json({**RECORDS[operation], **COMMON})
    parsed = UNION.validate_python(shaped)
    assert parsed.operation == operation and parsed.id == RECORDS[operation]["id"]
    assert shaped["run_id"] == "run_1"


def test_what_moves_aside_is_kept() -> None:
    edit = artifact_json({**RECORDS["edit"], **COMMON})
    assert edit["usage"] is None and edit["stepwell_usage"] == USAGE
    assert edit["stepwell_output"]["filled_count"] == 1
    assert edit["output"]["filled_document"]["url"] == "/v1/files/file_2/content"
    call = UNION.validate_python(artifact_json({**RECORDS["api_call_invocation"], **COMMON}))
    assert call.attempts[0].error.message.startswith("HTTP 503")
    assert call.attempts[0].duration_ms == 12
    review = UNION.validate_python(artifact_json({**RECORDS["review_trigger_evaluation"],
                                                  **COMMON}))
    assert review.evaluations[0].matched and review.evaluations[0].details.expected == 0.9


def test_operations_outside_the_sdk_pass_through() -> None:
    record = {"operation": "end", "id": "art_1", "outputs": {"x": 1}, **COMMON}
    assert artifact_json(record) == {**record, "run_id": "run_1"}


def test_a_loop_check_that_went_on_parses() -> None:
    went_on = {"operation": "while_loop_termination", "id": "wlt_1", "iteration": 0,
               "should_continue": True, "termination_reason": None,
               "evaluations": [{"condition_id": "c0", "branch_name": "exit", "matched": False,
                                "path": "data.status", "operator": "is_equal_to",
                                "expected": "done", "actual": "again"}], **COMMON}
    shaped = artifact_json(went_on)
    parsed = UNION.validate_python(shaped)
    assert parsed.termination_reason.value == "max_iterations_reached"
    assert shaped["stepwell_termination_reason"] is None and shaped["should_continue"] is True
    assert not parsed.evaluations[0].matched
    ended = artifact_json({**went_on, "termination_reason": "condition_matched",
                           "should_continue": False})
    assert UNION.validate_python(ended).termination_reason.value == "condition_matched"
    assert "stepwell_termination_reason" not in ended and ended["should_continue"] is False
