"""``stepwell runs cancel|resume|rerun`` and ``stepwell reviews list|approve|reject``.

The review flow and the owner checks use real processes (the console script); the rest
runs the CLI in-process. Refusals must exit 2 with a clear message and leave the
database exactly as it was (compared with a full SQL dump).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from engine.cli import app
from engine.cli_render import run_duration_ms

ROOT = Path(__file__).resolve().parents[2]

REVIEW_YAML = """\
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata: {name: booking}
spec:
  blocks:
    invoice: {type: start_json}
    gate:
      type: hil
      config: {instructions: check the amount}
    book:
      type: function
      config:
        output_schema: {type: object}
        code: |
          def transform(data):
              return {"booked": data.amount}
    done: {type: end}
  edges:
    - {source: {block: invoice, handle: output-json-0}, target: {block: gate, handle: input-json-0}}
    - {source: {block: gate, handle: output-json-0}, target: {block: book, handle: input-json-0}}
    - {source: {block: book, handle: output-json-0}, target: {block: done, handle: input-json-0}}
"""

SLOW_YAML = """\
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata: {name: slow}
spec:
  blocks:
    start: {type: start_json}
    first:
      type: function
      config: {python: "tests.engine.durable_targets:record", output_schema: {type: object}}
    slow:
      type: function
      config: {python: "tests.engine.durable_targets:slow", output_schema: {type: object}}
    done: {type: end}
  edges:
    - {source: {block: start, handle: output-json-0}, target: {block: first, handle: input-json-0}}
    - {source: {block: first, handle: output-json-0}, target: {block: slow, handle: input-json-0}}
    - {source: {block: slow, handle: output-json-0}, target: {block: done, handle: input-json-0}}
"""


@pytest.fixture(autouse=True)
def _no_env_db(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STEPWELL_DB", raising=False)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "durable.db"


@pytest.fixture
def review_wf(tmp_path: Path) -> Path:
    path = tmp_path / "review.yaml"
    path.write_text(REVIEW_YAML)
    return path


@pytest.fixture
def slow_wf(tmp_path: Path) -> Path:
    path = tmp_path / "slow.yaml"
    path.write_text(SLOW_YAML)
    return path


def invoke(*args: str | Path) -> Any:
    """The CLI in-process (stdout and stderr kept apart)."""
    return CliRunner().invoke(app, [str(a) for a in args])


def child_env(**extra: str) -> dict[str, str]:
    """Environment of a child process: the project importable, no STEPWELL_DB."""
    env = {k: v for k, v in os.environ.items() if k != "STEPWELL_DB"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), env.get("PYTHONPATH"))))
    return {**env, **extra}


def console_script() -> str:
    return str(Path(sys.executable).with_name("stepwell"))


def stepwell(*args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed console script in a new process."""
    return subprocess.run([console_script(), *map(str, args)], capture_output=True,
                          text=True, timeout=120, env=child_env(**env), check=False)


