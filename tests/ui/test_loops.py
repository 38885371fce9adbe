"""Item progress of loops on the run page and the runs list: ``37/200 items, 2 failed``
while a for_each runs (whatever it iterates over), a while_loop's iterations out of its
bound, and the real runs of every kind of loop (arrays, pages, split_by_key, while)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bench.ui_seed import ITEMS_YAML
from engine import Engine, Workflow
from engine.contracts.events import NewRun, StepEvent
from engine.contracts.logs import LOOP_LOGGER, AttemptLog, LogEntry
from engine.contracts.values import LoopFrame, StepStatus
from engine.server import create_app
from engine.server.config import ServerConfig
from engine.server.ui.blocks_view import ItemProgress
from store.memory import MemoryStore
from tests.store.helpers import error_info
from tests.ui.conftest import LOCAL

S = StepStatus
WHILE_YAML = """\
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata: {name: Rounds}
spec:
  blocks:
    start: {type: start_json}
    rounds:
      type: while_loop
      config:
        max_iterations: 10
        termination_condition:
          logical_operator: and
          sub_conditions:
            - {path_ref: {input: default, path: n}, operator: greater_than_or_equal, value: 99}
      children:
        bump: {type: reshape, config: {}}
  edges:
    - {source: {block: start, handle: output-json-0}, target: {block: rounds, handle: loop-left-in}}
    - {source: {block: rounds, handle: loop-left-out}, target: {block: bump, handle: input-json-0}}
    - {source: {block: bump, handle: output-json-0}, target: {block: rounds, handle: loop-right-in}}
