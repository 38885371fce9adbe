"""The crash test on PostgreSQL with workers: SIGKILL ``stepwell worker`` processes at
random while others run, at least ``KILLS`` times.

Runs of a loop-heavy workflow (:func:`tests.engine.worker_targets.looped`) are queued on
one PostgreSQL database; three ``stepwell worker`` processes take them. Again and again,
once a random number of functions started and after a random delay, a worker that owns
a run, picked at random, is killed with SIGKILL and replaced; right after each kill the
test records what the database holds (every step's status) and what the side file says
was executed. Workers adopt the runs of a dead worker at once (it
was a process of this machine) or when its lease runs out. More runs are queued while
kills remain to land.

Checked for every run: it completes with the outputs (run and every step) of an
uninterrupted run; a step ``completed`` in the database at a kill is never executed
again; a step executed more than once was in flight at a kill, once per extra execution.
``STEPWELL_CRASH_SEED=N`` replays the kill timing.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from engine.core import Engine
from engine.queue import enqueue
from tests.engine import crash_targets, worker_targets
from tests.engine.test_worker import ROOT, stepwell
from tests.postgres import pg_url  # noqa: F401 - a fixture

KILLS = 20
WORKERS = 3
IN_FLIGHT = frozenset({"queued", "running"})


def _executed(side: Path) -> Counter[tuple[str, str]]:
    if not side.exists():
        return Counter()
    return Counter(tuple(line.split()) for line in side.read_text().splitlines()
                   if line)  # type: ignore[misc]


def _statuses(engine: Engine) -> dict[tuple[str, str], str]:
    with engine.store.db.read("crash test") as conn:  # type: ignore[attr-defined]
        rows = conn.execute("SELECT run_id, step_id, status FROM steps").fetchall()
    return {(run, step): status for run, step, status in rows}


def _wait_starts(side: Path, count: int, timeout: float = 60.0) -> None:
    """Wait until ``count`` more function starts are in the side file."""
    lines = side.read_bytes().count(b"\n") if side.exists() else 0
    deadline = time.monotonic() + timeout
    while (side.read_bytes().count(b"\n") if side.exists() else 0) < lines + count:
        assert time.monotonic() < deadline, "the workers stopped making progress"
        time.sleep(0.002)


def _busy(engine: Engine, pool: list[subprocess.Popen[bytes]]) -> list[int]:
    """Indexes of the workers that own an unfinished run."""
    with engine.store.db.read("crash test") as conn:  # type: ignore[attr-defined]
        owners = {r[0] for r in conn.execute(
            "SELECT owner_pid FROM runs WHERE status IN ('pending', 'queued', 'running')")}
    return [i for i, proc in enumerate(pool) if proc.pid in owners]


def _shape(engine: Engine, run_id: str) -> tuple[str, Any, dict[str, tuple[str, Any]]]:
    run = engine.store.read_run(run_id)
    steps = {s.step_id: (s.status, s.outputs) for s in engine.store.run_steps(run_id)}
    return run.status, run.outputs, steps


def test_sigkill_workers_at_random(pg_url: str, tmp_path: Path,  # noqa: F811
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    seed = int(os.environ.get("STEPWELL_CRASH_SEED") or random.SystemRandom().randrange(2**32))
    print(f"crash test seed: {seed} (replay with STEPWELL_CRASH_SEED={seed})")
    rng = random.Random(seed)
    workflow, inputs = worker_targets.looped(), {"start": crash_targets.INPUT}
    with Engine(tmp_path / "reference.db") as engine:
        reference = _shape(engine, engine.run(workflow, inputs).run_id)
    assert reference[0] == "completed" and len(reference[2]) >= 40

    side = tmp_path / "side.txt"
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, crash_targets.SIDE_FILE_ENV: str(side)}
    monkeypatch.delenv(crash_targets.SIDE_FILE_ENV, raising=False)

    def start_worker(index: int) -> subprocess.Popen[bytes]:
        with (tmp_path / f"worker-{index}.err").open("wb") as err:
            return subprocess.Popen([stepwell(), "worker", "--db", pg_url, "--concurrency", "2",
                                     "--lease", "6"], stdout=subprocess.DEVNULL, stderr=err,
                                    env=env, cwd=tmp_path)

    kills: list[tuple[dict[tuple[str, str], str], Counter[tuple[str, str]]]] = []
    with Engine(pg_url) as engine:
        runs = [enqueue(engine, workflow, inputs) for _ in range(8)]
        pool = [start_worker(i) for i in range(WORKERS)]
        started = WORKERS
        try:
            while len(kills) < KILLS:
                _wait_starts(side, rng.randint(1, 6))
                time.sleep(rng.uniform(0.0, 0.06))
                busy = _busy(engine, pool)
                if not busy:
                    continue
                victim = rng.choice(busy)
                pool[victim].send_signal(signal.SIGKILL)
                pool[victim].wait()
                kills.append((_statuses(engine), _executed(side)))
                pool[victim] = start_worker(started)
                started += 1
                waiting = sum(1 for r in runs if engine.store.read_run(r).status != "completed")
                if waiting < 4:
                    runs += [enqueue(engine, workflow, inputs) for _ in range(4)]
            deadline = time.monotonic() + 180
            while any(engine.store.read_run(r).status != "completed" for r in runs):
                assert time.monotonic() < deadline, "runs did not complete after the kills"
                time.sleep(0.2)
            finals = {run_id: _shape(engine, run_id) for run_id in runs}
        finally:
            for proc in pool:
                proc.kill()
                proc.wait()
    final = _executed(side)
    for run_id, shape in finals.items():
        assert json.dumps(shape, sort_keys=True) == json.dumps(reference, sort_keys=True), run_id
    in_flight: Counter[tuple[str, str]] = Counter()
    for n, (statuses, executed) in enumerate(kills):
        for key, status in statuses.items():
            if status == "completed":
                assert final[key] == executed[key], f"{key} completed at kill {n + 1}, ran again"
        in_flight.update(key for key, status in statuses.items() if status in IN_FLIGHT)
    reran = 0
    for key, count in final.items():
        assert count <= 1 + in_flight[key], f"{key} ran {count} times, in flight at " \
                                            f"{in_flight[key]} kills"
        reran += count > 1
    print(f"{len(kills)} kills, {len(runs)} runs, {started} workers started; "
          f"{reran} in-flight steps ran again")