def dump(db: Path) -> list[str]:
    """Every row of every table, as SQL."""
    conn = sqlite3.connect(db)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def query(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def step(db: Path, run_id: str, step_id: str) -> dict[str, Any]:
    result = invoke("steps", "get", step_id, "--run", run_id, "--db", db, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def waiting_run(review_wf: Path, db: Path, amount: int = 100) -> tuple[str, str]:
    """A run stopped at the review (in-process); returns (run id, review id)."""
    result = invoke("run", review_wf, "-i", json.dumps({"amount": amount}), "--db", db, "-q")
    assert result.exit_code == 3, result.stderr
    run_id = result.stdout.strip()
    listed = invoke("reviews", "list", "--run", run_id, "--db", db, "--json")
    [review] = json.loads(listed.stdout)["data"]
    return run_id, review["id"]


# --------------------------------------------------------------------------- reviews


def test_review_waits_exits_3_then_another_process_approves_with_corrected_data(
        review_wf: Path, db: Path, tmp_path: Path) -> None:
    first = stepwell("run", review_wf, "-i", '{"amount": 100}', "--db", db)
    assert first.returncode == 3, first.stderr
    assert "awaiting_review" in first.stdout and "stepwell reviews list" in first.stdout
    listed = invoke("reviews", "list", "--status", "pending", "--db", db)
    assert listed.exit_code == 0 and '{"amount": 100}' in listed.stdout
    [review] = json.loads(invoke("reviews", "list", "--db", db, "--json").stdout)["data"]
    assert (review["status"], review["step_id"]) == ("pending", "gate")

    fix = tmp_path / "fix.json"
    fix.write_text('{"amount": 90}')
    second = stepwell("reviews", "approve", review["id"], "--data", f"@{fix}", "--db", db,
                      "--json")
    assert second.returncode == 0, second.stderr
    run = json.loads(second.stdout)
    assert run["id"] == review["run_id"] and run["lifecycle"]["status"] == "completed"
    assert run["outputs"]["done"]["input-json-0"]["data"] == {"booked": 90}
    book = step(db, run["id"], "book")
    assert book["handle_inputs"]["input-json-0"]["data"] == {"amount": 90}
    [decided] = json.loads(invoke("reviews", "list", "--db", db, "--json").stdout)["data"]
    assert (decided["status"], decided["decision_data"]) == ("approved", {"data": {"amount": 90}})

    # the same decision again is accepted once: exit 0, nothing changes
    before = dump(db)
    again = invoke("reviews", "approve", review["id"], "--data", '{"amount": 90}', "--db", db)
    assert again.exit_code == 0, again.stderr
    assert "already approved" in again.stdout and "nothing changed" in again.stdout
    assert dump(db) == before


def test_reject_skips_downstream_and_the_run_completes(review_wf: Path, db: Path) -> None:
    run_id, review_id = waiting_run(review_wf, db)
    result = invoke("reviews", "reject", review_id, "--reason", "wrong supplier", "--db", db)
    assert result.exit_code == 0, result.stderr
    assert "completed" in result.stdout
    book = step(db, run_id, "book")
    assert book["lifecycle"] == {**book["lifecycle"], "status": "skipped",
                                 "reason": "review_rejected: gate"}
    rejected = json.loads(invoke("reviews", "list", "--status", "rejected", "--db", db,
                                 "--json").stdout)["data"]
    assert [(r["id"], r["reason"]) for r in rejected] == [(review_id, "wrong supplier")]
    assert invoke("reviews", "list", "--status", "pending", "--db", db).stdout.strip() \
        == "No reviews match."


def test_approve_without_data_passes_the_proposal_on(review_wf: Path, db: Path) -> None:
    _, review_id = waiting_run(review_wf, db, amount=7)
    result = invoke("reviews", "approve", review_id, "--db", db, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["outputs"]["done"]["input-json-0"]["data"] == {"booked": 7}


def test_resuming_a_waiting_run_without_a_decision_waits_again(review_wf: Path,
                                                              db: Path) -> None:
    run_id, _ = waiting_run(review_wf, db)
    result = invoke("runs", "resume", run_id, "--db", db)
    assert result.exit_code == 3, result.stderr
    assert query(db, "SELECT status FROM runs WHERE id = ?", run_id) == [("awaiting_review",)]
    assert query(db, "SELECT count(*) FROM reviews") == [(1,)]


def test_bad_data_is_refused_before_anything_is_decided(review_wf: Path, db: Path,
                                                       tmp_path: Path) -> None:
    _, review_id = waiting_run(review_wf, db)
    before = dump(db)
    for data, message in (("{amount: 90}", "not valid JSON"),
                          (f"@{tmp_path / 'missing.json'}", "no such file")):
        result = invoke("reviews", "approve", review_id, "--data", data, "--db", db)
        assert result.exit_code == 2 and message in result.stderr
    assert invoke("reviews", "list", "--status", "maybe", "--db", db).exit_code == 2
    assert dump(db) == before


# --------------------------------------------------------------------------- bad input


def finished(review_wf: Path, db: Path) -> tuple[str, str]:
    """A run whose review was approved (run completed); returns (run id, review id)."""
    run_id, review_id = waiting_run(review_wf, db)
    assert invoke("reviews", "approve", review_id, "--db", db).exit_code == 0
    return run_id, review_id


@pytest.fixture(scope="module")
def finished_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """One finished review run, made once and copied by each test that needs it."""
    folder = tmp_path_factory.mktemp("finished")
    workflow = folder / "review.yaml"
    workflow.write_text(REVIEW_YAML)
    run_id, review_id = finished(workflow, folder / "durable.db")
    return folder / "durable.db", run_id, review_id


def copy_db(template: Path, db: Path) -> None:
    """Copy a closed database (and its WAL, if any) to ``db``."""
    for suffix in ("", "-wal"):
        source = Path(f"{template}{suffix}")
        if source.exists():
            shutil.copyfile(source, f"{db}{suffix}")


@pytest.mark.parametrize(("command", "message"), [
    (("runs", "resume", "{run}"), "already ended completed; there is nothing to resume"),
    (("runs", "cancel", "{run}"), "already ended completed; there is nothing to cancel"),
    (("reviews", "approve", "rev_0000000000"), "No review 'rev_0000000000'"),
    (("reviews", "reject", "{review}", "--reason", "no"),
     "was already approved; it cannot now be rejected"),
    (("reviews", "approve", "{review}", "--data", '{"amount": 1}'),
     "it cannot now be approved with other data"),
    (("runs", "resume", "run_missing"), "run_missing"),
    (("runs", "rerun", "{run}", "--from", "nope"), "is not a step of run"),
])
def test_refusals_exit_2_and_change_nothing(finished_template: tuple[Path, str, str], db: Path,
                                           command: tuple[str, ...], message: str) -> None:
    template, run_id, review_id = finished_template
    copy_db(template, db)
    before = dump(db)
    args = [a.replace("{run}", run_id).replace("{review}", review_id) for a in command]
    result = invoke(*args, "--db", db)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert message in " ".join(result.stderr.split()), result.stderr
    assert "Traceback" not in result.stderr
    assert dump(db) == before


def test_decision_on_a_cancelled_run_is_refused(review_wf: Path, db: Path) -> None:
    run_id, review_id = waiting_run(review_wf, db)
    assert invoke("runs", "cancel", run_id, "--db", db).exit_code == 0
    before = dump(db)
    result = invoke("reviews", "approve", review_id, "--db", db)
    assert result.exit_code == 2
    assert "already ended cancelled" in " ".join(result.stderr.split())
    assert dump(db) == before


# --------------------------------------------------------------------------- cancel


def test_cancel_a_waiting_run(review_wf: Path, db: Path) -> None:
    run_id, _ = waiting_run(review_wf, db)
    result = invoke("runs", "cancel", run_id, "--reason", "duplicate invoice", "--db", db)
    assert result.exit_code == 0, result.stderr
    assert "cancelled (no live process owned it)" in result.stdout
    assert query(db, "SELECT status, reason FROM runs WHERE id = ?", run_id) == [
        ("cancelled", "duplicate invoice")]
    assert dict(query(db, "SELECT step_id, status FROM steps WHERE run_id = ?", run_id)) == {
        "invoice": "completed", "gate": "cancelled", "book": "cancelled", "done": "cancelled"}


def wait_for(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def owned_run(db: Path, proc: subprocess.Popen[str]) -> str:
    """The run id once ``proc`` runs the ``slow`` step."""
    rows: list[tuple[Any, ...]] = []

    def running() -> bool:
        nonlocal rows
        assert proc.poll() is None, proc.communicate()
        if not db.exists():
            return False
        try:
            rows = query(db, "SELECT run_id FROM steps WHERE step_id = 'slow' AND "
                         "status = 'running'")
        except sqlite3.OperationalError:
            return False
        return bool(rows)

    wait_for(running)
    return str(rows[0][0])


def start_slow(slow_wf: Path, db: Path, seconds: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [console_script(), "run", slow_wf, "-i", '{"x": 1}', "--db", str(db), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=child_env(STEPWELL_SLOW_S=seconds))


def test_a_live_run_cannot_be_resumed_elsewhere_but_can_be_cancelled(slow_wf: Path,
                                                                     db: Path) -> None:
    proc = start_slow(slow_wf, db, "60")
    try:
        run_id = owned_run(db, proc)
        before = dump(db)
        refused = invoke("runs", "resume", run_id, "--db", db)
        assert refused.exit_code == 2
        assert f"being executed by process {proc.pid}" in " ".join(refused.stderr.split())
        assert dump(db) == before

        asked = time.monotonic()
        result = invoke("runs", "cancel", run_id, "--db", db)
        assert result.exit_code == 0, result.stderr
        assert f"{run_id} stopped: cancelled" in result.stdout
        assert time.monotonic() - asked < 3
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 1, err
    assert json.loads(out)["lifecycle"]["status"] == "cancelled"
    assert query(db, "SELECT status, reason FROM steps WHERE run_id = ? AND step_id = 'slow'",
                 run_id) == [("cancelled", "cancelled by request")]


# --------------------------------------------------------------------------- resume


def test_a_scratch_run_killed_keeps_its_commits_and_resumes(slow_wf: Path, db: Path,
                                                            tmp_path: Path) -> None:
    """``--durability scratch`` skips fsync, not commits: SIGKILL loses no transition."""
    side = tmp_path / "side.txt"
    proc = subprocess.Popen(
        [console_script(), "run", slow_wf, "-i", '{"x": 1}', "--db", str(db), "--json",
         "--durability", "scratch"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=child_env(STEPWELL_SLOW_S="60", STEPWELL_SIDE_FILE=str(side)))
    run_id = owned_run(db, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert query(db, "SELECT step_id, status FROM steps WHERE run_id = ? AND step_id IN "
                 "('first', 'slow') ORDER BY seq", run_id) == [("first", "completed"),
                                                               ("slow", "running")]
    resumed = stepwell("runs", "resume", run_id, "--db", db, "--json",
                       STEPWELL_SLOW_S="0", STEPWELL_SIDE_FILE=str(side))
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["lifecycle"]["status"] == "completed"
    assert side.read_text().split() == ["first"]  # completed before the kill: not again


def test_a_killed_run_is_listed_as_ownerless_then_resumed(slow_wf: Path, db: Path,
                                                          tmp_path: Path) -> None:
    side = tmp_path / "side.txt"
    proc = subprocess.Popen(
        [console_script(), "run", slow_wf, "-i", '{"x": 1}', "--db", str(db), "--json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=child_env(STEPWELL_SLOW_S="60", STEPWELL_SIDE_FILE=str(side)))
    run_id = owned_run(db, proc)
    alive = invoke("runs", "list", "--status", "running", "--db", db, "--json")
    [live] = json.loads(alive.stdout)["data"]
    assert live["owner"] == {**live["owner"], "pid": proc.pid, "alive": True}
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    table = invoke("runs", "list", "--status", "running", "--db", db)
    assert table.exit_code == 0, table.stderr
    assert run_id in table.stdout and f"owner died (pid {proc.pid}" in table.stdout
    assert f"stepwell runs resume {run_id}" in table.stdout
    frozen = json.loads(invoke("runs", "list", "--db", db, "--json").stdout)["data"][0]
    first = run_duration_ms(frozen)
    time.sleep(0.3)
    assert run_duration_ms(frozen) == first  # the duration stops at the last heartbeat
    [dead] = json.loads(invoke("runs", "list", "--status", "running", "--db", db,
                               "--json").stdout)["data"]
    assert dead["owner"]["alive"] is False and dead["owner"]["heartbeat_at"]

    resumed = stepwell("runs", "resume", run_id, "--db", db, "--json",
                       STEPWELL_SLOW_S="0", STEPWELL_SIDE_FILE=str(side))
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["lifecycle"]["status"] == "completed"
    assert side.read_text().split() == ["first"]  # completed before the kill: not again
    assert invoke("runs", "list", "--status", "running", "--db", db).stdout.strip() \
        == "No runs match."
    finished_run = json.loads(invoke("runs", "list", "--db", db, "--json").stdout)["data"][0]
    assert finished_run["owner"]["alive"] is None  # a finished run needs no process


# --------------------------------------------------------------------------- rerun


def test_rerun_from_a_step_with_a_new_input_and_an_edited_workflow(
        review_wf: Path, db: Path, tmp_path: Path) -> None:
    run_id, _ = finished(review_wf, db)
    again = invoke("runs", "rerun", run_id, "--from", "book", "--db", db, "--json")
    assert again.exit_code == 0, again.stderr
    rerun = json.loads(again.stdout)
    assert rerun["id"] != run_id and rerun["trigger"]["parent_run_id"] == run_id
    assert rerun["outputs"]["done"]["input-json-0"]["data"] == {"booked": 100}

    edited = tmp_path / "edited.yaml"
    edited.write_text(REVIEW_YAML.replace("check the amount", "check twice"))
    before = dump(db)
    refused = invoke("runs", "rerun", run_id, "--from", "book", "--workflow", edited,
                     "--db", db)
    assert refused.exit_code == 2
    assert "changed upstream of 'book' (blocks gate)" in " ".join(refused.stderr.split())
    assert dump(db) == before

    downstream = tmp_path / "downstream.yaml"
    downstream.write_text(REVIEW_YAML.replace('{"booked": data.amount}',
                                              '{"booked": data.amount * 2}'))
    changed = invoke("runs", "rerun", run_id, "--from", "book", "--workflow", downstream,
                     "--db", db, "--json")
    assert changed.exit_code == 0, changed.stderr
    assert json.loads(changed.stdout)["outputs"]["done"]["input-json-0"]["data"] == {
        "booked": 200}

    fresh = invoke("runs", "rerun", run_id, "--from", "gate", "-i", '{"amount": 5}',
                   "--db", db, "--json")
    assert fresh.exit_code == 3, fresh.stderr  # the gate reruns, so it waits again
    assert json.loads(fresh.stdout)["lifecycle"]["waiting_for_block_ids"] == ["gate"]


# --------------------------------------------------------------------------- queued runs


def test_a_queued_run_is_listed_as_waiting_for_a_worker_not_as_an_orphan(
        review_wf: Path, db: Path) -> None:
    from engine.cli_watch import run_state

    queued = invoke("run", review_wf, "-i", '{"amount": 1}', "--db", db, "--detach", "--json")
    assert queued.exit_code == 0, queued.stderr
    run_id = json.loads(queued.stdout)["run_id"]
    table = invoke("runs", "list", "--db", db)
    assert table.exit_code == 0, table.stderr
    assert "queued for a worker" in table.stdout
    assert "owner died" not in table.stdout and "lost their process" not in table.stdout
    [run] = json.loads(invoke("runs", "list", "--db", db, "--json").stdout)["data"]
    assert run["id"] == run_id
    assert run["owner"] == {**run["owner"], "pid": None, "alive": None, "queued": True}
    assert run_state(run) == "going"
    detail = invoke("runs", "get", run_id, "--db", db)
    assert "queued for a worker" in detail.stdout and "owner died" not in detail.stdout