"""


@pytest.fixture
def memory_app() -> Iterator[tuple[TestClient, MemoryStore]]:
    store = MemoryStore()
    config = ServerConfig(api_keys={"sk_gen": "org_local"}, generated_key="sk_gen")
    with TestClient(create_app(store, config=config), base_url=LOCAL) as client:
        yield client, store
    store.close()


def _moves(step_id: str, block_id: str, block_type: str, scope: tuple[LoopFrame, ...],
           *statuses: StepStatus, **kw: Any) -> list[StepEvent]:
    return [StepEvent(step_id=step_id, block_id=block_id, block_type=block_type,
                      label=block_id, status=s, scope=scope, **kw) for s in statuses]


def _done(step_id: str, block_id: str, block_type: str = "function",
          scope: tuple[LoopFrame, ...] = ()) -> list[StepEvent]:
    return _moves(step_id, block_id, block_type, scope, S.PENDING, S.QUEUED, S.RUNNING,
                  S.COMPLETED)


def _iteration(container: str, kind: str, child: str, i: int, outcome: str
               ) -> list[StepEvent]:
    """One iteration: its sentinel start, its child step, and its end as ``outcome``
    says (``done``, ``failed``, or ``open`` with the child still running)."""
    scope = (LoopFrame(container_id=container, iteration=i),)
    prefix = f"{container}_iter_{i}_"
    start, end = f"{container}_sentinel_start", f"{container}_sentinel_end"
    events = _done(prefix + start, start, f"{kind}_sentinel_start", scope)
    running = _moves(prefix + child, child, "function", scope, S.PENDING, S.QUEUED, S.RUNNING)
    if outcome == "open":
        return events + running
    if outcome == "failed":
        return events + running + _moves(prefix + child, child, "function", scope, S.ERROR,
                                         error=error_info("no")) + _moves(
            prefix + end, end, f"{kind}_sentinel_end", scope, S.PENDING, S.SKIPPED,
            reason="upstream error")
    return (events + running + _moves(prefix + child, child, "function", scope, S.COMPLETED)
            + _done(prefix + end, end, f"{kind}_sentinel_end", scope))


def _running_run(store: MemoryStore, run_id: str, yaml: str) -> None:
    wf = Workflow.from_yaml(yaml)
    store.create_run(NewRun(run_id=run_id, workflow_id=wf.id or "wf_loops",
                            workflow_name=wf.name, workflow_digest=wf.digest(),
                            definition=wf.to_dict(), inputs={}), now=time.time())


def _note(store: MemoryStore, run_id: str, step_id: str, message: str) -> None:
    entry = LogEntry(stream="stepwell", message=message, at=time.time(), logger=LOOP_LOGGER)
    store.append_logs(run_id, [AttemptLog(step_id=step_id, attempt=0, entries=(entry,))],
                      now=time.time())


def test_a_running_for_each_shows_items_out_of_its_size(
        memory_app: tuple[TestClient, MemoryStore]) -> None:
    client, store = memory_app
    run_id = "run_loop0000000000000001"
    _running_run(store, run_id, ITEMS_YAML)
    store.apply(run_id, _done("batch", "batch", "start_json")
                + _done("each", "each", "for_each"), now=time.time())
    _note(store, run_id, "each", "200 items, 4 at a time; a failed item becomes null")
    for i in range(40):
        outcome = "failed" if i in (7, 21) else "open" if i == 39 else "done"
        store.apply(run_id, _iteration("each", "for_each", "check", i, outcome),
                    now=time.time())
    page = client.get(f"/runs/{run_id}").text
    assert "37/200 items, 2 failed" in page
    graph = json.loads(re.search(r'id="graph-data">(.*?)</script>', page, re.DOTALL).group(1))
    each = next(n for n in graph["nodes"] if n["id"] == "each")
    assert each["summary"] == "37/200 items, 2 failed" and each["failed_items"] == 2
    assert "37/200" in client.get("/").text
    assert 'data-events="/ui/events?run=' in page  # it is live
    iterations = client.get(f"/runs/{run_id}/iterations", params={"step": "each"}).text
    assert "40 iterations" in iterations and iterations.count('class="failed"') == 2


def test_a_running_while_loop_shows_iterations_out_of_its_bound(
        memory_app: tuple[TestClient, MemoryStore]) -> None:
    client, store = memory_app
    run_id = "run_loop0000000000000002"
    _running_run(store, run_id, WHILE_YAML)
    store.apply(run_id, _done("start", "start", "start_json")
                + _done("rounds", "rounds", "while_loop"), now=time.time())
    _note(store, run_id, "rounds", "loop opened: at most 10 iterations")
    for i, outcome in enumerate(("done", "done", "open")):
        store.apply(run_id, _iteration("rounds", "while_loop", "bump", i, outcome),
                    now=time.time())
    page = client.get(f"/runs/{run_id}").text
    assert "2 of at most 10 iterations" in page


def test_progress_text() -> None:
    assert ItemProgress(total=200, started=40, done=37, failed=2).text() == \
        "37/200 items, 2 failed"
    assert ItemProgress(total=None, started=5, done=3).text() == "3/5+ items"
    assert ItemProgress(total=None, started=5, done=5).text() == "5/5 items"
    assert ItemProgress(total=6, started=4, done=4, unopened=2).text() == "4/6+ items"
    assert ItemProgress(total=10, bound=True, unit="iterations", started=3, done=2
                        ).text() == "2 of at most 10 iterations"


def test_every_kind_of_loop_reports_its_size(memory_app: tuple[TestClient, MemoryStore],
                                             tmp_path: Path) -> None:
    from tests.blocks import pdfs
    from tests.conformance.runner import load, pdf_document
    from tests.engine.crash_targets import INPUT, build_workflow

    client, store = memory_app
    with Engine(store=store) as engine:
        pages = engine.run(load("for_each_pages"), {
            "upload": pdf_document(tmp_path, "three.pdf", pdfs.pages(3))})
        by_key = engine.run(load("for_each_by_key"), {
            "bundle": pdf_document(tmp_path, "invoices.pdf", pdfs.invoices_by_number())})
        both = engine.run(build_workflow(), {"start": INPUT})
    for result in (pages, by_key, both):
        assert result.status == "completed", result
    sizes = {(s.run_id, s.block_id): (s.items, s.bound) for s in store.loop_sizes(
        [pages.run_id, by_key.run_id, both.run_id])}
    assert sizes == {(pages.run_id, "each_page"): (3, False),
                     (by_key.run_id, "per_invoice"): (3, False),
                     (both.run_id, "each"): (8, False), (both.run_id, "rounds"): (8, True)}
    assert "3/3 items" in client.get(f"/runs/{pages.run_id}").text
    assert "3/3 items" in client.get(f"/runs/{by_key.run_id}").text
    crash = client.get(f"/runs/{both.run_id}").text
    assert "8/8 items" in crash
    assert re.search(r"\d of at most 8 iterations", crash)
