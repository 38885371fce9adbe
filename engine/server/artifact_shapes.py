"""Artifacts in the shapes of the Retab SDK's artifact models, one shaper per operation.

``GET /v1/workflows/artifacts/{id}`` is parsed by the SDK into the model of the
artifact's operation (``ExtractionWorkflowArtifact``, ``FunctionInvocation``, ...). A
stepwell record holds more than those models, sometimes in another form; a shaper here
fits the record to its model and keeps stepwell's own form next to it under a
``stepwell_`` key, which the SDK ignores:

* ``usage`` (stepwell counts tokens and cost, the SDK wants credits) and ``consensus``
  (stepwell's votes) move to ``stepwell_usage`` / ``stepwell_consensus``;
* a missing ``model`` (an offline parse) is ``""``;
* a partition's ``output`` is its list of partitions; an edit's form fields get an
  empty ``bbox`` (stepwell does not record field positions); a conditional or review
  evaluation gets the ``details`` object the SDK requires; an API call attempt's error
  text becomes ``{"message": ...}``;
* a ``while_loop_termination`` record of an iteration that did not end the loop (stepwell
  writes one per iteration; ``termination_reason: null``, ``should_continue: true``) has a
  reason the SDK's model accepts: ``max_iterations_reached``, the value that agrees with its
  evaluations (no termination condition matched); stepwell's ``null`` is kept in
  ``stepwell_termination_reason``, and ``should_continue`` tells the iteration that went on.

Every record also gets ``run_id`` (the SDK's name for ``workflow_run_id``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.server.shapes import SDK_ARTIFACT_OPERATIONS

#: stepwell does not record where a form field sits: an edit's fields get an empty box.
_NO_BOX = {"left": 0.0, "top": 0.0, "width": 0.0, "height": 0.0, "page": 1}


def _moved(record: dict[str, Any], *names: str) -> None:
    for name in names:
        if record.get(name) is not None:
            record[f"stepwell_{name}"] = record[name]
        record[name] = None


def _details(item: dict[str, Any]) -> dict[str, Any]:
    return {"path": str(item.get("path") or ""), "operator": str(item.get("operator") or ""),
            "expected": item.get("expected"), "actual": item.get("actual"),
            "matched": bool(item.get("matched"))}


def _evaluation(item: Any, index: int) -> dict[str, Any]:
    if not isinstance(item, dict):
        return {"condition_id": f"condition_{index}", "details": {}}
    out = dict(item)
    out.setdefault("condition_id", str(item.get("kind") or f"condition_{index}"))
    if "triggered" in item and "matched" not in item:
        out["matched"] = bool(item["triggered"])
        out.setdefault("operator", item.get("kind"))
        out.setdefault("expected", item.get("threshold"))
    out["details"] = _details(out)
    for key in ("path", "operator"):
        out[key] = str(out.get(key) or "")
    return out


def _evaluations(record: dict[str, Any]) -> None:
    items = record.get("evaluations") or []
    record["evaluations"] = [_evaluation(e, i) for i, e in enumerate(items)]


def _document_op(record: dict[str, Any]) -> None:
    _moved(record, "usage", "consensus")
    record["model"] = record.get("model") or ""


def _partition(record: dict[str, Any]) -> None:
    _document_op(record)
    output = record.get("output")
    if isinstance(output, dict):
        record["stepwell_output"] = output
        record["output"] = [{"key": str(p.get("key")), "pages": p.get("pages")}
                            for p in output.get("partitions") or [] if isinstance(p, dict)]


def _split(record: dict[str, Any]) -> None:
    _document_op(record)
    record["output"] = [{"name": p.get("name"), "pages": p.get("pages") or []}
                        for p in record.get("output") or [] if isinstance(p, dict)]


def _form_field(item: Any) -> dict[str, Any]:
    field = dict(item) if isinstance(item, dict) else {}
    value = field.get("value")
    return {"key": str(field.get("key") or ""),
            "type": "checkbox" if field.get("type") == "checkbox" else "text",
            "description": str(field.get("description") or ""),
            "value": None if value is None else str(value), "bbox": dict(_NO_BOX)}


def _edit(record: dict[str, Any]) -> None:
    _document_op(record)
    output = record.get("output")
    if isinstance(output, dict) and isinstance(output.get("filled_document"), dict):
        document = output["filled_document"]
        record["stepwell_output"] = output
        record["output"] = {"form_data": [_form_field(f) for f in output.get("form_data") or []],
                            "filled_document": {"filename": document.get("filename", "filled.pdf"),
                                                "url": f"/v1/files/{document.get('id')}/content"}}
    config = record.get("config")
    if isinstance(config, dict):
        record["stepwell_config"] = config
        record["config"] = {"color": config.get("color")}


def _api_call(record: dict[str, Any]) -> None:
    attempts = []
    for attempt in record.get("attempts") or []:
        item = dict(attempt) if isinstance(attempt, dict) else {}
        if isinstance(item.get("error"), str):
            item["error"] = {"message": item["error"]}
        if isinstance(item.get("duration_ms"), float):
            item["duration_ms"] = round(item["duration_ms"])
        attempts.append(item)
    record["attempts"] = attempts
    if isinstance(record.get("error"), str):
        record["error"] = {"message": record["error"]}


def _function(record: dict[str, Any]) -> None:
    if isinstance(record.get("error"), str):
        record["error"] = {"message": record["error"]}
    if isinstance(record.get("duration_ms"), float):
        record["duration_ms"] = round(record["duration_ms"])


#: The SDK's reason for an iteration that went on (see the module docstring).
CONTINUED_REASON = "max_iterations_reached"


def _loop_check(record: dict[str, Any]) -> None:
    _evaluations(record)
    if record.get("termination_reason") is None:
        record["stepwell_termination_reason"] = None
        record["should_continue"] = True
        record["termination_reason"] = CONTINUED_REASON


#: operation -> shaper (operations not listed are passed through).
SHAPERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "extraction": _document_op, "classification": _document_op, "parse": _document_op,
    "split": _split, "partition": _partition, "edit": _edit,
    "conditional_evaluation": _evaluations, "review_trigger_evaluation": _evaluations,
    "while_loop_termination": _loop_check, "api_call_invocation": _api_call,
    "function_invocation": _function,
}


def artifact_json(record: dict[str, Any]) -> dict[str, Any]:
    """An artifact record (as ``ReadAPI.get_artifact`` returns it) in the SDK's shape."""
    out = dict(record)
    out["run_id"] = out.get("workflow_run_id")
    operation = str(out.get("operation"))
    if operation in SDK_ARTIFACT_OPERATIONS:
        SHAPERS.get(operation, lambda _r: None)(out)
    return out
