"""W6: what a stubbed workflow test costs, as docs/testing.md writes one.

Each test opens an Engine on a fresh database file as the ``stepwell_engine`` fixture
does (instant retries, ``scratch`` durability: a test's database is never fsynced),
runs an example workflow with some blocks stubbed, checks a step with ``assert_step``
and closes the engine; the imports are paid once, as in a pytest session.

- ``invoice_routing``: two function blocks stubbed, a real conditional route (7 steps);
- ``order_pricing``: a for_each of order lines with stubbed prices, routing and a
  while_loop real, one stubbed step retried twice (24 steps).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _price(rate: float) -> Callable[[Any], dict[str, Any]]:
    def answer(call: Any) -> dict[str, Any]:
        line = call.input
        return {"sku": line["sku"], "total": round(line["qty"] * line["unit"] * rate, 2)}
    return answer


def _tests() -> dict[str, Callable[[Path], None]]:
    from engine import Engine, load_workflow
    from engine.testing import INSTANT_RETRY, Attempts, Failure, assert_step

    routing = load_workflow(EXAMPLES / "invoice_routing" / "workflow.yaml")
    pricing = load_workflow(EXAMPLES / "order_pricing" / "workflow.yaml")
    fixture: dict[str, Any] = {"retry": INSTANT_RETRY, "durability": "scratch"}

    def invoice_routing(db: Path) -> None:
        stubs = {"normalise": {"invoice_number": "INV-1", "supplier": "Acme",
                               "amount_due": 7200.0},
                 "request_approval": {"action": "approval_requested", "approver": "cfo"}}
        with Engine(db, stubs=stubs, **fixture) as engine:
            result = engine.run(routing, {"invoice": {
                "invoice_number": "INV-1", "supplier": "Acme", "lines": []}})
            assert_step(result, "book_invoice", status="skipped")

    def order_pricing(db: Path) -> None:
        lines = [{"sku": "bolt", "qty": 200, "unit": 0.5}, {"sku": "drill", "qty": 1,
                                                            "unit": 99.0}]
        stubs = {
            "bulk_price": _price(0.9), "list_price": _price(1.0),
            "order_total": lambda call: {"total": sum(x["total"] for x in call.input),
                                         "lines": len(call.input)},
            "grand_total": lambda call: {"total": call.input[0]["total"], "round": 0},
            "haggle_iter_0_discount": Attempts(Failure.transient("timeout"),
                                               Failure.transient("timeout"),
                                               {"total": 180.0, "round": 1}),
        }
        with Engine(db, stubs=stubs, **fixture) as engine:
            result = engine.run(pricing, {"order_in": {"orders": [
                {"order_id": "A", "lines": lines}]}})
            assert_step(result, "haggle_iter_0_discount", retry_count=2)

    return {"invoice_routing (7 steps)": invoice_routing,
            "order_pricing (24 steps)": order_pricing}


def stubbed_test_ms(folder: Path, repeat: int = 21) -> dict[str, float]:
    """Median milliseconds of each stubbed test, after one warm-up run of each.

    Args:
        folder: where the per-test database files go.
        repeat: measured runs per test.

    Returns:
        ``{test: median ms}``.
    """
    out: dict[str, float] = {}
    for n, (label, test) in enumerate(_tests().items()):
        test(folder / f"stub-{n}-warm.db")
        times = []
        for i in range(repeat):
            start = time.perf_counter()
            test(folder / f"stub-{n}-{i}.db")
            times.append(time.perf_counter() - start)
        out[label] = statistics.median(times) * 1000
    return out


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="stepwell-stubbed-") as tmp:
        print(json.dumps(stubbed_test_ms(Path(tmp))))
