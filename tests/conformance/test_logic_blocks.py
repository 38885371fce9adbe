"""The Blocks page's logic blocks, run as documented (If / Else, Merge JSON, While Loop,
For Each over an array, JSON Input, Function). Each workflow names its source."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.definition import Workflow
from tests.conformance.runner import (
    artifact,
    close,
    edited,
    errors,
    fired,
    output,
    reason,
    run,
    status,
)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "stepwell.db"


@pytest.fixture
def results() -> Iterator[list[Any]]:
    opened: list[Any] = []
    yield opened
    for result in opened:
        close(result)


def _run(results: list[Any], db: Path, workflow: Any, inputs: dict[str, Any],
         **options: Any) -> Any:
    result = run(db, workflow, inputs, **options)
    results.append(result)
    return result


# ----------------------------------------------------------------------------- if / else


def test_if_else_example_validates() -> None:
    assert errors("if_else") == []


@pytest.mark.parametrize(("invoice", "taken", "skipped"), [
    ({"invoice_number": "INV-1", "total_amount": 1500, "vendor": {"country": "US"}},
     "needs_approval", "auto_book"),
    ({"invoice_number": "INV-2", "total_amount": 1500, "vendor": {"country": "FR"}},
     "auto_book", "needs_approval"),
    ({"invoice_number": "INV-3", "total_amount": 999.99, "vendor": {"country": "US"}},
     "auto_book", "needs_approval"),
])
def test_if_else_routes_to_exactly_one_branch(results: list[Any], db: Path,
                                              invoice: dict[str, Any], taken: str,
                                              skipped: str) -> None:
    result = _run(results, db, "if_else", {"invoice": invoice})
    assert result.ok, result.error
    action = "approval" if taken == "needs_approval" else "booked"
    assert output(result, taken) == {"invoice_number": invoice["invoice_number"],
                                     "action": action}
    handle = "output-json-if" if taken == "needs_approval" else "output-json-else"
    assert fired(result, "route") == [handle]
    assert output(result, "route", handle) == invoice  # the payload passes unchanged
    assert status(result, skipped) == "skipped"
    other = "output-json-else" if handle == "output-json-if" else "output-json-if"
    assert reason(result, skipped) == f"branch_not_selected: route.{other}"


def test_if_else_artifact_records_each_sub_condition(results: list[Any], db: Path) -> None:
    invoice = {"invoice_number": "INV-1", "total_amount": 1500, "vendor": {"country": "US"}}
    result = _run(results, db, "if_else", {"invoice": invoice})
    record = artifact(result, "route")
    assert record["operation"] == "conditional_evaluation"
    assert record["selected_handles"] == ["output-json-if"]
    (evaluation,) = record["evaluations"]
    assert evaluation["branch_name"] == "if" and evaluation["matched"] is True
    subs = evaluation["sub_evaluations"]
    assert [(s["operator"], s["actual"], s["matched"]) for s in subs] == [
        ("greater_than", 1500, True), ("equals", "US", True)]


TRIAGE = [
    ({}, "output-json-if"),
    ({"invoice_number": "A", "line_items": []}, "output-json-else-if-1"),
    ({"invoice_number": "A", "line_items": list(range(51))}, "output-json-else-if-1"),
    ({"invoice_number": "A", "line_items": [1], "due_date": "2025-12-31"},
     "output-json-else-if-2"),
    # 23:30 UTC is after 00:00+01:00 (23:00 UTC) on the same instant scale
    ({"invoice_number": "A", "line_items": [1, 2], "due_date": "2026-02-01",
      "issued_at": "2026-03-11T23:30:00Z"}, "output-json-else-if-3"),
    ({"invoice_number": "A", "line_items": [1, 2], "due_date": "2026-02-01",
      "issued_at": "2026-03-11T23:00:00Z"}, "output-json-else-if-3"),
    ({"invoice_number": "A", "line_items": [1, 2], "due_date": "2026-02-01",
      "issued_at": "2026-03-11T22:59:59Z"}, "output-json-else"),
    # a plain date compares by calendar day: 2026-01-01 is not before 2026-01-01
    ({"invoice_number": "A", "line_items": [1], "due_date": "2026-01-01"}, "output-json-else"),
    ({"invoice_number": "A", "line_items": [1], "due_date": "2025-12-31T23:59:59"},
     "output-json-else-if-2"),
    # not a date: no match, and no error
    ({"invoice_number": "A", "line_items": [1], "due_date": "31/12/2025"}, "output-json-else"),
    ({"invoice_number": "A", "line_items": "abc", "due_date": 20251231}, "output-json-else"),
]


def test_if_else_chain_validates() -> None:
    assert errors("if_else_chain") == []


@pytest.mark.parametrize(("extraction", "handle"), TRIAGE)
def test_if_else_chain_takes_the_first_match_in_order(results: list[Any], db: Path,
                                                      extraction: dict[str, Any],
                                                      handle: str) -> None:
    result = _run(results, db, "if_else_chain", {"extraction": extraction})
    assert result.ok, result.error
    assert fired(result, "triage") == [handle]


def test_a_value_that_is_not_a_date_is_recorded_as_such(results: list[Any], db: Path) -> None:
    extraction = {"invoice_number": "A", "line_items": [1], "due_date": "31/12/2025"}
    result = _run(results, db, "if_else_chain", {"extraction": extraction})
    evaluation = artifact(result, "triage")["evaluations"][2]
    (sub,) = evaluation["sub_evaluations"]
    assert sub["operator"] == "is_before" and sub["matched"] is False
    assert "ISO 8601" in sub["reason"]


def test_empty_conditions_send_everything_to_else(results: list[Any], db: Path) -> None:
    data = edited("if_else", "route", conditions=[]).to_dict()
    data["spec"]["blocks"].pop("needs_approval")
    data["spec"]["edges"] = [e for e in data["spec"]["edges"]
                             if e["target"]["block"] != "needs_approval"]
    wf = Workflow.from_dict(data)
    assert errors(wf) == []
    result = _run(results, db, wf, {"invoice": {"invoice_number": "X", "total_amount": 5}})
    assert result.ok, result.error
    assert fired(result, "route") == ["output-json-else"]
    assert output(result, "auto_book")["action"] == "booked"


def test_has_else_false_fires_nothing_without_a_match(results: list[Any], db: Path) -> None:
    wf = edited("if_else_chain", "triage", has_else=False)
    result = _run(results, db, wf, {"extraction": {"invoice_number": "A", "line_items": [1]}})
    assert result.ok, result.error
    assert fired(result, "triage") == []


# ----------------------------------------------------------------------------- JSON input


def test_json_input_sdk_example_runs(results: list[Any], db: Path) -> None:
    given = {"customer_id": "cust_123", "priority": "high"}
    result = _run(results, db, "json_input", {"json-block-id": given})
    assert result.ok, result.error
    assert output(result, "json-block-id") == given
    assert fired(result, "priority") == ["output-json-urgent"]


def test_json_input_schema_is_enforced(results: list[Any], db: Path) -> None:
    result = _run(results, db, "json_input", {"json-block-id": {"priority": "urgent"}})
    assert result.status == "error"
    assert result.failing_step_id == "json-block-id"
    assert "customer_id" in (result.error or "") or "urgent" in (result.error or "")


# ----------------------------------------------------------------------------- function


def test_function_example_computes_totals(results: list[Any], db: Path) -> None:
    invoice = {"line_items": [{"amount": 120}, {"amount": 80}]}
    result = _run(results, db, "function", {"invoice": invoice})
    assert result.ok, result.error
    assert output(result, "totals") == {"subtotal": 200, "tax": 20.0, "total": 220.0}


# ----------------------------------------------------------------------------- merge JSON


def test_merge_json_wraps_each_input_under_its_name(results: list[Any], db: Path) -> None:
    extraction = {"invoice_number": "INV-1", "total": 10.0, "vendor": "Acme", "lines": [1, 2]}
    result = _run(results, db, "merge_json", {"extraction": extraction})
    assert result.ok, result.error
    merged = output(result, "merge")
    assert merged == {"invoice_data": {"invoice_number": "INV-1", "total": 10.0},
                      "vendor_data": {"name": "Acme"}, "line_items": {"count": 2}}
    assert list(merged) == ["invoice_data", "vendor_data", "line_items"]


# ----------------------------------------------------------------------------- while loop


def test_while_loop_example_stops_when_a_condition_matches(results: list[Any],
                                                          db: Path) -> None:
    result = _run(results, db, "while_loop", {"seed": {"attempts": 0, "status": "new"}})
    assert result.ok, result.error
    assert output(result, "report") == {"attempts": 3}
    record = artifact(result, "refine")
    assert record["termination_reason"] == "condition_matched"
    assert output(result, "refine", "loop-right-out") == {"attempts": 3, "status": "complete"}


def test_while_loop_stops_at_max_iterations(results: list[Any], db: Path) -> None:
    wf = edited("while_loop", "refine", max_iterations=2)
    result = _run(results, db, wf, {"seed": {"attempts": 0, "status": "new"}})
    assert result.ok, result.error
    assert artifact(result, "refine")["termination_reason"] == "max_iterations_reached"
    assert output(result, "report") == {"attempts": 2}


def test_while_loop_renders_the_loop_context_template(results: list[Any], db: Path) -> None:
    result = _run(results, db, "while_loop", {"seed": {"attempts": 0, "status": "new"}})
    texts = []
    for n in range(3):
        step = result.step(f"refine_iter_{n}_refine_sentinel_start")
        spans = [s for s in step.trace_spans or [] if s.get("name") == "loop_context"]
        texts.append(spans[0]["attributes"]["text"])
    assert texts[0].startswith("Iteration 1 of 5.")
    assert '"attempts": 0' in texts[0]
    assert texts[1].startswith("Iteration 2 of 5.")
    assert "- status equals \"complete\": found \"pending\", not matched" in texts[1]


def test_while_loop_termination_conditions_any_match_ends_the_loop(results: list[Any],
                                                                   db: Path) -> None:
    wf = edited("while_loop", "refine", termination_conditions=[
        {"path": "data.status", "operator": "is_equal_to", "value": "never"},
        {"path": "data.attempts", "operator": "is_greater_than_or_equal_to", "value": 2},
    ])
    result = _run(results, db, wf, {"seed": {"attempts": 0, "status": "new"}})
    assert result.ok, result.error
    assert output(result, "report") == {"attempts": 2}
    evaluations = artifact(result, "refine")["evaluations"]
    assert [e["matched"] for e in evaluations] == [False, True]
    assert {e["branch_name"] for e in evaluations} == {"exit"}


# ----------------------------------------------------------------------------- for each


def _without_total(wf: Workflow) -> Workflow:
    """The for_each example without its summing function (for other result shapes)."""
    data = wf.to_dict()
    data["spec"]["blocks"].pop("total")
    data["spec"]["edges"] = [e for e in data["spec"]["edges"]
                             if e["target"]["block"] != "total"]
    return Workflow.from_dict(data)


def test_for_each_iterate_array_example(results: list[Any], db: Path) -> None:
    invoice = {"line_items": [{"sku": "A", "qty": 2, "unit": 5.0},
                              {"sku": "B", "qty": 1, "unit": 2.5}]}
    result = _run(results, db, "for_each_array", {"invoice": invoice})
    assert result.ok, result.error
    assert output(result, "each_line", "fe-right-out") == {"processed_items": [
        {"sku": "A", "amount": 10.0}, {"sku": "B", "amount": 2.5}]}
    assert output(result, "total") == {"total": 12.5, "count": 2}


@pytest.mark.parametrize(("strategy", "expected"), [
    ("first", {"sku": "A", "amount": 10.0}),
    ("last", {"sku": "C", "amount": 1.0}),
])
def test_for_each_reduce_first_and_last(results: list[Any], db: Path, strategy: str,
                                        expected: dict[str, Any]) -> None:
    wf = edited("for_each_array", "each_line", reduce_strategy=strategy)
    invoice = {"line_items": [{"sku": "A", "qty": 2, "unit": 5.0},
                              {"sku": "B", "qty": 1, "unit": 2.5},
                              {"sku": "C", "qty": 1, "unit": 1.0}]}
    result = _run(results, db, _without_total(wf), {"invoice": invoice})
    assert result.ok, result.error
    assert output(result, "each_line", "fe-right-out") == expected


def test_for_each_reduce_none_fires_nothing(results: list[Any], db: Path) -> None:
    wf = edited("for_each_array", "each_line", reduce_strategy="none",
                reduce_concat_data_key=None)
    invoice = {"line_items": [{"sku": "A", "qty": 2, "unit": 5.0}]}
    result = _run(results, db, wf, {"invoice": invoice})
    assert result.ok, result.error
    assert "fe-right-out" not in fired(result, "each_line")
    assert status(result, "each_line_iter_0_price") == "completed"
    assert status(result, "total") == "skipped"


def test_for_each_item_key_and_max_iterations(results: list[Any], db: Path) -> None:
    wf = edited("for_each_array", "each_line", reduce_concat_item_key="line",
                reduce_concat_data_key=None, max_iterations=2)
    invoice = {"line_items": [{"sku": s, "qty": 1, "unit": 1.0} for s in "ABC"]}
    result = _run(results, db, _without_total(wf), {"invoice": invoice})
    assert result.ok, result.error
    assert output(result, "each_line", "fe-right-out") == [
        {"line": 0, "sku": "A", "amount": 1.0}, {"line": 1, "sku": "B", "amount": 1.0}]
