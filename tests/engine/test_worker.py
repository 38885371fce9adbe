"""Queued runs and workers: ``run --detach``, ``stepwell worker``, leases, SIGTERM, cancels
and review decisions made elsewhere, on PostgreSQL (and SQLite for several processes on
one machine). Worker processes are real ``stepwell worker`` processes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.contracts.values import RunStatus
from engine.core import Engine
from engine.queue import after_decision, enqueue, left_to_workers, requeue
from engine.worker import Worker, WorkerOptions
from tests.engine import crash_targets, worker_targets
from tests.postgres import pg_url  # noqa: F401 - a fixture

ROOT = Path(__file__).resolve().parents[2]


def stepwell() -> str:
    """The ``stepwell`` console script of this environment."""
    script = Path(sys.executable).with_name("stepwell")
    if not script.exists():
        pytest.skip("the stepwell console script is not installed (pip install -e .)")
    return str(script)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database of each backend."""
    if request.param == "sqlite":
        return str(tmp_path / "shared.db")
    return str(request.getfixturevalue("pg_url"))


def _work(engine: Engine, **options: Any) -> Any:
    """Run an in-process worker until it has been idle a moment."""
    settings = {"idle_exit_s": 0.3, "poll_s": 0.05, **options}
    return anyio.run(Worker(engine, WorkerOptions(**settings)).run)


def _side(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    side = tmp_path / "side.txt"
    monkeypatch.setenv(crash_targets.SIDE_FILE_ENV, str(side))
    return side


def _executed(side: Path) -> Counter[str]:
    return Counter(line.split()[1] for line in side.read_text().splitlines()) \
        if side.exists() else Counter()


class Workers:
    """``stepwell worker`` processes on one database, with the side file and step pause."""

    def __init__(self, db: str, side: Path, tmp: Path, sleep: float = 0.0) -> None:
        self.db, self.tmp = db, tmp
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        self.env = {**os.environ, "PYTHONPATH": path, crash_targets.SIDE_FILE_ENV: str(side),
                    worker_targets.SLEEP_ENV: str(sleep)}
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        err = (self.tmp / f"worker-{len(self.started)}.err").open("wb")
        with err:
            proc = subprocess.Popen([stepwell(), "worker", "--db", self.db, *args],
                                    stdout=subprocess.PIPE, stderr=err, env=self.env,
                                    cwd=self.tmp)
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., Workers]]:
    made: list[Workers] = []

    def make(db: str, side: Path, sleep: float = 0.0) -> Workers:
        made.append(Workers(db, side, tmp_path, sleep))
        return made[-1]

    yield make
    for item in made:
        item.stop_all()


