"""Workflows and a seeded database for the web UI tests (and bench/ui.py's small case).

:func:`seed` writes, through the engine:

* ``review``: the invoice PDF, extracted, waiting for a review (``review.predicate:
  always``); approving it lets the run go on to the routing and the end block;
* ``items``: a for_each over :data:`ITEMS` items whose function fails on every item
  whose value is 3 mod 7 (``on_item_error: skip``), then a conditional whose ``small``
  branch is skipped (``branch_not_selected``);
* ``hostile``: a workflow whose name and labels are HTML payloads.

:data:`SLOW` runs for a minute unless cancelled (for the cancel test).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import Engine, Workflow
from engine.contracts.errors import PermanentError

ROOT = Path(__file__).resolve().parents[2]
INVOICE_PDF = ROOT / "examples" / "invoice_pdf" / "invoice.pdf"
MODULE = "tests.ui.workflows"
ITEMS = 30
XSS = '<img src=x onerror="window.__xss=1">'
SCRIPT_XSS = "<script>window.__xss=2</script>"
_XSS_YAML = json.dumps(XSS)  # a JSON string is a YAML double-quoted scalar


def check_item(item: Any) -> dict[str, Any]:
    """Double an item's value; items whose value is 3 mod 7 fail."""
    if item.value % 7 == 3:
        raise PermanentError(f"item {item.value} is not allowed (3 mod 7)")
    return {"value": item.value, "double": item.value * 2}


def summarize(results: Any) -> dict[str, Any]:
    """Count the items that went through."""
    kept = [r for r in results if r is not None]
    return {"kept": len(kept), "total": sum(r["double"] for r in kept)}


def review_yaml() -> str:
    """The invoice example with a review on every extraction."""
    text = (ROOT / "examples" / "invoice_pdf" / "workflow.yaml").read_text()
    return text.replace("kind: any_required_field_null", "kind: always")


ITEMS_YAML = f"""\
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata:
  name: Item checks
spec:
  blocks:
    batch:
      type: start_json
      label: Batch
    each:
      type: for_each
      label: Each item
      config: {{map_method: iterate_array, map_source_path: items, on_item_error: skip,
               max_concurrency: 4}}
      children:
        check:
          type: function
          label: Check the item
          config:
            python: "{MODULE}:check_item"
            output_schema: {{type: object, properties: {{value: {{type: integer}},
                            double: {{type: integer}}}}}}
    total:
      type: function
      label: Total
      config:
        python: "{MODULE}:summarize"
        output_schema: {{type: object, properties: {{kept: {{type: integer}},
                        total: {{type: integer}}}}}}
    size:
      type: conditional
      label: Big batch?
      config:
        conditions:
          - id: big
            name: Big
            handle_key: big
            condition:
              logical_operator: and
              sub_conditions:
                - path_ref: {{input: default, path: kept}}
                  operator: greater_than
                  value: 10
        has_else: true
    big_batch: {{type: reshape, label: Big batch, config: {{}}}}
    small_batch: {{type: reshape, label: Small batch, config: {{}}}}
  edges:
    - source: {{block: batch, handle: output-json-0}}
      target: {{block: each, handle: fe-left-in}}
    - source: {{block: each, handle: fe-right-out}}
      target: {{block: total, handle: input-json-0}}
    - source: {{block: total, handle: output-json-0}}
      target: {{block: size, handle: input-json-0}}
    - source: {{block: size, handle: output-json-big}}
      target: {{block: big_batch, handle: input-json-0}}
    - source: {{block: size, handle: output-json-else}}
      target: {{block: small_batch, handle: input-json-0}}
"""

HOSTILE_YAML = f"""\
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata:
  name: {_XSS_YAML}
spec:
  blocks:
    start: {{type: start_json, label: {json.dumps(SCRIPT_XSS)}}}
    shout:
      type: function
      label: {_XSS_YAML}
      config:
        output_schema: {{type: object, properties: {{html: {{type: string}}}}}}
        code: |
          def transform(data):
              return {{"html": data.html}}
  edges:
    - source: {{block: start, handle: output-json-0}}
      target: {{block: shout, handle: input-json-0}}
"""

SLOW = """\
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata:
  name: Slow job
spec:
  blocks:
    go: {type: start_json, label: Go}
    wait:
      type: function
      label: Wait a minute
      config:
        timeout_seconds: 120
        output_schema: {type: object, properties: {done: {type: boolean}}}
        code: |
          import time

          def transform(data):
              time.sleep(60)
              return {"done": True}
  edges:
    - source: {block: go, handle: output-json-0}
      target: {block: wait, handle: input-json-0}
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Seeded:
    """Run ids of :func:`seed`."""

    review: str
    items: str
    hostile: str


def seed(db: Path, items: int = ITEMS) -> Seeded:
    """Write the three runs into ``db`` (see the module docstring)."""
    with Engine(db) as engine:
        review = engine.run(Workflow.from_yaml(review_yaml()), {"upload": INVOICE_PDF})
        batch = {"items": [{"value": i} for i in range(items)]}
        checked = engine.run(Workflow.from_yaml(ITEMS_YAML), {"batch": batch})
        hostile = engine.run(Workflow.from_yaml(HOSTILE_YAML),
                             {"start": {"html": XSS}})
    assert review.status == "awaiting_review", review
    assert checked.status == "completed", checked
    return Seeded(review=review.run_id, items=checked.run_id, hostile=hostile.run_id)
