"""Every example under examples/ is run here; adding an example without a case fails."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from engine import Engine

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _invoice_routing(db: Path) -> None:
    folder = EXAMPLES / "invoice_routing"
    with Engine(db) as engine:
        for name, action in (("invoice.json", "booked"), ("big_invoice.json", "approval_requested")):
            result = engine.run(folder / "workflow.yaml",
                                {"invoice": json.loads((folder / name).read_text())})
            assert result.ok, result.error
            assert result.outputs["done"]["input-json-0"]["data"]["action"] == action


def _python_functions(db: Path) -> None:
    from examples.python_functions import pipeline

    assert pipeline.main(str(db))["owner"] == "sales"


def order_pricing_ids(lines_per_order: list[int], rounds: int) -> set[str]:
    """The exact step ids of a run of examples/order_pricing."""
    ids = {"order_in", "orders", "grand_total", "haggle", "done"}
    for i, count in enumerate(lines_per_order):
        outer = f"orders_iter_{i}_"
        ids |= {outer + b for b in ("orders_sentinel_start", "lines", "order_total",
                                    "orders_sentinel_end")}
        for j in range(count):
            inner = f"{outer}lines_iter_{j}_"
            ids |= {inner + b for b in ("lines_sentinel_start", "is_bulk", "bulk_price",
                                        "list_price", "line_total", "lines_sentinel_end")}
    for k in range(rounds):
        ids |= {f"haggle_iter_{k}_{b}" for b in ("haggle_sentinel_start", "discount",
                                                 "haggle_sentinel_end")}
    return ids


def _order_pricing(db: Path) -> None:
    folder = EXAMPLES / "order_pricing"
    with Engine(db) as engine:
        result = engine.run(folder / "workflow.yaml",
                            {"order_in": json.loads((folder / "orders.json").read_text())})
        assert result.ok, result.error
        steps = {s.step_id: s for s in engine.client.workflows.steps.list(
            result.run_id, limit=1000).data}
        assert set(steps) == order_pricing_ids([2, 1], rounds=5)
        assert result.outputs["done"]["input-json-0"]["data"] == {"total": 953.76, "round": 5}
        leaf = steps["orders_iter_0_lines_iter_1_list_price"]
        assert [(c.container_id, c.iteration) for c in leaf.loop_containers] == [
            ("orders", 0), ("lines", 1)]
        assert steps["orders_iter_0_lines_iter_1_bulk_price"].lifecycle.reason == (
            "branch_not_selected: is_bulk.output-json-bulk")
        totals = steps["orders"].handle_outputs["fe-right-out"].data
        assert totals == [{"total": 1130.0, "lines": 2}, {"total": 102.6, "lines": 1}]
        haggle = steps["haggle"]
        assert haggle.artifact.operation == "while_loop_termination"


def _invoice_pdf(db: Path) -> None:
    folder = EXAMPLES / "invoice_pdf"
    with Engine(db) as engine:
        result = engine.run(folder / "workflow.yaml", {"upload": folder / "invoice.pdf"})
        assert result.ok, result.error
        done = result.outputs["done"]
        assert done["input-json-invoice"]["data"] == {
            "invoice_number": "INV-2026-0042", "issue_date": "2026-03-12",
            "supplier": "ACME Supplies GmbH", "total_amount": 2125.0, "currency": "EUR"}
        assert done["input-json-approval"]["data"]["action"] == "approval_requested"
        steps = {s.step_id: s for s in engine.client.workflows.steps.list(result.run_id).data}
        assert set(steps["sort"].handle_outputs) == {"output-file-invoice"}
        assert steps["read_invoice"].model == "offline"
        assert steps["book_invoice"].lifecycle.reason == (
            "branch_not_selected: route_on_amount.output-json-else")


def _fastapi_sse(db: Path) -> None:
    import sqlite3

    import httpx

    from examples.fastapi_sse.app import create_app
    from tests.asgi_server import read_sse, serve

    claims = [({"employee": "ada", "category": "meals", "amount": 42.5}, "reimburse"),
              ({"employee": "bob", "category": "travel", "amount": 950}, "ask_manager")]
    streams: dict[str, list] = {}
    with serve(create_app(db)) as url, httpx.Client(base_url=url, timeout=30,
                                                    trust_env=False) as http:
        for claim, ran in claims:
            started = http.post("/runs", json=claim)
            assert started.status_code == 202, started.text
            run_id = started.json()["run_id"]
            events = read_sse(http, started.json()["events"])
            streams[run_id] = events
            assert [e.id for e in events] == [str(i) for i in range(len(events))]
            assert [e.data["seq"] for e in events] == list(range(len(events)))
            assert (events[0].event, events[0].data["status"]) == ("run", "running")
            last = events[-1]
            assert (last.event, last.data["status"], last.data["final"]) == (
                "run", "completed", True)
            assert [e.data["final"] for e in events].count(True) == 1
            assert any(e.data["step_id"] == ran and e.data["status"] == "completed"
                       for e in events)
            resumed = read_sse(http, started.json()["events"], {"Last-Event-ID": "5"})
            assert [e.id for e in resumed] == [e.id for e in events[6:]]
            assert http.get(f"/runs/{run_id}").json()["lifecycle"]["status"] == "completed"
        assert http.get("/runs/run_nope/events").status_code == 404
        assert http.post("/runs", json={"employee": "x"}).status_code == 422
    conn = sqlite3.connect(db)
    for run_id, events in streams.items():
        rows = conn.execute("SELECT t.step_id, t.status FROM transitions t JOIN steps s ON "
                            "s.run_id = t.run_id AND s.step_id = t.step_id WHERE t.run_id = ? "
                            "ORDER BY s.seq, t.seq", (run_id,)).fetchall()
        persisted: dict[str, list[str]] = {}
        for step_id, status in rows:
            persisted.setdefault(step_id, []).append(status)
        streamed: dict[str, list[str]] = {}
        for e in events:
            if e.event == "step":
                streamed.setdefault(e.data["step_id"], []).append(e.data["status"])
        assert streamed == persisted  # every persisted transition, once, in order
    conn.close()


def _price_items(db: Path) -> None:
    import os

    folder = EXAMPLES / "price_items"
    order = json.loads((folder / "order.json").read_text())
    with Engine(db) as engine:
        failed = engine.run(folder / "workflow.yaml", {"order": order})
        assert failed.status == "error" and failed.failing_step_id == "each_iter_3_price"
        os.environ["PRICE_OVERRIDES"] = '{"hammer": 14.0}'
        try:
            rerun = engine.rerun(failed.run_id, failed=True)
        finally:
            del os.environ["PRICE_OVERRIDES"]
        assert rerun.status == "awaiting_review", rerun.error
        [review] = engine.store.reviews(run_id=rerun.run_id)
        assert review.data["outputs"]["output-json-0"]["data"] == {"lines": 5, "total": 211.5}
        done = engine.decide(review.id, approved=True)
        assert done is not None and done.ok


CASES: dict[str, Callable[[Path], None]] = {
    "price_items": _price_items,
    "invoice_routing": _invoice_routing,
    "python_functions": _python_functions,
    "order_pricing": _order_pricing,
    "invoice_pdf": _invoice_pdf,
    "fastapi_sse": _fastapi_sse,
}


def test_every_example_has_a_case() -> None:
    folders = {p.name for p in EXAMPLES.iterdir() if p.is_dir() and not p.name.startswith("_")}
    assert folders == set(CASES), "add a case for each example folder"


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_runs(name: str, tmp_path: Path) -> None:
    CASES[name](tmp_path / f"{name}.db")


def test_invoice_pdf_is_what_its_script_builds() -> None:
    """The committed invoice.pdf and examples/invoice_pdf/make_pdf.py agree."""
    import importlib.util

    from blocks.pdf import page_texts

    folder = EXAMPLES / "invoice_pdf"
    spec = importlib.util.spec_from_file_location("make_invoice_pdf", folder / "make_pdf.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (folder / "invoice.pdf").read_bytes()
    assert page_texts(module.build()) == page_texts(committed)
    assert len(committed) < 16_000  # small enough to keep in the repository


def test_examples_keep_their_databases_out_of_the_current_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    from examples.fastapi_sse import app
    from examples.python_functions import pipeline

    for default in (app.DEFAULT_DB, pipeline.DEFAULT_DB):
        assert Path(tempfile.gettempdir()) in default.parents
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pipeline, "DEFAULT_DB", tmp_path / "elsewhere" / "pipeline.db")
    pipeline.main()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere"]
