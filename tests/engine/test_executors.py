"""The Dask executor, on a real ``distributed.LocalCluster`` with two worker processes.

Work blocks run in the cluster's processes, the driver persists their results exactly as
a local run does, for_each items spread over both workers, and a worker killed in the
middle of an attempt makes that step fail transiently and retry.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.contracts.errors import UsageError
from engine.core import Engine
from engine.executors import DaskExecutor, parse_executor, sends
from engine.testing import INSTANT_RETRY
from tests.engine import crash_targets, executor_targets

ROOT = Path(__file__).resolve().parents[2]
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local cluster of two worker processes; a lost worker's task is not re-run by
    Dask (``allowed-failures: 0``), so the loss reaches stepwell's retry policy."""
    import dask

    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    os.environ["PYTHONPATH"] = path  # the workers import the test targets
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        local = distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True,
                                         dashboard_address=None)
        try:
            yield local.scheduler_address
        finally:
            local.close()


def test_parse_executor() -> None:
    assert parse_executor(None) is None and parse_executor("local") is None
    dask_executor = parse_executor("dask://10.0.0.5:8786")
    assert isinstance(dask_executor, DaskExecutor)
    assert dask_executor.address == "tcp://10.0.0.5:8786"
    assert parse_executor("dask+tls://h:1").address == "tls://h:1"  # type: ignore[union-attr]
    with pytest.raises(UsageError, match="not an executor"):
        parse_executor("ray://h:1")
    assert parse_executor("dask://h").address == "tcp://h"  # type: ignore[union-attr]
    for bad in ("abc", "0", "70000", ""):
        with pytest.raises(UsageError, match=f"port '{bad}'"):
            parse_executor(f"dask://127.0.0.1:{bad}")


def test_only_work_blocks_are_sent(tmp_path: Path) -> None:
    with Engine(tmp_path / "x.db") as engine:
        graph = engine.compile(crash_targets.build_workflow())
    sent = sorted(n.id for n in graph.nodes.values() if sends(n))
    assert sent == ["big", "bump", "high", "low", "prep", "small", "summary", "tag"]


def test_a_scheduler_that_is_down_is_one_clear_error() -> None:
    executor = DaskExecutor("tcp://127.0.0.1:1")
    with pytest.raises(UsageError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:1"):
        executor.connect()


def test_runs_on_the_cluster_like_a_local_run(cluster: str, tmp_path: Path) -> None:
    workflow = executor_targets.fan(12)
    inputs = {"start": {"items": [{"n": i} for i in range(12)]}}
    with Engine(tmp_path / "local.db") as engine:
        local = engine.run(workflow, inputs)
        assert local.status == "completed", local.error
        local_steps = _shape(local)
    executor = DaskExecutor(cluster)
    try:
        with Engine(tmp_path / "dask.db", executor=executor) as engine:
            remote = engine.run(workflow, inputs)
            assert remote.status == "completed", remote.error
            assert _shape(remote) == local_steps
    finally:
        executor.close()


def _shape(result: object) -> dict[str, tuple[str, int, object]]:
    """Each step's status, retries and outputs, without the pid that ran it."""
    out = {}
    for step in result.steps():  # type: ignore[attr-defined]
        outputs = {h: p.model_dump(mode="json") for h, p in step.handle_outputs.items()}
        text = str(outputs)
        out[step.step_id] = (step.lifecycle.status, step.retry_count,
                             None if "pid" in text else outputs)
    return out


def test_for_each_items_spread_over_the_workers(cluster: str, tmp_path: Path) -> None:
    executor = DaskExecutor(cluster)
    try:
        with Engine(tmp_path / "fan.db", executor=executor) as engine:
            result = engine.run(executor_targets.fan(40),
                                {"start": {"items": [{"n": i} for i in range(40)]}})
            assert result.status == "completed", result.error
            done = result.outputs["done"]["input-json-0"]["data"]
    finally:
        executor.close()
    assert [item["n"] for item in done] == [i * 10 for i in range(40)]
    pids = {item["pid"] for item in done}
    assert os.getpid() not in pids and len(pids) == 2


def test_a_lost_worker_fails_the_attempt_transiently(cluster: str, tmp_path: Path) -> None:
    pid_file = tmp_path / "pids.txt"
    pid_file.touch()
    executor = DaskExecutor(cluster)
    killer = threading.Thread(target=_kill_first_attempt, args=(pid_file,), daemon=True)
    killer.start()
    try:
        with Engine(tmp_path / "lost.db", executor=executor, retry=INSTANT_RETRY) as engine:
            result = engine.run(executor_targets.lone(),
                                {"start": {"pid_file": str(pid_file)}})
            trail = engine.store.transitions(result.run_id, "slow")
    finally:
        executor.close()
    assert result.status == "completed", result.error
    retried = [t for t in trail if t["status"] == "queued" and t["detail"]]
    assert len(retried) == 1
    error = retried[0]["detail"]["error"]
    assert error["category"] == "transient"
    assert error["details"]["error_code"] == "EXECUTOR_WORKER_LOST"
    assert [t["status"] for t in trail][-1] == "completed"


def _kill_first_attempt(pid_file: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in pid_file.read_text().splitlines():
            pid, attempt = line.split()
            if attempt == "0":
                time.sleep(0.2)
                os.kill(int(pid), signal.SIGKILL)
                return
        time.sleep(0.05)


def test_the_cli_refuses_a_scheduler_that_is_down(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    script = Path(sys.executable).with_name("stepwell")
    if not script.exists():
        pytest.skip("the stepwell console script is not installed (pip install -e .)")
    flow = tmp_path / "fan.json"
    flow.write_text(json.dumps(executor_targets.fan(2).to_dict()))
    db = tmp_path / "never" / "x.db"
    for args in (["run", str(flow), "-i", '{"items": [{"n": 1}]}'], ["worker"]):
        done = subprocess.run([str(script), *args, "--db", str(db), "--executor",
                               "dask://127.0.0.1:1"], capture_output=True, text=True,
                              check=False, env={**os.environ, "COLUMNS": "300"})
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "cannot reach the Dask scheduler" in lines[-1], lines
    assert not db.parent.exists()  # nothing written
