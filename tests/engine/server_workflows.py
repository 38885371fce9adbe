"""Workflows (YAML text) and in-process function targets for the HTTP API tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
INVOICE_PDF = ROOT / "examples" / "invoice_pdf" / "invoice.pdf"
T = "tests.engine.server_workflows"


def price(line: Any) -> dict[str, Any]:
    """Price one order line."""
    return {"sku": line.sku, "total": round(line.qty * line.unit, 2)}


def total(lines: Any) -> dict[str, Any]:
    """Sum priced lines."""
    return {"total": round(sum(item["total"] for item in lines), 2), "lines": len(lines)}


def book(data: Any) -> dict[str, Any]:
    """Book an approved amount."""
    return {"booked": data.amount}


#: A document and a JSON input; a for_each makes the step count exceed a page.
ORDER_WITH_INVOICE = f"""\
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata:
  name: Order with invoice
spec:
  blocks:
    upload: {{type: start_document, label: Invoice PDF}}
    order:
      type: start_json
      label: Order
      config:
        json_schema:
          type: object
          properties:
            customer: {{type: string}}
            lines:
              type: array
              items:
                type: object
                properties: {{sku: {{type: string}}, qty: {{type: integer}}, unit: {{type: number}}}}
          required: [lines]
    read: {{type: parse, label: Read the PDF}}
    each_line:
      type: for_each
      label: Each line
      config: {{map_method: iterate_array, map_source_path: lines}}
      children:
        price:
          type: function
          label: Price the line
          config:
            python: "{T}:price"
            output_schema: {{type: object, properties: {{sku: {{type: string}}, total: {{type: number}}}}}}
    total:
      type: function
      label: Total
      config:
        python: "{T}:total"
        output_schema:
          type: object
          properties: {{total: {{type: number}}, lines: {{type: integer}}}}
          required: [total, lines]
    done:
      type: end
      label: Result
      config:
        inputs: [{{name: text}}, {{name: total}}]
  edges:
    - source: {{block: upload, handle: output-file-0}}
      target: {{block: read, handle: input-file-0}}
    - source: {{block: order, handle: output-json-0}}
      target: {{block: each_line, handle: fe-left-in}}
    - source: {{block: each_line, handle: fe-right-out}}
      target: {{block: total, handle: input-json-0}}
    - source: {{block: read, handle: output-json-0}}
      target: {{block: done, handle: input-json-text}}
    - source: {{block: total, handle: output-json-0}}
      target: {{block: done, handle: input-json-total}}
"""

ORDER = {"customer": "acme", "lines": [{"sku": "A-1", "qty": 2, "unit": 10.0},
                                      {"sku": "B-2", "qty": 1, "unit": 99.5},
                                      {"sku": "C-3", "qty": 4, "unit": 2.25}]}

#: Runs for minutes unless cancelled: a while_loop around a slow Python function.
SLOW_LOOP = """\
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata:
  name: Slow loop
spec:
  blocks:
    seed: {type: start_json, label: Seed}
    spin:
      type: while_loop
      label: Spin
      config:
        max_iterations: 500
        termination_condition:
          logical_operator: and
          sub_conditions:
            - path_ref: {input: default, path: round}
              operator: less_than
              value: 0
      children:
        step:
          type: function
          label: Slow step
          config:
            timeout_seconds: 60
            output_schema: {type: object, properties: {round: {type: integer}}}
            code: |
              import time

              def transform(state):
                  time.sleep(0.5)
                  return {"round": state.round + 1}
  edges:
    - source: {block: seed, handle: output-json-0}
      target: {block: spin, handle: loop-left-in}
"""

#: A human review between the input and the booking.
REVIEWED = f"""\
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata:
  name: Reviewed booking
spec:
  blocks:
    claim: {{type: start_json, label: Claim}}
    gate:
      type: hil
      label: Check the amount
      config: {{instructions: "check the amount"}}
    book:
      type: function
      label: Book
      config:
        python: "{T}:book"
        output_schema: {{type: object, properties: {{booked: {{type: number}}}}}}
  edges:
    - source: {{block: claim, handle: output-json-0}}
      target: {{block: gate, handle: input-json-0}}
    - source: {{block: gate, handle: output-json-0}}
      target: {{block: book, handle: input-json-0}}
"""

#: The smallest runnable workflow.
ECHO = """\
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata:
  name: Echo
spec:
  blocks:
    data: {type: start_json, label: Data}
    done: {type: end, label: Done}
  edges:
    - source: {block: data, handle: output-json-0}
      target: {block: done, handle: input-json-0}
"""
