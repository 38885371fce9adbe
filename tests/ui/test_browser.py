"""The web UI in a real headless Chromium against a real ``stepwell serve`` on loopback.

Skipped without Chromium or Playwright (the skip message says what to install); required
in CI (``STEPWELL_REQUIRE_BROWSER=1``, see ``.ci/run``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from store.client import Client
from tests.ui.browser import EDGES_OUTSIDE_THE_VIEW, ROOT, browser_page, serve
from tests.ui.workflows import CHATTY_YAML, SLOW, XSS, Seeded, chatty_inputs


@pytest.fixture
def served(db_copy: tuple[Path, Seeded]) -> Iterator[tuple[str, Path, Seeded]]:
    """``stepwell serve`` over a private copy of the seeded database."""
    db, runs = db_copy
    with serve(db) as url:
        yield url, db, runs


def test_runs_run_and_step_pages(chromium: str, served: tuple[str, Path, Seeded]) -> None:
    from playwright.sync_api import expect

    url, _, runs = served
    with browser_page(chromium) as page:
        page.goto(url + "/")
        expect(page.locator("table.runs")).to_contain_text("Item checks")
        expect(page.locator("table.runs")).to_contain_text("awaiting review")
        page.click(f"a[href='/runs/{runs.items}']")
        expect(page).to_have_url(f"{url}/runs/{runs.items}")
        blocks = page.locator("table.blocks")
        expect(blocks).to_contain_text("branch_not_selected: size.output-json-else")
        expect(blocks.locator("tr", has_text="Small batch")).to_contain_text("skipped")
        expect(blocks.locator("tr", has_text="Check the item")).to_contain_text("error")
        graph = page.locator("#graph svg")
        expect(graph.locator("a.block")).to_have_count(6)
        expect(graph.locator("a.cluster")).to_contain_text("26/30 items, 4 failed")
        page.locator("summary", has_text="Iterations of Each item").click()
        expect(page.locator("tr.failed")).to_have_count(4)
        graph.locator("a.block[aria-label^='Small batch']").click()  # a block lists its steps
        expect(page.locator("#steps")).to_contain_text("small_batch")
        page.locator("#steps a", has_text="small_batch").click()
        expect(page.locator("h1")).to_have_text("Small batch")
        expect(page.locator(".reason")).to_contain_text("branch_not_selected")
        page.keyboard.press("Tab")  # the skip link comes first
        expect(page.locator("a.skip")).to_be_focused()


def test_html_in_a_workflow_name_is_inert(chromium: str, served: tuple[str, Path, Seeded]
                                          ) -> None:
    from playwright.sync_api import expect

    url, _, runs = served
    with browser_page(chromium) as page:
        for path in ("/", f"/runs/{runs.hostile}", f"/runs/{runs.hostile}/steps/shout"):
            page.goto(url + path)
            page.wait_for_load_state("networkidle")
            assert page.evaluate("window.__xss") is None, path
            assert page.locator("img[src='x']").count() == 0, path
        expect(page.locator("h1")).to_have_text(XSS)  # shown as text


def test_approve_a_review_and_see_the_run_continue(chromium: str,
                                                   served: tuple[str, Path, Seeded]) -> None:
    from playwright.sync_api import expect

    url, db, runs = served
    with browser_page(chromium) as page:
        page.goto(url + "/reviews")
        page.locator("td a[href^='/reviews/rev_']").first.click()
        expect(page.locator("img[alt^='Page 1 of invoice.pdf']")).to_be_visible()
        page.get_by_label("total_amount").fill("980")
        page.get_by_label("Note on your correction").fill("the total was misread")
        page.get_by_role("button", name="Approve").click()
        expect(page.locator(".notice")).to_contain_text("Approved")
        state = page.locator(".review-state")
        expect(state).to_contain_text("approved")
        # the correction is a version of the review, the one the decision took
        review_id = page.url.split("/reviews/")[1].split("?")[0]
        proposal, correction, decided = _versions(db, review_id)
        assert decided == correction.id and correction.snapshot["total_amount"] == 980
        chosen = state.locator("table.versions tr.selected")
        expect(chosen).to_contain_text(correction.id)
        expect(chosen).to_contain_text("✓ approved")
        expect(chosen).to_contain_text("the total was misread")
        expect(state.locator("table.versions")).to_contain_text(proposal.id)
        # the run finishes in the server; the live region follows without a reload
        expect(state.locator(f"a[href='/runs/{runs.review}'] + .badge")).to_contain_text(
            "completed", timeout=30_000)
        page.goto(f"{url}/runs/{runs.review}")
        expect(page.locator("table.blocks tr", has_text="Book invoice")).to_contain_text(
            "completed")


def test_cancel_a_running_run(chromium: str, served: tuple[str, Path, Seeded],
                              tmp_path: Path) -> None:
    from playwright.sync_api import expect

    url, db, _ = served
    workflow = tmp_path / "slow.yaml"
    workflow.write_text(SLOW)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "run", str(workflow),
                             "--input", "go={}", "--db", str(db)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        run_id = _wait_for_running(db, "Slow job")
        with browser_page(chromium) as page:
            page.goto(url + "/")
            expect(page.locator("tr", has_text="Slow job")).to_contain_text("running")
            page.goto(f"{url}/runs/{run_id}")
            page.get_by_role("button", name="Cancel run").click()
            expect(page.locator(".status-line .badge").first).to_contain_text(
                "cancelled", timeout=20_000)
            expect(page.locator("table.blocks tr", has_text="Wait a minute")).to_contain_text(
                "cancelled")
        assert proc.wait(timeout=30) == 1  # the CLI reports the cancelled run
    finally:
        if proc.poll() is None:
            proc.kill()


def test_rerun_the_failed_items_and_see_the_new_run(chromium: str,
                                                    served: tuple[str, Path, Seeded]) -> None:
    from playwright.sync_api import expect

    url, _, runs = served
    with browser_page(chromium) as page:
        page.goto(f"{url}/runs/{runs.items}")
        page.get_by_role("button", name="Rerun the 4 failed items").click()
        expect(page.locator(".notice")).to_contain_text("runs only the failed steps")
        expect(page).to_have_url(re.compile(r"/runs/run_\w+\?notice=rerun_failed_started"))
        assert runs.items not in page.url
        expect(page.locator(".facts")).to_contain_text(f"rerun of {runs.items}")
        # the new run finishes in the server; its page follows it without a reload
        expect(page.locator(".status-line .badge").first).to_contain_text(
            "completed", timeout=30_000)
        expect(page.locator("table.blocks tr", has_text="Each item")).to_contain_text(
            "26/30 items, 4 failed")
        new_run = page.url.split("/runs/")[1].split("?")[0]
        page.goto(url + "/")
        expect(page.locator(f"a[href='/runs/{new_run}']")).to_be_visible()


def test_step_logs_follow_a_running_step(chromium: str, served: tuple[str, Path, Seeded],
                                         tmp_path: Path) -> None:
    from playwright.sync_api import expect

    url, db, _ = served
    workflow = tmp_path / "chatty.yaml"
    workflow.write_text(CHATTY_YAML)
    # the second attempt sleeps long enough for a loaded machine to open the page first
    inputs = json.dumps(chatty_inputs(tmp_path, wait_s=12.0)["start"])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "run", str(workflow),
                             "--input", f"start={inputs}", "--db", str(db)], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        run_id = _wait_for_running(db, "Chatty", retried=True)
        with browser_page(chromium) as page:
            page.goto(f"{url}/runs/{run_id}/steps/talk")
            logs = page.locator("#logs")
            expect(logs.locator("#log-attempt-0")).to_contain_text("attempt 1 starting")
            expect(logs.locator("#log-attempt-0 summary")).to_contain_text("✂ 1 cut")
            expect(logs).not_to_contain_text("all done")
            # the second attempt's entries arrive when it ends, without a reload
            expect(logs.locator("#log-attempt-1")).to_contain_text("all done",
                                                                  timeout=30_000)
            expect(page.locator(".status-line .badge").first).to_contain_text("completed")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def _versions(db: Path, review_id: str) -> tuple[Any, Any, str]:
    """The proposal and the one correction of a review, and the version its decision
    took, as the HTTP API computes them."""
    from engine.server.review_versions import decided_version, versions_of
    from store.search import review_row
    from store.sqlite import SQLiteStore

    with SQLiteStore(db) as store:
        row = review_row(store.reader(), review_id)
        proposal, correction = versions_of(store, row)
        return proposal, correction, decided_version(row, [proposal, correction])


def _wait_for_running(db: Path, name: str, timeout: float = 30, *, retried: bool = False
                      ) -> str:
    """A running run of workflow ``name`` with a running step (retried at least once when
    ``retried``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with Client(db) as client:
            for run in client.workflows.runs.list(status="running").data:
                if run.workflow_name == name:
                    steps = client.workflows.steps.list(run.id, status="running").data
                    if any(s.retry_count or not retried for s in steps):
                        return run.id
        time.sleep(0.1)
    raise AssertionError(f"no running {name!r} run appeared")


def test_approving_an_untouched_form_keeps_the_proposal(chromium: str,
                                                        db_copy: tuple[Path, Seeded]) -> None:
    """Chromium's own form submission (line breaks as CRLF, every field sent) of an
    unedited review approves the proposal as it is: no new version, data unchanged."""
    from playwright.sync_api import expect

    from engine import Engine, Workflow
    from tests.ui.test_review_form import HIL_YAML, TRICKY

    db, _ = db_copy
    with Engine(db) as engine:
        run = engine.run(Workflow.from_yaml(HIL_YAML), {"start": TRICKY})
    assert run.status == "awaiting_review", run
    with serve(db) as url, browser_page(chromium) as page:
        page.goto(url + "/reviews")
        page.locator("td a[href^='/reviews/rev_']").last.click()
        expect(page.locator("textarea[name='field.addr']")).to_have_value("Line1\nLine2")
        page.get_by_role("button", name="Approve").click()
        expect(page.locator(".notice")).to_contain_text("Approved")
        review_id = page.url.split("/reviews/")[1].split("?")[0]
    from engine.server.review_versions import versions_of
    from store.search import review_row
    from store.sqlite import SQLiteStore

    with SQLiteStore(db) as store:
        row = review_row(store.reader(), review_id)
        assert row["decision"] == "approved"
        assert len(versions_of(store, row)) == 1  # no "human" version was recorded
        assert versions_of(store, row)[0].snapshot == TRICKY


def test_the_graph_draws_nested_loops_and_keeps_every_edge_in_view(
        chromium: str, db_copy: tuple[Path, Seeded]) -> None:
    """A for_each inside a for_each is drawn (dagre once died on it, leaving no graph),
    and an edge routed around the other blocks (read_invoice -> done of the review run,
    above them) stays inside the drawing."""
    from playwright.sync_api import expect

    from engine import Engine

    db, runs = db_copy
    example = ROOT / "examples" / "order_pricing"
    with Engine(db) as engine:
        nested = engine.run(example / "workflow.yaml",
                            {"order_in": json.loads((example / "orders.json").read_text())})
    assert nested.status == "completed", nested
    with serve(db) as url, browser_page(chromium) as page:
        page.goto(f"{url}/runs/{nested.run_id}")
        graph = page.locator("#graph svg")
        expect(graph.locator("a.cluster")).to_have_count(3)
        expect(graph.locator("a.cluster[aria-label^='Each line']")).to_contain_text("3/3 items")
        expect(graph.locator("a.block")).to_have_count(9)
        assert page.evaluate(EDGES_OUTSIDE_THE_VIEW) == []
        page.goto(f"{url}/runs/{runs.review}")
        expect(graph.locator("a.block")).to_have_count(7)
        assert page.evaluate(EDGES_OUTSIDE_THE_VIEW) == []


def test_a_long_label_leaves_the_rerun_button_on_the_page(chromium: str,
                                                          db_copy: tuple[Path, Seeded]) -> None:
    from playwright.sync_api import expect

    from engine import Engine, Workflow
    from tests.ui.test_review_form import HIL_YAML

    db, _ = db_copy
    long_label = "A very long label " * 12
    with Engine(db) as engine:
        run = engine.run(Workflow.from_yaml(HIL_YAML.replace(
            "label: Start", f"label: {long_label.strip()}")), {"start": {"x": 1}})
    with serve(db) as url, browser_page(chromium) as page:
        page.goto(f"{url}/runs/{run.run_id}")
        button = page.get_by_role("button", name="Rerun", exact=True)
        expect(button).to_be_visible()
        box = button.bounding_box()
        assert box is not None and box["x"] + box["width"] <= page.viewport_size["width"]
        assert page.evaluate("document.documentElement.scrollWidth") <= \
            page.viewport_size["width"]
