"""The functions of examples/price_items: price one order line, total the order.

``price`` prints what it does and logs with ``logging``; both end up in the step's log
(``stepwell steps logs``). A sku without a price fails its item. ``PRICE_OVERRIDES``
(JSON, ``{"sku": unit_price}``) adds or changes prices, which is how the walkthrough in
docs/cli.md fixes a failed item before ``stepwell runs rerun RUN_ID --failed``.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from engine.contracts.errors import PermanentError

log = logging.getLogger("price_items")

PRICES = {"bolt": 0.25, "nut": 0.10, "washer": 0.05, "drill": 89.0, "saw": 24.5}


def price(item: Any) -> dict[str, Any]:
    """Price one order line (``{sku, qty}``) from the price list."""
    prices = {**PRICES, **json.loads(os.environ.get("PRICE_OVERRIDES") or "{}")}
    sku, qty = item["sku"], item["qty"]
    print(f"pricing {qty} x {sku}")
    if sku not in prices:
        log.error("no price for %s; known skus: %s", sku, ", ".join(sorted(prices)))
        raise PermanentError(f"no price for {sku!r}; add it to the price list",
                             code="NO_PRICE")
    amount = round(qty * prices[sku], 2)
    log.info("%s: %s x %s = %s", sku, qty, prices[sku], amount)
    return {"sku": sku, "qty": qty, "amount": amount}


def total(lines: Any) -> dict[str, Any]:
    """The order total."""
    return {"lines": len(lines), "total": round(sum(line["amount"] for line in lines), 2)}
