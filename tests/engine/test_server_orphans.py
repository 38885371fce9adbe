"""A run orphaned while the server is up: over HTTP it says so, and the server resumes it.

The owner is a real ``stepwell run`` process over the server's database, SIGKILLed while
its step naps; the server is the app of ``create_app`` with its lifespan running.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from retab.types.workflows.runs import WorkflowRun as SdkRun

from engine import Workflow
from engine.server import create_app
from engine.server.config import ServerConfig

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk_orphans_" + "c3" * 16
NAP = """\
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata: {name: nap}
spec:
  blocks:
    data: {type: start_json}
    nap:
      type: function
      config: {python: "tests.engine.orphan_targets:nap_once", output_schema: {type: object}}
    done: {type: end}
  edges:
    - {source: {block: data, handle: output-json-0}, target: {block: nap}}
    - {source: {block: nap, handle: output-json-0}, target: {block: done, handle: input-json-0}}
"""


def killed_cli_run(tmp_path: Path, db: Path) -> str:
    """Start ``stepwell run`` over ``db``, SIGKILL it while its step naps; the run id."""
    wf = tmp_path / "nap.yaml"
    wf.write_text(NAP)
    marker = tmp_path / "marker"
    inputs = json.dumps({"marker": str(marker), "seconds": 120})
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPWELL_")}
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "run", str(wf), "--db",
                             str(db), "-q", "--input", f"data={inputs}"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, "stepwell run ended before its step napped"
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db) as conn:
        [(run_id, status, pid)] = conn.execute("SELECT id, status, owner_pid FROM runs")
    assert status == "running" and pid == proc.pid
    return str(run_id)


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    return tmp_path / "orphans.db"


def serve(db: Path, sweep_s: float) -> TestClient:
    config = ServerConfig(api_keys={KEY: "org_local"}, orphan_sweep_s=sweep_s)
    return TestClient(create_app(db, config=config), headers={"Api-Key": KEY})


@pytest.fixture()
def quiet_server(db: Path) -> Iterator[TestClient]:
    """A server that recovers orphans only at start (no sweep)."""
    db.parent.mkdir(exist_ok=True)
    with serve(db, 0) as client:
        yield client


def test_an_orphaned_run_says_so_over_http(tmp_path: Path, db: Path,
                                            quiet_server: TestClient) -> None:
    run_id = killed_cli_run(tmp_path, db)
    run = quiet_server.get(f"/v1/workflows/runs/{run_id}").json()
    owner = run["stepwell_owner"]
    assert run["lifecycle"]["status"] == "running" and owner["alive"] is False
    assert owner["orphaned"].startswith("orphaned: its owner process")
    assert f"stepwell runs resume {run_id}" in owner["orphaned"]
    listed = quiet_server.get("/v1/workflows/runs").json()["data"]
    assert [r["stepwell_owner"]["alive"] for r in listed] == [False]
    sdk = SdkRun.model_validate(run)  # the SDK's own model still reads it
    assert sdk.lifecycle.status == "running"


def test_a_live_run_has_a_live_owner(tmp_path: Path, db: Path,
                                     quiet_server: TestClient) -> None:
    wf = quiet_server.post("/v1/workflows/spec/apply", json={"yaml_definition": NAP})
    marker = tmp_path / "marker"
    started = quiet_server.post("/v1/workflows/runs", json={
        "workflow_id": wf.json()["workflow_id"],
        "json_inputs": {"data": {"marker": str(marker), "seconds": 3}}}).json()
    while not marker.exists():
        time.sleep(0.05)
    owner = quiet_server.get(f"/v1/workflows/runs/{started['id']}").json()["stepwell_owner"]
    assert owner == {"pid": os.getpid(), "heartbeat_at": owner["heartbeat_at"],
                     "alive": True, "orphaned": None}
    ended = wait_for(quiet_server, started["id"], ("completed",), 60)
    assert "stepwell_owner" not in ended


def wait_for(client: TestClient, run_id: str, statuses: tuple[str, ...],
             timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = dict(client.get(f"/v1/workflows/runs/{run_id}").json())
        if run["lifecycle"]["status"] in statuses:
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.1)


def test_the_server_resumes_an_orphan_while_it_is_up(tmp_path: Path, db: Path) -> None:
    db.parent.mkdir(exist_ok=True)
    with serve(db, 0.5) as client:  # started before the run exists: only a sweep finds it
        run_id = killed_cli_run(tmp_path, db)
        ended = wait_for(client, run_id, ("completed", "error"), 60)
        assert ended["lifecycle"]["status"] == "completed", ended
        step = client.get("/v1/workflows/steps/nap", params={"run_id": run_id}).json()
        assert step["lifecycle"]["status"] == "completed"


def test_a_run_of_the_server_that_no_thread_executes_is_recovered(tmp_path: Path,
                                                                  db: Path) -> None:
    with serve(db, 0) as client:
        state = client.app.state.stepwell  # type: ignore[attr-defined]
        data = {"marker": str(tmp_path / "marker"), "seconds": 0}
        prepared = state.engine.prepare(Workflow.from_yaml(NAP), {"data": data})
        state.store.set_owner(prepared.run_id, os.getpid(), time.time() - 60)  # thread lost
        owner = client.get(f"/v1/workflows/runs/{prepared.run_id}").json()["stepwell_owner"]
        assert owner["pid"] == os.getpid() and owner["alive"] is False
        assert [(r.run_id, r.action) for r in state.sweep()] == [(prepared.run_id, "resumed")]
        assert wait_for(client, prepared.run_id, ("completed", "error"), 60)[
            "lifecycle"]["status"] == "completed"
        assert state.sweep() == []
