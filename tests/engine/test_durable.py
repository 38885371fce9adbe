"""Durable runs: retries, human review, cancellation, resume and rerun (real SQLite)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from engine import Engine, RetryPolicy, Workflow
from engine.contracts.errors import ConflictError, NotFoundError, UsageError
from engine.contracts.values import RunStatus
from tests.engine import durable_targets
from tests.postgres import pg_url  # noqa: F401 - a fixture

T = "tests.engine.durable_targets"
ANY = {"type": "object"}
FAST = RetryPolicy(max_attempts=3, initial_interval_s=0.01, backoff=1.0, jitter=0)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "durable.db"


def one_step(target: str, **config: object) -> Workflow:
    return (Workflow.builder("one").block("start", "start_json")
            .block("work", "function", config={"python": f"{T}:{target}",
                                               "output_schema": ANY, **config})
            .edge("start", "work").build())


def moves(db: Path, run_id: str, step_id: str) -> list[tuple[str, int]]:
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT status, retry_count FROM transitions WHERE run_id = ? AND "
                        "step_id = ? ORDER BY seq", (run_id, step_id)).fetchall()
    conn.close()
    return rows


def trail(db: Path, run_id: str, step_id: str) -> list[tuple[str, int, Any]]:
    """(status, retry_count, detail) of every transition of a step, oldest first."""
    with Engine(db) as engine:
        return [(t["status"], t["retry_count"], t["detail"])
                for t in engine.store.transitions(run_id, step_id)]


@pytest.mark.parametrize(("target", "messages", "code"), [
    ("flaky", ["upstream busy (call 1)", "upstream busy (call 2)"], "BUSY"),
    ("flaky_async", ["socket reset (call 1)", "socket reset (call 2)"], "RESET"),
])
def test_flaky_function_is_retried_then_completes(db: Path, target: str, messages: list[str],
                                                  code: str) -> None:
    durable_targets.CALLS.clear()
    with Engine(db, retry=FAST) as engine:
        result = engine.run(one_step(target), {"start": {}})
        assert result.ok, result.error
        step = engine.client.workflows.steps.get("work", run_id=result.run_id)
        assert step.retry_count == 2
        assert step.lifecycle.status == "completed"
        assert step.handle_outputs["output-json-0"].data == {"calls": 3}
    assert durable_targets.CALLS[target] == 3
    assert moves(db, result.run_id, "work") == [
        ("pending", 0), ("queued", 0), ("running", 0), ("queued", 1), ("running", 1),
        ("queued", 2), ("running", 2), ("completed", 2)]
    # every failed attempt's error is kept on the transition that retried it
    errors = [(n, d["error"]) for _, n, d in trail(db, result.run_id, "work") if d]
    assert [(n, e["message"], e["category"], e["details"]["error_code"])
            for n, e in errors] == [(1, messages[0], "transient", code),
                                    (2, messages[1], "transient", code)]
    assert all(e["details"]["stack_trace"] for _, e in errors)


def test_permanent_error_is_not_retried(db: Path) -> None:
    durable_targets.CALLS.clear()
    with Engine(db, retry=FAST) as engine:
        result = engine.run(one_step("broken"), {"start": {}})
        step = engine.client.workflows.steps.get("work", run_id=result.run_id)
    assert result.status is RunStatus.ERROR and result.failing_step_id == "work"
    assert "the ledger rejected the entry" in (result.error or "")
    assert durable_targets.CALLS["broken"] == 1
    assert step.retry_count == 0
    [*_, (status, retries, detail)] = trail(db, result.run_id, "work")
    assert moves(db, result.run_id, "work") == [
        ("pending", 0), ("queued", 0), ("running", 0), ("error", 0)]
    assert (status, retries, detail["error"]["category"],
            detail["error"]["details"]["error_code"]) == ("error", 0, "permanent",
                                                          "LEDGER_REJECTED")


def test_quota_error_waits_for_retry_after(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    durable_targets.CALLS.clear()
    monkeypatch.setenv("STEPWELL_RETRY_AFTER", "0.3")
    with Engine(db, retry=FAST) as engine:  # FAST alone would wait 0.01 s
        result = engine.run(one_step("rate_limited"), {"start": {}})
    assert result.ok, result.error
    steps = trail(db, result.run_id, "work")
    [(_, _, detail)] = [t for t in steps if t[2]]
    assert detail["error"]["category"] == "quota"
    with sqlite3.connect(db) as conn:
        at = dict(conn.execute(
            "SELECT status || retry_count, at FROM transitions WHERE run_id = ? AND "
            "step_id = 'work'", (result.run_id,)).fetchall())
    assert at["running1"] - at["queued1"] >= 0.3


def test_retry_policy_in_config_overrides_the_default(db: Path) -> None:
    durable_targets.CALLS.clear()
    with Engine(db, retry=FAST) as engine:
        result = engine.run(one_step("flaky", retry={"max_attempts": 2}), {"start": {}})
    assert result.status is RunStatus.ERROR
    assert durable_targets.CALLS["flaky"] == 2


def review_workflow() -> Workflow:
    return (Workflow.builder("review")
            .block("start", "start_json")
            .block("gate", "hil", config={"instructions": "check the amount"})
            .block("book", "function", config={"output_schema": ANY, "code": textwrap.dedent("""
                def transform(data):
                    return {"booked": data.amount}
                """)})
            .edge("start", "gate", target_handle="input-json-0")
            .edge("gate", "book", source_handle="output-json-0")
            .build())


def test_review_waits_then_approval_with_corrected_data_resumes(db: Path) -> None:
    with Engine(db) as engine:
        waiting = engine.run(review_workflow(), {"start": {"amount": 100}})
    assert waiting.status is RunStatus.AWAITING_REVIEW
    assert waiting.waiting_for == ["gate"]
    with Engine(db) as other:  # a second engine, as another process would
        [review] = other.store.reviews(run_id=waiting.run_id)
        assert review.status == "pending" and review.step_id == "gate"
        done = other.decide(review.id, approved=True, data={"amount": 90}, has_data=True)
        assert done is not None and done.ok, done
        book = other.client.workflows.steps.get("book", run_id=waiting.run_id)
        assert book.handle_outputs["output-json-0"].data == {"booked": 90}
        gate = other.client.workflows.steps.get("gate", run_id=waiting.run_id)
        assert gate.lifecycle.status == "completed"
        # the same decision again is accepted once and changes nothing
        assert other.decide(review.id, approved=True, data={"amount": 90}, has_data=True) is None
        with pytest.raises(ConflictError):
            other.decide(review.id, approved=False, reason="changed my mind")


def test_rejection_skips_downstream_and_run_completes(db: Path) -> None:
    with Engine(db) as engine:
        waiting = engine.run(review_workflow(), {"start": {"amount": 100}})
        [review] = engine.store.reviews(run_id=waiting.run_id)
        done = engine.decide(review.id, approved=False, reason="wrong supplier")
        assert done is not None and done.status is RunStatus.COMPLETED
        book = engine.client.workflows.steps.get("book", run_id=waiting.run_id)
        assert book.lifecycle.reason == "review_rejected: gate"
        gate = engine.client.workflows.steps.get("gate", run_id=waiting.run_id)
        assert gate.lifecycle.status == "cancelled"


def test_unknown_review_and_finished_runs_are_refused(db: Path) -> None:
    with Engine(db) as engine:
        result = engine.run(one_step("record"), {"start": {}})
        with pytest.raises(NotFoundError):
            engine.decide("rev_missing", approved=True)
        with pytest.raises(UsageError, match="already ended completed"):
            engine.resume(result.run_id)
        with pytest.raises(UsageError, match="already ended"):
            engine.cancel(result.run_id)
        assert engine.store.load_run(result.run_id).status is RunStatus.COMPLETED


def test_cancel_from_another_process_stops_the_run(db: Path, tmp_path: Path) -> None:
    script = tmp_path / "long.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path.cwd())!r})
        from engine import Engine, Workflow
        wf = (Workflow.builder("long").block("start", "start_json")
              .block("slow", "function", config={{"python": "{T}:slow",
                                                 "output_schema": {{"type": "object"}}}})
              .edge("start", "slow").build())
        with Engine({str(db)!r}) as e:
            r = e.run(wf, {{"start": {{}}}}, run_id="run_cancel_me")
            print(r.status.value, flush=True)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 20
    with Engine(db) as engine:
        while time.time() < deadline:
            try:
                if engine.store.load_run("run_cancel_me").status is RunStatus.RUNNING:
                    break
            except (NotFoundError, sqlite3.Error):
                pass
            time.sleep(0.05)
        asked = time.time()
        assert engine.cancel("run_cancel_me") is False  # the live owner does it
        out, _ = proc.communicate(timeout=20)
        took = time.time() - asked
        assert out.strip() == "cancelled"
        assert took < 3.0
        slow = engine.client.workflows.steps.get("slow", run_id="run_cancel_me")
        assert slow.lifecycle.status == "cancelled"
        assert slow.lifecycle.reason == "cancelled by request"


def test_cancel_of_a_waiting_run_is_done_by_the_caller(db: Path) -> None:
    with Engine(db) as engine:
        waiting = engine.run(review_workflow(), {"start": {"amount": 1}})
        assert engine.cancel(waiting.run_id) is True
        run = engine.client.workflows.runs.get(waiting.run_id)
        assert run.lifecycle.status == "cancelled"
        gate = engine.client.workflows.steps.get("gate", run_id=waiting.run_id)
        assert gate.lifecycle.status == "cancelled"


def test_rerun_reuses_upstream_outputs(db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    side = tmp_path / "side.txt"
    monkeypatch.setenv("STEPWELL_SIDE_FILE", str(side))
    wf = (Workflow.builder("chain").block("start", "start_json")
          .block("a", "function", config={"python": f"{T}:record", "output_schema": ANY})
          .block("b", "function", config={"python": f"{T}:record", "output_schema": ANY})
          .edge("start", "a").edge("a", "b").build())
    with Engine(db) as engine:
        first = engine.run(wf, {"start": {"x": 1}})
        assert side.read_text().split() == ["a", "b"]
        again = engine.rerun(first.run_id, "b")
        assert again.ok and again.run_id != first.run_id
        assert side.read_text().split() == ["a", "b", "b"]
        steps = {s.step_id: s for s in engine.client.workflows.steps.list(again.run_id).data}
        assert steps["a"].handle_outputs["output-json-0"].data == {"x": 1}
        with pytest.raises(UsageError, match="top-level step"):
            engine.rerun(first.run_id, "nope")
        changed = (Workflow.builder("chain").block("start", "start_json")
                   .block("a", "function", config={"python": f"{T}:flaky", "output_schema": ANY})
                   .block("b", "function", config={"python": f"{T}:record", "output_schema": ANY})
                   .edge("start", "a").edge("a", "b").build())
        with pytest.raises(UsageError, match="changed upstream"):
            engine.rerun(first.run_id, "b", workflow=changed)


def test_resume_reruns_the_in_flight_step_as_a_retry(db: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    side = tmp_path / "side.txt"
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path.cwd())!r})
        from engine import Engine, Workflow
        wf = (Workflow.builder("killed").block("start", "start_json")
              .block("a", "function", config={{"python": "{T}:record",
                                              "output_schema": {{"type": "object"}}}})
              .block("slow", "function", config={{"python": "{T}:slow",
                                                 "output_schema": {{"type": "object"}}}})
              .edge("start", "a").edge("a", "slow").build())
        with Engine({str(db)!r}) as e:
            e.run(wf, {{"start": {{"x": 1}}}}, run_id="run_killed")
    """))
    env = {**os.environ, "STEPWELL_SIDE_FILE": str(side), "STEPWELL_SLOW_S": "60"}
    proc = subprocess.Popen([sys.executable, str(script)], env=env)
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if ("running", 0) in moves(db, "run_killed", "slow"):
                    break
            except sqlite3.OperationalError:
                pass  # the database is still being created
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait()
    monkeypatch.setenv("STEPWELL_SIDE_FILE", str(side))
    monkeypatch.setenv("STEPWELL_SLOW_S", "0")
    with Engine(db) as engine:
        assert engine.store.load_run("run_killed").status is RunStatus.RUNNING
        result = engine.resume("run_killed")
        assert result.ok, result.error
        slow = engine.client.workflows.steps.get("slow", run_id="run_killed")
    assert slow.retry_count == 1
    assert moves(db, "run_killed", "slow") == [
        ("pending", 0), ("queued", 0), ("running", 0),  # the killed process
        ("queued", 1), ("running", 1), ("completed", 1)]  # the resume: one more attempt
    assert moves(db, "run_killed", "a")[-1] == ("completed", 0)
    assert side.read_text().split() == ["a"]  # completed before the kill: not run again


