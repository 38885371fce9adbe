"""The web UI in a real headless Chromium against a real ``stepwell serve`` on loopback.

Skipped without Chromium or Playwright (the skip message says what to install); required
in CI (``STEPWELL_REQUIRE_BROWSER=1``, see ``.ci/run``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from store.client import Client
from tests.ui.browser import ROOT, browser_page, require_browser, serve
from tests.ui.workflows import SLOW, XSS, Seeded


@pytest.fixture
def chromium() -> str:
    """The Chromium executable (or a skip saying what to install)."""
    return require_browser()


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

    url, _, runs = served
    with browser_page(chromium) as page:
        page.goto(url + "/reviews")
        page.locator("td a[href^='/reviews/rev_']").first.click()
        expect(page.locator("img[alt^='Page 1 of invoice.pdf']")).to_be_visible()
        page.get_by_label("total_amount").fill("980")
        page.get_by_role("button", name="Approve").click()
        expect(page.locator(".notice")).to_contain_text("Approved")
        state = page.locator(".review-state")
        expect(state).to_contain_text("approved")
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


def _wait_for_running(db: Path, name: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with Client(db) as client:
            for run in client.workflows.runs.list(status="running").data:
                if run.workflow_name == name:
                    steps = client.workflows.steps.list(run.id, status="running").data
                    if steps:
                        return run.id
        time.sleep(0.1)
    raise AssertionError(f"no running {name!r} run appeared")
