"""Workflows and a seeded database for the web UI tests.

:func:`seed` writes, through the engine, the runs of :func:`bench.ui_seed.seed_runs`
(``review``: an invoice waiting for a review; ``items``: a for_each of 30 items, four of
which fail) and:

* ``hostile``: a workflow whose name and labels are HTML payloads;
* ``chatty``: a function that prints, logs and writes an over-long line, fails its first
  attempt (transiently) and succeeds on the second: a step log of two attempts, with a
  cut message.

:data:`SLOW` runs for a minute unless cancelled (for the cancel test).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.ui_seed import ITEMS, seed_runs
from engine import Engine, Workflow
from engine.contracts.errors import TransientError

MODULE = "tests.ui.workflows"
XSS = '<img src=x onerror="window.__xss=1">'
SCRIPT_XSS = "<script>window.__xss=2</script>"
_XSS_YAML = json.dumps(XSS)  # a JSON string is a YAML double-quoted scalar
LONG_LINE = 20_000


def talk(data: Any) -> dict[str, Any]:
    """Print and log; the first call (counted in the file ``data.counter``) fails
    transiently after an over-long line; later calls wait ``data.wait_s`` seconds, then
    answer."""
    counter = Path(data.counter)
    calls = int(counter.read_text() or 0) if counter.exists() else 0
    counter.write_text(str(calls + 1))
    print(f"attempt {calls + 1} starting")
    logging.getLogger("tests.ui.talk").warning("careful: call %s", calls + 1)
    if calls == 0:
        print("x" * LONG_LINE)
        raise TransientError("the service is warming up", code="WARMING_UP")
    time.sleep(float(data.wait_s or 0))
    print("all done")
    return {"calls": calls + 1}


CHATTY_YAML = f"""apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata:
  name: Chatty
spec:
  blocks:
    start: {{type: start_json, label: Start}}
    talk:
      type: function
      label: Talk
      config:
        python: "{MODULE}:talk"
        output_schema: {{type: object, properties: {{calls: {{type: integer}}}}}}
        retry: {{max_attempts: 3, initial_interval_s: 0}}
  edges:
    - source: {{block: start, handle: output-json-0}}
      target: {{block: talk, handle: input-json-0}}
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
    chatty: str


def chatty_inputs(folder: Path, wait_s: float = 0.0) -> dict[str, Any]:
    """Inputs of :data:`CHATTY_YAML` counting calls in a fresh file of ``folder``."""
    counter = folder / f"calls-{os.getpid()}-{time.monotonic_ns()}.txt"
    return {"start": {"counter": str(counter), "wait_s": wait_s}}


def seed(db: Path, items: int = ITEMS) -> Seeded:
    """Write the runs into ``db`` (see the module docstring)."""
    with Engine(db) as engine:
        return seed_engine(engine, db.parent, items)


def seed_engine(engine: Engine, folder: Path, items: int = ITEMS) -> Seeded:
    """Write the runs with ``engine`` (any store); ``folder`` holds scratch files."""
    runs = seed_runs(engine, items)
    hostile = engine.run(Workflow.from_yaml(HOSTILE_YAML), {"start": {"html": XSS}})
    chatty = engine.run(Workflow.from_yaml(CHATTY_YAML), chatty_inputs(folder))
    assert chatty.status == "completed", chatty
    return Seeded(review=runs.review, items=runs.items, hostile=hostile.run_id,
                  chatty=chatty.run_id)
