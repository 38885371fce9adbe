"""Functions and a workflow for the observability tests (logs, loop progress, rerun)."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from engine.contracts.errors import PermanentError

log = logging.getLogger("tests.observe")

EACH_WORKFLOW = """
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata:
  name: Price each item
spec:
  blocks:
    order:
      type: start_json
    each:
      type: for_each
      config: {{map_source_path: items, max_concurrency: 2, on_item_error: {on_error}}}
      children:
        work:
          type: function
          config:
            python: tests.engine.observe_targets:price
            output_schema: {{type: object}}
    total:
      type: function
      config:
        python: tests.engine.observe_targets:total
        output_schema: {{type: object}}
  edges:
    - source: {{block: order, handle: output-json-0}}
      target: {{block: each, handle: fe-left-in}}
    - source: {{block: each, handle: fe-right-out}}
      target: {{block: total, handle: input-json-0}}
"""

#: Item skus that fail (tests clear it to make a rerun succeed).
FAILING: set[str] = set()


def each_workflow(on_error: str = "fail") -> str:
    """The for_each workflow (``items`` priced one by one) as YAML text."""
    return EACH_WORKFLOW.format(on_error=on_error)


def order(count: int) -> dict[str, Any]:
    """An order of ``count`` items."""
    return {"order": {"items": [{"sku": f"sku-{i}", "qty": i + 1} for i in range(count)]}}


def price(item: Any) -> dict[str, Any]:
    """Price one item; print and log about it; fail for skus in FAILING (or in
    ``$OBSERVE_FAILING``, comma-separated); note each call in ``$OBSERVE_SIDE_FILE``;
    sleep ``$OBSERVE_SLOW_S`` seconds first."""
    side = os.environ.get("OBSERVE_SIDE_FILE")
    if side:
        with open(side, "a", encoding="utf-8") as out:
            out.write(item["sku"] + "\n")
    time.sleep(float(os.environ.get("OBSERVE_SLOW_S") or 0))
    print(f"pricing {item['sku']}")
    log.info("qty %s", item["qty"])
    failing = FAILING | set(filter(None, os.environ.get("OBSERVE_FAILING", "").split(",")))
    if item["sku"] in failing:
        raise PermanentError(f"no price for {item['sku']}", code="NO_PRICE")
    return {"sku": item["sku"], "amount": item["qty"] * 10}


def total(items: Any) -> dict[str, Any]:
    """Sum the priced items."""
    return {"total": sum(i["amount"] for i in items if i), "count": len(items)}


REVIEW_WORKFLOW = """
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata: {name: Expense review}
spec:
  blocks:
    claim: {type: start_json}
    gate:
      type: hil
      config: {instructions: "Check the receipt matches the amount"}
    book:
      type: function
      config:
        python: tests.engine.observe_targets:book
        output_schema: {type: object}
    done: {type: end}
  edges:
    - {source: {block: claim, handle: output-json-0}, target: {block: gate, handle: input-json-0}}
    - {source: {block: gate, handle: output-json-0}, target: {block: book, handle: input-json-0}}
    - {source: {block: book, handle: output-json-0}, target: {block: done, handle: input-json-0}}
"""


def book(claim: Any) -> dict[str, Any]:
    """Book an approved claim."""
    return {"booked": claim["amount"]}


FLAKY_WORKFLOW = """
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata: {name: Flaky}
spec:
  blocks:
    start: {type: start_json}
    call:
      type: function
      config:
        python: tests.engine.observe_targets:flaky
        output_schema: {type: object}
        retry: {max_attempts: 3, initial_interval_s: 0}
  edges:
    - {source: {block: start, handle: output-json-0}, target: {block: call, handle: input-json-0}}
"""


def flaky(data: Any) -> dict[str, Any]:
    """Fail (transiently) on the first call for ``data["key"]``, answer on the second;
    the calls are counted in the file ``data["counter"]``."""
    from engine.contracts.errors import TransientError

    counter = data["counter"]
    calls = int(open(counter).read() or 0) if os.path.exists(counter) else 0
    with open(counter, "w", encoding="utf-8") as out:
        out.write(str(calls + 1))
    print(f"call {calls + 1}")
    if calls == 0:
        raise TransientError("the service is warming up", code="WARMING_UP")
    return {"calls": calls + 1}
