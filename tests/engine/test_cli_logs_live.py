"""``stepwell steps logs --follow`` while the step runs, and step logs across a kill.

A step's log lines reach the store while its attempt runs (the heartbeat thread stores
them about twice a second), so ``--follow`` shows them before the step ends, and a run
killed with SIGKILL keeps the lines its running step printed before the kill. Following
a step of a run that lost its process stops (exit 1, as ``runs watch``), and a step id
the run's workflow cannot have is refused at once (exit 2).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.engine.test_cli_observe import child_env, stepwell

TICKS = """
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata: {name: Tick}
spec:
  blocks:
    item: {type: start_json}
    work:
      type: function
      config:
        python: tests.engine.live_log_targets:ticks
        output_schema: {type: object}
    after:
      type: function
      config:
        python: tests.engine.live_log_targets:echo
        output_schema: {type: object}
  edges:
    - {source: {block: item, handle: output-json-0}, target: {block: work, handle: input-json-0}}
    - {source: {block: work, handle: output-json-0}, target: {block: after, handle: input-json-0}}
"""


def start_run(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path, dict[str, str]]:
    """Start the tick workflow in a process of its own; wait until the step printed."""
    workflow, db = tmp_path / "tick.yaml", tmp_path / "live.db"
    workflow.write_text(TICKS)
    env = {"LIVE_SIDE_FILE": str(tmp_path / "side.txt"),
           "LIVE_RELEASE_FILE": str(tmp_path / "release.txt")}
    script = str(Path(sys.executable).with_name("stepwell"))
    proc = subprocess.Popen(
        [script, "run", str(workflow), "-i", json.dumps({"sku": "s1"}), "--db", str(db),
         "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env(**env))
    deadline = time.monotonic() + 60
    while not Path(env["LIVE_SIDE_FILE"]).exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    return proc, db, env


def run_id_of(db: Path) -> str:
    return json.loads(stepwell("runs", "list", "--db", db, "--json").stdout)["data"][0]["id"]


def messages(db: Path, run_id: str) -> list[str]:
    shown = stepwell("steps", "logs", "work", "--run", run_id, "--db", db, "--json")
    assert shown.returncode == 0, shown.stderr
    return [line["message"] for line in json.loads(shown.stdout)["data"]]


def test_follow_shows_lines_while_the_step_runs(tmp_path: Path) -> None:
    proc, db, env = start_run(tmp_path)
    try:
        run_id = run_id_of(db)
        script = str(Path(sys.executable).with_name("stepwell"))
        follow = subprocess.Popen(
            [script, "steps", "logs", "work", "--run", run_id, "--db", str(db), "--follow",
             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=child_env())
        assert follow.stdout is not None
        seen = [json.loads(follow.stdout.readline())["message"] for _ in range(2)]
        assert seen == ["tick 0", "tick 1"]  # while the step still waits for the release
        assert not Path(env["LIVE_RELEASE_FILE"]).exists()
        step = json.loads(stepwell("steps", "get", "work", "--run", run_id, "--db", db,
                                   "--json").stdout)
        assert step["lifecycle"]["status"] == "running"
        typo = stepwell("steps", "logs", "wrok", "--run", run_id, "--db", db, "--follow")
        assert typo.returncode == 2, typo.stderr
        assert "no block 'wrok'" in typo.stderr and "Did you mean 'work'?" in typo.stderr
        Path(env["LIVE_RELEASE_FILE"]).write_text("go")
        rest, _ = follow.communicate(timeout=60)
        assert [json.loads(line)["message"] for line in rest.splitlines()] == ["done"]
        assert follow.returncode == 0
        assert proc.wait(timeout=60) == 0
        assert messages(db, run_id) == ["tick 0", "tick 1", "done"]  # each line once
    finally:
        Path(env["LIVE_RELEASE_FILE"]).write_text("go")
        proc.wait(timeout=60)


def test_a_killed_run_keeps_the_lines_its_step_printed(tmp_path: Path) -> None:
    proc, db, _ = start_run(tmp_path)
    time.sleep(1.5)  # lines are stored within about a second of being printed
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    run_id = run_id_of(db)
    assert messages(db, run_id) == ["tick 0", "tick 1"]
    for step_id in ("work", "after"):  # left running; never started
        follow = stepwell("steps", "logs", step_id, "--run", run_id, "--db", db, "--follow")
        assert follow.returncode == 1, (step_id, follow.stderr)
        assert "lost its process" in follow.stderr and "runs resume" in follow.stderr
