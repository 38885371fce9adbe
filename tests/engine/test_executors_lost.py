"""A Dask scheduler lost in the middle of a run (``kill -9``), with real processes.

A lost executor is not a step failure: no retry is spent, ``stepwell run`` ends with one
line naming the scheduler (exit 2) and leaves the run resumable, and ``stepwell worker``
hands its runs back to the queue and exits with one line.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.definition import Workflow

pytest.importorskip("distributed")

CODE = "def transform(data):\n    import time\n    time.sleep(60)\n    return {'ok': 1}\n"


def _stepwell() -> str:
    script = Path(sys.executable).with_name("stepwell")
    if not script.exists():
        pytest.skip("the stepwell console script is not installed (pip install -e .)")
    return str(script)


def _fan(path: Path) -> Path:
    workflow = (Workflow.builder("fe")
                .block("start", "start_json")
                .block("each", "for_each", config={"map_method": "iterate_array",
                                                   "map_source_path": "items",
                                                   "max_concurrency": 8})
                .block("work", "function", parent="each",
                       config={"code": CODE, "output_schema": {"type": "object"}})
                .block("done", "end")
                .edge("start", "each", target_handle="fe-left-in")
                .edge("each", "work", source_handle="fe-left-out")
                .edge("work", "each", target_handle="fe-right-in")
                .edge("each", "done", source_handle="fe-right-out")
                .build())
    path.write_text(json.dumps(workflow.to_dict()))
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """``dask scheduler`` and two ``dask worker`` processes on a free port."""

    def __init__(self, tmp: Path) -> None:
        dask = str(Path(sys.executable).with_name("dask"))
        if not Path(dask).exists():
            pytest.skip("the dask console script is not installed")
        self.port = _free_port()
        self.log = tmp / "scheduler.log"
        with self.log.open("wb") as out:
            self.scheduler = subprocess.Popen(
                [dask, "scheduler", "--port", str(self.port), "--no-dashboard"],
                stdout=out, stderr=subprocess.STDOUT)
        self.workers = [subprocess.Popen(
            [dask, "worker", f"127.0.0.1:{self.port}", "--nthreads", "4", "--no-dashboard"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
        _wait(lambda: self.log.read_text().count("Register worker") >= 2, 60)

    def kill_scheduler(self) -> None:
        self.scheduler.send_signal(signal.SIGKILL)
        self.scheduler.wait()

    def stop(self) -> None:
        for proc in (self.scheduler, *self.workers):
            if proc.poll() is None:
                proc.kill()
            proc.wait()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    made = Cluster(tmp_path)
    try:
        yield made
    finally:
        made.stop()


def _wait(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    if not db.exists():
        return []
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:  # not laid out yet
        return []
    finally:
        conn.close()


def _work_steps(db: Path) -> list[tuple[object, ...]]:
    return _rows(db, "SELECT status, retry_count FROM steps WHERE block_id = 'work'")


def _lose_scheduler_mid_run(cluster: Cluster, db: Path, args: list[str],
                            tmp: Path) -> subprocess.CompletedProcess[str]:
    """Start ``stepwell ARGS``, kill the scheduler once the 4 items are in flight."""
    proc = subprocess.Popen([_stepwell(), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp,
                            env={**os.environ, "COLUMNS": "300"})
    try:
        _wait(lambda: [s for s, _ in _work_steps(db) if s == "running"].__len__() == 4, 90)
        time.sleep(1.0)
        cluster.kill_scheduler()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def test_run_stops_in_one_line_without_spending_retries(cluster: Cluster,
                                                        tmp_path: Path) -> None:
    db = tmp_path / "fe.db"
    executor = f"dask://127.0.0.1:{cluster.port}"
    done = _lose_scheduler_mid_run(
        cluster, db, ["run", str(_fan(tmp_path / "fe.json")), "-i",
                      '{"items": [1, 2, 3, 4]}', "--db", str(db), "--executor", executor],
        tmp_path)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.strip()
              and not line.startswith("Running fe as")]
    assert len(errors) == 1, done.stderr
    assert f"Lost the Dask scheduler at tcp://127.0.0.1:{cluster.port}" in errors[0]
    assert "stepwell runs resume run_" in errors[0]
    assert _rows(db, "SELECT status FROM runs") == [("running",)]  # resumable
    assert {retries for _, retries in _work_steps(db)} == {0}


def test_worker_hands_its_runs_back_and_exits_in_one_line(cluster: Cluster,
                                                          tmp_path: Path) -> None:
    db = tmp_path / "fe.db"
    queued = subprocess.run([_stepwell(), "run", str(_fan(tmp_path / "fe.json")), "-i",
                             '{"items": [1, 2, 3, 4]}', "--db", str(db), "--detach"],
                            capture_output=True, text=True, check=False, cwd=tmp_path)
    assert queued.returncode == 0, queued.stderr
    done = _lose_scheduler_mid_run(
        cluster, db, ["worker", "--db", str(db), "--executor",
                      f"dask://127.0.0.1:{cluster.port}"], tmp_path)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 2 and lines[0].startswith("stepwell worker on"), done.stderr
    assert "Lost the Dask scheduler" in lines[1] and "handed its 1 unfinished run" in lines[1]
    assert _rows(db, "SELECT status, owner_pid FROM runs") == [("running", None)]
    assert {retries for _, retries in _work_steps(db)} == {0}