def _wait(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _status(engine: Engine, run_id: str) -> str:
    return engine.store.read_run(run_id).status


# ------------------------------------------------------------------ in-process


def test_queued_runs_are_executed_by_a_worker(database: str) -> None:
    with Engine(database) as engine:
        ids = [enqueue(engine, worker_targets.chain(3), {"start": {"n": i}}) for i in range(6)]
        assert {_status(engine, run_id) for run_id in ids} == {"queued"}
        assert engine.store.load_steps(ids[0]) == []  # nothing ran
        stats = _work(engine, concurrency=3)
        assert (stats.claimed, stats.ended) == (6, 6)
        for i, run_id in enumerate(ids):
            run = engine.store.read_run(run_id)
            assert run.status == "completed"
            assert run.outputs == {}  # no end block: nothing reaches one
            last = engine.store.read_step("s2", run_id=run_id)
            assert last.outputs["output-json-0"]["data"] == {"n": i + 3}


def test_a_review_decided_elsewhere_queues_the_run_again(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    side = _side(tmp_path, monkeypatch)
    with Engine(pg_url) as engine:
        run_id = enqueue(engine, worker_targets.reviewed(), {"start": {"n": 2}})
        assert _work(engine).handed_back == 0
        run = engine.store.load_run(run_id)
        assert (run.status, run.owner_pid) == (RunStatus.AWAITING_REVIEW, None)
        [review] = engine.store.reviews(run_id=run_id)
    with Engine(pg_url) as elsewhere:  # another process: a CLI, a server replica
        elsewhere.record_decision(review.id, approved=True)
        assert requeue(elsewhere.store, run_id)
    with Engine(pg_url) as engine:
        assert _status(engine, run_id) == "queued"
        _work(engine)
        assert _status(engine, run_id) == "completed"
        book = engine.store.read_step("book", run_id=run_id)
        assert book.outputs["output-json-0"]["data"] == {"n": 300}
    assert _executed(side) == Counter({"s0": 1, "book": 1})


def test_a_decision_queues_a_run_left_to_workers_but_not_a_foreground_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _side(tmp_path, monkeypatch)
    with Engine(str(tmp_path / "q.db")) as engine:
        queued = enqueue(engine, worker_targets.reviewed(), {"start": {"n": 2}})
        _work(engine)
        foreground = engine.run(worker_targets.reviewed(), {"start": {"n": 3}}).run_id
        runs = {run_id: engine.store.load_run(run_id) for run_id in (queued, foreground)}
        assert left_to_workers(runs[queued]) and not left_to_workers(runs[foreground])
        assert after_decision(engine.store, runs[foreground], detach=False) is None
        said = after_decision(engine.store, runs[queued], detach=False)
        assert said is not None and f"Run {queued} is queued" in said
        assert _status(engine, queued) == "queued"
        assert _status(engine, foreground) == "awaiting_review"


def test_reviews_approve_queues_a_run_left_to_workers_instead_of_running_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`stepwell reviews approve` of a queued run: the decision queues it for the workers;
    the approving process runs nothing."""
    side = _side(tmp_path, monkeypatch)
    db = tmp_path / "q.db"
    with Engine(str(db)) as engine:
        queued = enqueue(engine, worker_targets.reviewed(), {"start": {"n": 2}})
        _work(engine)
        assert _status(engine, queued) == "awaiting_review"
    with sqlite3.connect(db) as conn:
        review = conn.execute("SELECT id FROM reviews WHERE run_id = ?", (queued,)).fetchone()[0]
    before = _executed(side)
    done = subprocess.run([stepwell(), "reviews", "approve", review, "--db", str(db)],
                          capture_output=True, text=True, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"Run {queued} is queued; a worker continues it." in done.stdout + done.stderr
    assert _executed(side) == before  # nothing ran in the approving process
    with Engine(str(db)) as engine:
        assert _status(engine, queued) == "queued"
        _work(engine)
        assert _status(engine, queued) == "completed"


# ------------------------------------------------------------------ worker processes


def test_detach_then_a_worker_process(pg_url: str, tmp_path: Path,  # noqa: F811
                                      monkeypatch: pytest.MonkeyPatch,
                                      workers: Callable[..., Workers]) -> None:
    side = _side(tmp_path, monkeypatch)
    flow = tmp_path / "chain.json"
    flow.write_text(json.dumps(worker_targets.chain(2).to_dict()))
    pool = workers(pg_url, side)
    queued = subprocess.run([stepwell(), "run", str(flow), "-i", '{"n": 5}', "--detach",
                             "--json", "--db", pg_url], capture_output=True, text=True, check=False,
                            env=pool.env, cwd=tmp_path)
    assert queued.returncode == 0, queued.stderr
    answer = json.loads(queued.stdout)
    assert answer["status"] == "queued" and answer["run_id"].startswith("run_")
    assert not side.exists()  # nothing executed by run --detach
    proc = pool.start("--idle-exit", "1", "--json")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert json.loads(out) == {"claimed": 1, "ended": 1, "handed_back": 0, "lost": 0}
    with Engine(pg_url) as engine:
        assert _status(engine, answer["run_id"]) == "completed"


def test_sigterm_hands_in_flight_runs_back(pg_url: str, tmp_path: Path,  # noqa: F811
                                           monkeypatch: pytest.MonkeyPatch,
                                           workers: Callable[..., Workers]) -> None:
    side = _side(tmp_path, monkeypatch)
    monkeypatch.setenv(worker_targets.SLEEP_ENV, "0")
    pool = workers(pg_url, side, sleep=1.5)
    with Engine(pg_url) as engine:
        run_id = enqueue(engine, worker_targets.chain(3, awaits=True), {"start": {"n": 0}})
        proc = pool.start("--grace", "0", "--json")
        _wait(lambda: _executed(side)["s1"] == 1)  # s0 completed, s1 in flight
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert json.loads(out)["handed_back"] == 1
        run = engine.store.load_run(run_id)
        assert (run.status, run.owner_pid) == (RunStatus.RUNNING, None)
        _work(engine)
        assert _status(engine, run_id) == "completed"
        assert engine.store.read_step("s1", run_id=run_id).retry_count == 1
    assert _executed(side) == Counter({"s0": 1, "s1": 2, "s2": 1})


def test_a_killed_workers_run_is_taken_over(pg_url: str, tmp_path: Path,  # noqa: F811
                                            monkeypatch: pytest.MonkeyPatch,
                                            workers: Callable[..., Workers]) -> None:
    side = _side(tmp_path, monkeypatch)
    monkeypatch.setenv(worker_targets.SLEEP_ENV, "0")
    pool = workers(pg_url, side, sleep=1.0)
    with Engine(pg_url) as engine:
        run_id = enqueue(engine, worker_targets.chain(3), {"start": {"n": 0}})
        proc = pool.start()
        _wait(lambda: _executed(side)["s1"] == 1)
        proc.kill()
        proc.wait()
        started = time.monotonic()
        _work(engine)  # same machine: the dead pid is seen at once, no lease wait
        assert time.monotonic() - started < 10
        assert _status(engine, run_id) == "completed"
    assert _executed(side) == Counter({"s0": 1, "s1": 2, "s2": 1})


def test_a_cancel_made_anywhere_reaches_the_worker(pg_url: str, tmp_path: Path,  # noqa: F811
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   workers: Callable[..., Workers]) -> None:
    side = _side(tmp_path, monkeypatch)
    pool = workers(pg_url, side, sleep=2.0)
    with Engine(pg_url) as engine:
        run_id = enqueue(engine, worker_targets.chain(4, awaits=True), {"start": {"n": 0}})
        pool.start()
        _wait(lambda: _executed(side)["s0"] == 1)
        assert engine.cancel(run_id, reason="stop it") is False  # its worker ends it
        _wait(lambda: _status(engine, run_id) == "cancelled", timeout=10)
        assert engine.store.read_run(run_id).reason == "stop it"
    assert _executed(side)["s1"] == 0


def test_reviews_approve_detach_queues_the_run(pg_url: str, tmp_path: Path,  # noqa: F811
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _side(tmp_path, monkeypatch)
    with Engine(pg_url) as engine:
        run_id = enqueue(engine, worker_targets.reviewed(), {"start": {"n": 1}})
        _work(engine)
        [review] = engine.store.reviews(run_id=run_id)
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    done = subprocess.run([stepwell(), "reviews", "approve", review.id, "--detach", "--db",
                           pg_url], capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": path, "COLUMNS": "300"})
    assert done.returncode == 0, done.stderr
    assert "is queued; a worker continues it" in done.stdout
    with Engine(pg_url) as engine:
        assert _status(engine, run_id) == "queued"
        _work(engine)
        assert _status(engine, run_id) == "completed"
