"""The examples' blocks, tested the way a user tests theirs: only the public testing API.

``run_block`` for one block at a time, ``Engine(":memory:", stubs=...)`` or the
``stepwell_engine`` fixture for whole workflows, ``assert_step`` for the checks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine import Engine, load_workflow
from engine.testing import (
    INSTANT_RETRY,
    Attempts,
    Failure,
    StubCall,
    assert_step,
    run_block,
)
from examples.python_functions import pipeline

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ROUTING = load_workflow(EXAMPLES / "invoice_routing" / "workflow.yaml")
PRICING = load_workflow(EXAMPLES / "order_pricing" / "workflow.yaml")
PDF_FLOW = load_workflow(EXAMPLES / "invoice_pdf" / "workflow.yaml")
INVOICE_PDF = EXAMPLES / "invoice_pdf" / "invoice.pdf"
SMALL = json.loads((EXAMPLES / "invoice_routing" / "invoice.json").read_text())
BIG = json.loads((EXAMPLES / "invoice_routing" / "big_invoice.json").read_text())
ORDERS = json.loads((EXAMPLES / "order_pricing" / "orders.json").read_text())
NORMALISED = {"invoice_number": "INV-2026-0042", "supplier": "Acme Industrial Supplies",
              "currency": "EUR", "line_count": 3, "amount_due": 4675.0}


# --------------------------------------------------------------------------- invoice_routing


def test_normalise_computes_the_total_and_strips_the_supplier() -> None:
    run = run_block(ROUTING.block("normalise"), inputs={"input-json-0": SMALL})
    assert run.ok, run.error
    assert run.output == NORMALISED
    assert run.artifact["operation"] == "function_invocation"


def test_normalise_defaults_the_currency_and_rejects_lines_without_prices() -> None:
    no_currency = {k: v for k, v in SMALL.items() if k != "currency"}
    assert run_block(ROUTING.block("normalise"), inputs={"input-json-0": no_currency}
                     ).output["currency"] == "EUR"
    broken = {**SMALL, "lines": [{"quantity": 1}]}
    run = run_block(ROUTING.block("normalise"), inputs={"input-json-0": broken})
    assert run.status == "error" and "unit_price" in run.error["message"]


@pytest.mark.parametrize(("amount", "handle"), [
    (5000.01, "output-json-needs-approval"), (5000, "output-json-else"), (0, "output-json-else")])
def test_route_on_amount_boundary(amount: float, handle: str) -> None:
    run = run_block(ROUTING.block("route_on_amount"),
                    inputs={"input-json-0": {"amount_due": amount}})
    assert run.outputs == {handle: {"amount_due": amount}}


@pytest.mark.parametrize(("amount", "approver"), [(50000.01, "cfo"), (6000, "finance-lead")])
def test_request_approval_picks_the_approver(amount: float, approver: str) -> None:
    run = run_block(ROUTING.block("request_approval"),
                    inputs={"input-json-0": {"amount_due": amount}})
    assert run.output == {"action": "approval_requested", "approver": approver}


def test_book_invoice_writes_the_ledger_line() -> None:
    run = run_block(ROUTING.block("book_invoice"), inputs={"input-json-0": NORMALISED})
    assert run.output == {"action": "booked",
                          "ledger_line": "INV-2026-0042 Acme Industrial Supplies 4675.00 EUR"}


def test_decision_merges_the_branch_that_ran() -> None:
    run = run_block(ROUTING.block("decision"), inputs={
        "invoice": NORMALISED, "booking": {"action": "booked", "ledger_line": "x"}})
    assert run.output == {**NORMALISED, "action": "booked", "ledger_line": "x"}


def test_routing_workflow_with_its_functions_stubbed() -> None:
    """The stubbed workflow test: functions stubbed, routing, merge and end for real."""
    stubs = {"normalise": {**NORMALISED, "amount_due": 7200.0},
             "request_approval": {"action": "approval_requested", "approver": "finance-lead"},
             "book_invoice": Failure.permanent("must not run")}
    with Engine(":memory:", stubs=stubs) as engine:
        result = engine.run(ROUTING, {"invoice": BIG})
        assert result.ok, result.error
        assert_step(result, "route_on_amount", outputs={
            "output-json-needs-approval": {**NORMALISED, "amount_due": 7200.0}})
        assert_step(result, "book_invoice", status="skipped",
                    reason="branch_not_selected: route_on_amount.output-json-else")
    assert result.outputs["done"]["input-json-0"]["data"]["approver"] == "finance-lead"


def test_routing_survives_a_flaky_normalise(stepwell_engine: Engine) -> None:
    stepwell_engine.stubs = {"normalise": Attempts(Failure.transient("worker died"),
                                                   Failure.transient("worker died"), NORMALISED)}
    result = stepwell_engine.run(ROUTING, {"invoice": SMALL})
    assert result.ok, result.error
    assert_step(result, "normalise", status="completed", retry_count=2)
    assert_step(result, "book_invoice", status="completed")
    assert_step(result, "request_approval", status="skipped")


# --------------------------------------------------------------------------- python_functions


def test_score_lead_counts_size_domain_and_country() -> None:
    score = pipeline.build_workflow().block("score")
    run = run_block(score, inputs={"input-json-0": pipeline.SAMPLE_LEAD})
    assert run.output == {"name": "Ada Martin", "email": "ada@factory.example", "score": 85}
    free_mail = {**pipeline.SAMPLE_LEAD, "email": "ada@gmail.com", "country": "US"}
    assert run_block(score, inputs={"input-json-0": free_mail}).output["score"] == 45


@pytest.mark.parametrize(("score", "owner"), [(60, "sales"), (59, "nurture")])
def test_assign_owner_threshold(score: int, owner: str) -> None:
    run = run_block(pipeline.build_workflow().block("assign"),
                    inputs={"input-json-0": {"name": "x", "score": score}})
    assert run.output == {"lead": "x", "owner": owner, "score": score}


def test_lead_pipeline_end_to_end(stepwell_engine: Engine) -> None:
    result = stepwell_engine.run(pipeline.build_workflow(), {"lead": pipeline.SAMPLE_LEAD})
    assert_step(result, "assign", output={"lead": "Ada Martin", "owner": "sales", "score": 85})


def test_lead_pipeline_rejects_an_owner_outside_the_schema(stepwell_engine: Engine) -> None:
    stepwell_engine.stubs = {"assign": lambda call: {"owner": "marketing"}}
    result = stepwell_engine.run(pipeline.build_workflow(), {"lead": pipeline.SAMPLE_LEAD})
    assert result.ok  # a stub answers for the block, schema checks included
    stepwell_engine.stubs = {}
    bad_lead = {k: v for k, v in pipeline.SAMPLE_LEAD.items() if k != "employees"}
    failed = stepwell_engine.run(pipeline.build_workflow(), {"lead": bad_lead})
    assert failed.status == "error" and failed.failing_step_id == "lead"


# --------------------------------------------------------------------------- order_pricing


@pytest.mark.parametrize(("qty", "handle"), [(10, "output-json-bulk"), (9, "output-json-else")])
def test_is_bulk_routes_on_quantity(qty: int, handle: str) -> None:
    line = {"sku": "bolt", "qty": qty, "unit": 0.5}
    assert run_block(PRICING.block("is_bulk"), inputs={"input-json-0": line}).outputs == {
        handle: line}


def test_line_prices() -> None:
    line = {"sku": "bolt-m8", "qty": 200, "unit": 0.5}
    assert run_block(PRICING.block("bulk_price"), inputs={"input-json-0": line}).output == {
        "sku": "bolt-m8", "total": 90.0}
    assert run_block(PRICING.block("list_price"), inputs={"input-json-0": line}).output == {
        "sku": "bolt-m8", "total": 100.0}


def test_order_total_and_discount() -> None:
    lines = [{"sku": "a", "total": 90.0}, {"sku": "b", "total": 1040.0}]
    assert run_block(PRICING.block("order_total"), inputs={"input-json-0": lines}).output == {
        "total": 1130.0, "lines": 2}
    assert run_block(PRICING.block("discount"), inputs={"input-json-0": {"total": 1000, "round": 2}}
                     ).output == {"total": 950.0, "round": 3}


def price(rate: float) -> Any:
    def answer(call: StubCall) -> dict[str, Any]:
        line = call.input
        return {"sku": line["sku"], "total": round(line["qty"] * line["unit"] * rate, 2)}
    return answer


PRICING_STUBS: dict[str, Any] = {
    "bulk_price": price(0.9),
    "list_price": price(1.0),
    "order_total": lambda call: {"total": round(sum(x["total"] for x in call.input), 2),
                                 "lines": len(call.input)},
    "grand_total": lambda call: {"total": round(sum(o["total"] for o in call.input), 2),
                                 "round": 0},
    "discount": lambda call: {"total": round(call.input["total"] * 0.95, 2),
                              "round": call.input["round"] + 1},
}


def test_for_each_body_routes_every_line() -> None:
    with Engine(":memory:", stubs=PRICING_STUBS) as engine:
        result = engine.run(PRICING, {"order_in": ORDERS})
        assert result.ok, result.error
        body = "orders_iter_0_lines_iter_0_"
        assert_step(result, body + "is_bulk",
                    outputs={"output-json-bulk": ORDERS["orders"][0]["lines"][0]})
        assert_step(result, body + "bulk_price", output={"sku": "bolt-m8", "total": 90.0})
        assert_step(result, body + "list_price", status="skipped",
                    reason="branch_not_selected: is_bulk.output-json-else")
        assert_step(result, "orders_iter_0_lines_iter_1_bulk_price", status="skipped")
        assert_step(result, "orders_iter_1_lines_iter_0_line_total",
                    output={"sku": "gloves", "total": 102.6})
        assert_step(result, "orders", outputs={"fe-right-out": [{"total": 1130.0, "lines": 2},
                                                                 {"total": 102.6, "lines": 1}]})
    assert result.outputs["done"]["input-json-0"]["data"] == {"total": 953.76, "round": 5}


def test_a_failing_line_fails_its_order_and_the_run() -> None:
    stubs = {**PRICING_STUBS, "orders_iter_1_lines_iter_0_bulk_price": Failure.permanent("no SKU")}
    with Engine(":memory:", stubs=stubs, retry=INSTANT_RETRY) as engine:
        result = engine.run(PRICING, {"order_in": ORDERS})
        assert result.status == "error"
        assert_step(result, "orders_iter_1_lines_iter_0_bulk_price", status="error",
                    error="no SKU")
        assert_step(result, "orders_iter_0_order_total", status="completed")
        assert_step(result, "haggle", status="skipped")


# --------------------------------------------------------------------------- invoice_pdf


def test_classifier_sorts_the_pdf_as_an_invoice_offline() -> None:
    run = run_block(PDF_FLOW.block("sort"), inputs={"document": INVOICE_PDF})
    assert list(run.outputs) == ["output-file-invoice"]
    assert run.files["output-file-invoice"] == INVOICE_PDF.read_bytes()
    assert run.artifact["output"]["category"] == "invoice"
    assert run.artifact["scores"]["invoice"] > run.artifact["scores"]["receipt"]


def test_extract_reads_the_invoice_header_offline() -> None:
    run = run_block(PDF_FLOW.block("read_invoice"), inputs={"document": INVOICE_PDF})
    assert run.output == {"invoice_number": "INV-2026-0042", "issue_date": "2026-03-12",
                          "supplier": "ACME Supplies GmbH", "total_amount": 2125.0,
                          "currency": "EUR"}
    assert run.model == "offline"


def test_extract_asks_for_review_when_a_required_field_is_missing() -> None:
    header = {"invoice_number": None, "issue_date": "2026-03-12", "supplier": "ACME",
              "total_amount": 10.0, "currency": "EUR"}
    run = run_block(PDF_FLOW.block("read_invoice"), inputs={"document": INVOICE_PDF},
                    provider={"read_invoice": header})
    assert run.status == "awaiting_review"
    assert run.review["status"] == "pending"


def test_a_receipt_stops_after_the_classifier(stepwell_engine: Engine) -> None:
    stepwell_engine.services["model_provider"] = _scripted({"sort": "receipt"})
    result = stepwell_engine.run(PDF_FLOW, {"upload": INVOICE_PDF})
    assert result.ok
    assert_step(result, "read_invoice", status="skipped",
                reason="category_not_selected: sort.output-file-invoice")


def test_a_small_invoice_is_booked(stepwell_engine: Engine) -> None:
    header = {"invoice_number": "I-1", "issue_date": "2026-01-02", "supplier": "Small Co",
              "total_amount": 99.5, "currency": "EUR"}
    stepwell_engine.services["model_provider"] = _scripted({"sort": "invoice",
                                                            "read_invoice": header})
    result = stepwell_engine.run(PDF_FLOW, {"upload": INVOICE_PDF})
    assert_step(result, "book_invoice", output={
        "action": "booked", "ledger_line": "2026-01-02 I-1 Small Co 99.50 EUR"})
    assert_step(result, "request_approval", status="skipped")


def _scripted(script: dict[str, Any]) -> Any:
    from engine.testing import ScriptedProvider

    return ScriptedProvider(script)
