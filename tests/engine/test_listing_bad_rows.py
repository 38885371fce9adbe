"""Listings survive one unreadable row: a step stored with JSON nested too deeply to
serialise (written before outputs were bounded) is listed without its payloads and with
a ``stepwell_unreadable`` note, over HTTP and in ``stepwell steps list``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import engine.attempts
from engine.server import create_app
from tests.engine.live_server import LiveServer
from tests.engine.security_server import python_workflow
from tests.engine.test_cli_observe import stepwell

KEY = "k" * 40


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Path, str]]:
    """A run whose ``work`` step stored an output nested 300 levels deep."""
    db = tmp_path_factory.mktemp("bad_rows") / "stepwell.db"
    patch = pytest.MonkeyPatch()
    patch.setattr(engine.attempts, "nesting_problem", lambda *a, **k: None)  # the old engine
    try:
        with LiveServer(create_app(db, api_keys={KEY: "org_a"})) as live:
            http = httpx.Client(base_url=live.url, headers={"Api-Key": KEY}, timeout=30)
            applied = http.post("/v1/workflows/spec/apply", json={
                "yaml_definition": python_workflow("tests.engine.test_output_depth:deep")})
            run = http.post("/v1/workflows/runs", json={
                "workflow_id": applied.json()["workflow_id"], "json_inputs": {"data": {}}}).json()
            for _ in range(100):
                status = http.get(f"/v1/workflows/runs/{run['id']}").json()["lifecycle"]["status"]
                if status not in ("pending", "queued", "running"):
                    break
                time.sleep(0.1)
            patch.undo()
            yield http, db, run["id"]
    finally:
        patch.undo()


def test_http_step_listings_survive_an_unreadable_row(
        bad_run: tuple[httpx.Client, Path, str]) -> None:
    http, _, run_id = bad_run
    listed = http.get("/v1/workflows/steps", params={"run_id": run_id})
    assert listed.status_code == 200, listed.text
    steps = {s["block_id"]: s for s in listed.json()["data"]}
    assert set(steps) == {"data", "work", "done"}
    assert "stepwell_unreadable" not in steps["data"]
    assert "could not be rendered" in steps["work"]["stepwell_unreadable"]
    assert steps["work"]["handle_outputs"] == {}
    one = http.get(f"/v1/workflows/steps/{steps['work']['step_id']}", params={"run_id": run_id})
    assert one.status_code == 200 and "stepwell_unreadable" in one.json()
    legacy = http.get(f"/v1/workflows/runs/{run_id}/steps")
    assert legacy.status_code == 200 and len(legacy.json()) == 3


def test_cli_steps_list_survives_an_unreadable_row(
        bad_run: tuple[httpx.Client, Path, str]) -> None:
    _, db, run_id = bad_run
    done = stepwell("steps", "list", run_id, "--db", db, COLUMNS="200")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "unreadable" in done.stdout
    assert "start_json" in done.stdout


def test_http_artifact_listing_survives_an_unreadable_record(
        bad_run: tuple[httpx.Client, Path, str]) -> None:
    http, _, run_id = bad_run
    listed = http.get("/v1/workflows/artifacts", params={"run_id": run_id})
    assert listed.status_code == 200, listed.text
    assert all(a["step_id"] != "work" for a in listed.json()["data"])


def test_cli_json_listing_and_step_survive_an_unreadable_row(
        bad_run: tuple[httpx.Client, Path, str]) -> None:
    _, db, run_id = bad_run
    listed = stepwell("steps", "list", run_id, "--db", db, "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["block_id"]: row for row in json.loads(listed.stdout)["data"]}
    assert "stepwell_unreadable" in rows["work"] and "stepwell_unreadable" not in rows["data"]
    one = stepwell("steps", "get", "work", "--run", run_id, "--db", db, "--json")
    assert one.returncode == 0 and "stepwell_unreadable" in json.loads(one.stdout)
