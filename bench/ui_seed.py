"""Real runs for the web UI's benchmark (and the UI tests' seed), written through the engine.

* ``review``: the invoice PDF, extracted, waiting for a review (``review.predicate:
  always``); approving it lets the run go on to the routing and the end block;
* ``items``: a for_each over :data:`ITEMS` items whose function fails on every item
  whose value is 3 mod 7 (``on_item_error: skip``), then a conditional whose ``small``
  branch is skipped (``branch_not_selected``).

:func:`seed_runs` writes both with an engine over any store. The functions the items
workflow calls live here (``bench.ui_seed:check_item``), so the runs can be resumed and
rerun by any process that can import the repository.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import Engine, Workflow
from engine.contracts.errors import PermanentError

ROOT = Path(__file__).resolve().parents[1]
INVOICE_PDF = ROOT / "examples" / "invoice_pdf" / "invoice.pdf"
MODULE = "bench.ui_seed"
ITEMS = 30
#: Item values that pass even when they are 3 mod 7 (a test fixes them before a rerun).
FIXED: set[int] = set()
#: Item values checked in this process, in call order (tests read it).
CHECKED: list[int] = []


def check_item(item: Any) -> dict[str, Any]:
    """Double an item's value; items whose value is 3 mod 7 fail (unless in FIXED)."""
    CHECKED.append(item.value)
    if item.value % 7 == 3 and item.value not in FIXED:
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


@dataclass(frozen=True, slots=True, kw_only=True)
class SeededRuns:
    """Run ids of :func:`seed_runs`."""

    review: str
    items: str


def seed_runs(engine: Engine, items: int = ITEMS) -> SeededRuns:
    """Run the review and items workflows on ``engine`` (see the module docstring)."""
    review = engine.run(Workflow.from_yaml(review_yaml()), {"upload": INVOICE_PDF})
    batch = {"items": [{"value": i} for i in range(items)]}
    checked = engine.run(Workflow.from_yaml(ITEMS_YAML), {"batch": batch})
    assert review.status == "awaiting_review", review
    assert checked.status == "completed", checked
    return SeededRuns(review=review.run_id, items=checked.run_id)