def test_of_two_processes_resuming_a_run_one_wins(db: Path) -> None:
    with Engine(db) as engine:
        waiting = engine.run(review_workflow(), {"start": {"amount": 1}})
        seen = engine.store.load_run(waiting.run_id)
        # both read the same owner row; the first claim wins, the second sees it changed
        store = engine.store
        assert store.claim_owner(seen.run_id, 111, time.time(), seen_pid=seen.owner_pid,
                                 seen_heartbeat=seen.heartbeat_at)
        assert not store.claim_owner(seen.run_id, 222, time.time(), seen_pid=seen.owner_pid,
                                     seen_heartbeat=seen.heartbeat_at)
        assert store.load_run(seen.run_id).owner_pid == 111


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_text_people_and_steps_write_is_stored_on_any_store(
        backend: str, db: Path, request: pytest.FixtureRequest) -> None:
    # a NUL (PostgreSQL's text holds none) and a lone surrogate (UTF-8 holds none) in a
    # rejection's reason and in what a step prints: stored as text, never a failed commit
    where = str(db) if backend == "sqlite" else request.getfixturevalue("pg_url")
    with Engine(where) as engine:
        waiting = engine.run(review_workflow(), {"start": {"amount": 100}})
        [review] = engine.store.reviews(run_id=waiting.run_id)
        done = engine.decide(review.id, approved=False,
                             reason="wrong\x00 supplier \ud83e\n" + "x" * 3000)
        assert done is not None and done.status is RunStatus.COMPLETED
        reason = engine.store.review(review.id).reason
        assert reason is not None and reason.startswith("wrong supplier \ufffd\n")
        assert len(reason) == 2000
        printed = engine.run(one_step("prints_nul"), {"start": {}})
        assert printed.ok, printed.error
        logs = engine.client.workflows.steps.logs("work", run_id=printed.run_id)
        assert [e.message for e in logs.data] == ["a\ufffdb \ufffd"]
