"""A cancel reaches ``cancelled`` within two seconds even when a step holds the driver.

A synchronous in-process function cannot be interrupted: the runner's heartbeat thread
cancels the run in the store when the driver does not take the request in hand, and
whatever the driver does once the step returns is dropped.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from engine import Engine, Workflow
from engine.contracts.errors import NotFoundError
from engine.core import RunResult
from tests.engine.security_server import python_workflow

SPIN = Workflow.from_yaml(python_workflow("tests.engine.security_targets:spin"))


def test_a_step_that_holds_the_loop_is_abandoned(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "c.db")
    results: list[RunResult] = []
    worker = threading.Thread(target=lambda: results.append(
        engine.run(SPIN, {"data": {"seconds": 6}}, run_id="run_spin")))
    worker.start()
    deadline = time.monotonic() + 20
    while _status(engine) != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    started = time.monotonic()
    assert engine.cancel("run_spin", reason="stop it") is False  # its owner is alive
    while engine.store.load_run("run_spin").status.value != "cancelled":
        assert time.monotonic() - started < 2.5
        time.sleep(0.05)
    steps = {s.step_id: s.status.value for s in engine.store.load_steps("run_spin")}
    assert steps["work"] == "cancelled"
    worker.join(timeout=30)
    assert results and results[0].status.value == "cancelled"
    assert engine.store.load_run("run_spin").status.value == "cancelled"
    assert {s.status.value for s in engine.store.load_steps("run_spin")} <= {
        "completed", "cancelled"}
    engine.close()


def _status(engine: Engine) -> str | None:
    try:
        return engine.store.load_run("run_spin").status.value
    except NotFoundError:  # not created yet
        return None
