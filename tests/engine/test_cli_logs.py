"""``stepwell steps logs`` across a crash: attempt numbers continue after a resume.

A run is killed (SIGKILL) while its function step runs, or while the step waits to retry
after a failed attempt; ``stepwell runs resume`` runs the step again as its next attempt.
The step's log, as ``steps logs`` and ``steps get --json`` show it, numbers that attempt
from the step's ``retry_count`` (1), not from 0.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.engine import observe_targets
from tests.engine.test_cli_observe import child_env, stepwell

PRICE = """
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata: {name: Price one item}
spec:
  blocks:
    item: {type: start_json}
    work:
      type: function
      config:
        python: tests.engine.observe_targets:price
        output_schema: {type: object}
  edges:
    - {source: {block: item, handle: output-json-0}, target: {block: work, handle: input-json-0}}
"""


def test_a_resumed_step_logs_its_attempt_after_the_lost_one(tmp_path: Path) -> None:
    workflow, db, side = tmp_path / "price.yaml", tmp_path / "logs.db", tmp_path / "calls.txt"
    workflow.write_text(PRICE)
    script = str(Path(sys.executable).with_name("stepwell"))
    proc = subprocess.Popen(
        [script, "run", str(workflow), "-i", json.dumps({"sku": "sku-1", "qty": 2}),
         "--db", str(db), "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=child_env(OBSERVE_SLOW_S="60", OBSERVE_SIDE_FILE=str(side)))
    deadline = time.monotonic() + 60
    while not (side.exists() and side.read_text()):  # the step's code started
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    run_id = json.loads(stepwell("runs", "list", "--db", db, "--json").stdout)["data"][0]["id"]
    resumed = stepwell("runs", "resume", run_id, "--db", db, OBSERVE_SIDE_FILE=str(side))
    assert resumed.returncode == 0, resumed.stderr
    assert side.read_text().split() == ["sku-1", "sku-1"]
    step = json.loads(stepwell("steps", "get", "work", "--run", run_id, "--db", db,
                               "--json").stdout)
    assert step["retry_count"] == 1
    logs = json.loads(stepwell("steps", "logs", "work", "--run", run_id, "--db", db,
                               "--json").stdout)["data"]
    assert [(line["attempt"], line["message"]) for line in logs] == [(1, "pricing sku-1"),
                                                                      (1, "qty 2")]
    assert {line["attempt"] for line in step["logs"]} == {1}
    shown = stepwell("steps", "logs", "work", "--run", run_id, "--db", db)
    assert "── attempt 1 (retry 1)" in shown.stdout, shown.stdout


# the flaky workflow with a retry a minute away: the kill lands while it waits
FLAKY_SLOW_RETRY = observe_targets.FLAKY_WORKFLOW.replace("initial_interval_s: 0",
                                                         "initial_interval_s: 60")


def test_a_step_killed_while_waiting_to_retry_logs_its_next_attempt(tmp_path: Path) -> None:
    workflow, db, counter = tmp_path / "flaky.yaml", tmp_path / "logs.db", tmp_path / "n.txt"
    workflow.write_text(FLAKY_SLOW_RETRY)
    script = str(Path(sys.executable).with_name("stepwell"))
    proc = subprocess.Popen(
        [script, "run", str(workflow), "-i", json.dumps({"counter": str(counter)}),
         "--db", str(db), "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=child_env())
    deadline = time.monotonic() + 60
    run_id = None
    while True:  # attempt 0 failed and its log is committed: the step waits to retry
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
        if run_id is None and db.exists():
            listed = stepwell("runs", "list", "--db", db, "--json")
            data = json.loads(listed.stdout)["data"] if listed.returncode == 0 else []
            run_id = data[0]["id"] if data else None
        if run_id is not None:
            logs = stepwell("steps", "logs", "call", "--run", run_id, "--db", db, "--json")
            if logs.returncode == 0 and json.loads(logs.stdout)["data"]:
                break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    resumed = stepwell("runs", "resume", run_id, "--db", db)
    assert resumed.returncode == 0, resumed.stderr
    logs = json.loads(stepwell("steps", "logs", "call", "--run", run_id, "--db", db,
                               "--json").stdout)["data"]
    assert [(line["attempt"], line["message"]) for line in logs] == [(0, "call 1"),
                                                                      (1, "call 2")]


def test_an_attempt_the_step_never_ran_is_refused(tmp_path: Path) -> None:
    flaky, db = tmp_path / "flaky.yaml", tmp_path / "logs.db"
    flaky.write_text(observe_targets.FLAKY_WORKFLOW)
    ran = stepwell("run", flaky, "-i", json.dumps({"counter": str(tmp_path / "n.txt")}),
                   "--db", db, "--json")
    assert ran.returncode == 0, ran.stderr
    run_id = json.loads(ran.stdout)["id"]
    for follow in ((), ("--follow",)):
        beyond = stepwell("steps", "logs", "call", "--run", run_id, "--attempt", "2", *follow,
                          "--db", db)
        assert beyond.returncode == 2 and beyond.stdout == ""
        [line] = beyond.stderr.strip().splitlines()
        assert "has no attempt 2: it ran attempts 0 to 1" in line, line
    second = stepwell("steps", "logs", "call", "--run", run_id, "--attempt", "1", "--db", db)
    assert second.returncode == 0 and second.stdout.rstrip().endswith("call 2")
    quiet = stepwell("steps", "logs", "start", "--run", run_id, "--follow", "--db", db)
    assert quiet.returncode == 0
    assert quiet.stdout.strip() == f"Step start of run {run_id} ended and wrote no log lines."
    gone = stepwell("steps", "logs", "call", "--run", "run_nope", "--follow", "--db", db)
    assert gone.returncode == 2 and len(gone.stderr.strip().splitlines()) == 1
