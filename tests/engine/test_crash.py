"""Crash test: SIGKILL a real ``stepwell run`` at random moments, resume, compare.

Each *chain* starts ``stepwell run`` on its own database, kills it with SIGKILL at a
random moment once the process owns the run, reads the database right after the kill,
then resumes with ``stepwell runs resume`` (which is killed again, three to six kills per
chain) until a process finishes. Chains run two at a time until at least ``KILLS`` kills
landed. The reference is an uninterrupted run of the same workflow. Every function of the workflow appends its step id to a side file when it
starts, so the side file is the ground truth of what was executed, across processes.

Checked per chain:

* the run completes with the outputs (run and every step) of an uninterrupted run;
* a step ``completed`` in the database at a kill is never executed again;
* a step executed more than once was in flight (``queued``/``running``) at a kill, once
  per extra execution.

The seed is printed (shown on failure); ``STEPWELL_CRASH_SEED=N`` replays its kill delays.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.engine import crash_targets

ROOT = Path(__file__).resolve().parents[2]
KILLS = 20
MAX_CHAINS = 12
PARALLEL = 2
#: Upper bound of the random delay between the chosen function start and the kill.
SPREAD = 0.06
IN_FLIGHT = frozenset({"queued", "running"})


def stepwell() -> str:
    """The ``stepwell`` console script of this environment."""
    script = Path(sys.executable).with_name("stepwell")
    if not script.exists():
        pytest.skip("the stepwell console script is not installed (pip install -e .)")
    return str(script)


@dataclass
class Kill:
    """What the database and the side file held right after one kill."""

    statuses: dict[str, str]
    executed: Counter[str]


@dataclass
class Chain:
    """One run, killed and resumed until a process finishes it."""

    index: int
    db: Path
    side: Path
    run_id: str | None = None
    kills: list[Kill] = field(default_factory=list)
    exit_code: int | None = None
    stderr: str = ""


class Harness:
    """Starts ``stepwell`` processes on a workflow file and reads what they wrote."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.workflow = tmp / "crash.json"
        self.workflow.write_text(json.dumps(crash_targets.build_workflow().to_dict()))
        self.inputs = tmp / "input.json"
        self.inputs.write_text(json.dumps(crash_targets.INPUT))
        self.exe = stepwell()

    def env(self, side: Path) -> dict[str, str]:
        """Environment of a child: the project importable, the side file set."""
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        return {**os.environ, "PYTHONPATH": path, crash_targets.SIDE_FILE_ENV: str(side)}

    def spawn(self, chain: Chain, *args: str) -> subprocess.Popen[bytes]:
        """Start ``stepwell ARGS --db chain.db`` with output to files."""
        tag = f"{chain.db.stem}-{len(chain.kills)}"
        out = (self.tmp / f"{tag}.out").open("wb")
        err = (self.tmp / f"{tag}.err").open("wb")
        with out, err:
            return subprocess.Popen([self.exe, *args, "--db", str(chain.db), "--json"],
                                    stdout=out, stderr=err, env=self.env(chain.side),
                                    cwd=self.tmp)

    def start(self, chain: Chain) -> subprocess.Popen[bytes]:
        """``stepwell run`` of the crash workflow."""
        return self.spawn(chain, "run", str(self.workflow), "-i", f"start=@{self.inputs}")

    def resume(self, chain: Chain) -> subprocess.Popen[bytes]:
        """``stepwell runs resume RUN_ID``."""
        assert chain.run_id is not None
        return self.spawn(chain, "runs", "resume", chain.run_id)

    def stderr(self, chain: Chain) -> str:
        """Every stderr the chain's processes wrote."""
        return "\n".join(p.read_text(errors="replace")
                         for p in sorted(self.tmp.glob(f"{chain.db.stem}-*.err")))


def query(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` on a read-only connection ([] while the database is being made)."""
    if not db.exists():
        return []
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error:
        return []
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        conn.close()


def wait_owned(db: Path, proc: subprocess.Popen[bytes]) -> str | None:
    """The run id once ``proc`` owns a run in ``db`` (None if it exited first)."""
    while proc.poll() is None:
        rows = query(db, "SELECT id FROM runs WHERE owner_pid = ?", proc.pid)
        if rows:
            return str(rows[0][0])
        time.sleep(0.005)
    return None


def executed(side: Path) -> Counter[str]:
    """How often each step id was started, from the side file."""
    if not side.exists():
        return Counter()
    return Counter(line.split()[1] for line in side.read_text().splitlines() if line)


def statuses(db: Path, run_id: str) -> dict[str, str]:
    """step id -> status, as committed."""
    return dict(query(db, "SELECT step_id, status FROM steps WHERE run_id = ?", run_id))


def run_status(db: Path, run_id: str) -> str:
    """The run's committed status."""
    [(status,)] = query(db, "SELECT status FROM runs WHERE id = ?", run_id)
    return str(status)


def final_state(db: Path, run_id: str) -> tuple[str, Any, dict[str, tuple[str, Any]]]:
    """The run's status and outputs, and each step's status and outputs."""
    [(status, outputs)] = query(db, "SELECT status, outputs FROM runs WHERE id = ?", run_id)
    steps = query(db, "SELECT step_id, status, outputs FROM steps WHERE run_id = ?", run_id)
    return status, json.loads(outputs or "null"), {
        sid: (st, json.loads(out or "null")) for sid, st, out in steps}


def run_chain(h: Harness, chain: Chain, rng: random.Random, functions: int,
              more: Callable[[], bool]) -> None:
    """Start, kill and resume until a process finishes the run.

    Each kill waits for a random number of the functions still to run to start, then
    for a random delay of up to ``SPREAD`` seconds: kills land inside functions, between
    a function and its commit, in control steps, and during a resume's replay. Once
    ``more()`` turns false the process is left to finish.
    """
    max_kills = rng.randint(3, 6)
    proc = h.start(chain)
    remaining = functions
    while True:
        owned = wait_owned(chain.db, proc)
        chain.run_id = owned or chain.run_id
        if owned is not None and len(chain.kills) < max_kills and more():
            wait_starts(chain.side, proc, rng.randrange(remaining))
            try:
                proc.wait(timeout=rng.uniform(0.0, SPREAD))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()  # reaped: the dead owner is now detectable
                kill = Kill(statuses=statuses(chain.db, owned), executed=executed(chain.side))
                chain.kills.append(kill)
                if run_status(chain.db, owned) == "completed":
                    chain.exit_code = 0  # killed while exiting: nothing left to resume
                    break
                done = sum(1 for sid in kill.executed if kill.statuses.get(sid) == "completed")
                remaining = max(1, functions - done)
                proc = h.resume(chain)
                continue
        chain.exit_code = proc.wait(timeout=120)
        break
    chain.stderr = h.stderr(chain)


def wait_starts(side: Path, proc: subprocess.Popen[bytes], count: int) -> None:
    """Wait until ``count`` more functions started (or ``proc`` exited)."""
    target = started(side) + count
    while count and proc.poll() is None and started(side) < target:
        time.sleep(0.002)


def started(side: Path) -> int:
    """Function starts so far (lines in the side file)."""
    return side.read_bytes().count(b"\n") if side.exists() else 0


def check_chain(chain: Chain, reference: tuple[Any, ...], ref_executed: Counter[str]) -> int:
    """Assert the guarantees for one chain; return how many steps ran twice."""
    where = f"chain {chain.index} ({chain.db.name}, run {chain.run_id})"
    assert chain.exit_code == 0, f"{where}: exit {chain.exit_code}\n{chain.stderr}"
    assert chain.run_id is not None
    status, outputs, steps = final_state(chain.db, chain.run_id)
    ref_status, ref_outputs, ref_steps = reference
    assert status == ref_status == "completed", where
    assert outputs == ref_outputs, where
    assert steps == ref_steps, f"{where}: steps differ from the uninterrupted run"
    final = executed(chain.side)
    assert set(final) == set(ref_executed), f"{where}: a function never ran, or ran extra"
    in_flight: Counter[str] = Counter()
    for n, kill in enumerate(chain.kills):
        for sid, st in kill.statuses.items():
            if st == "completed":
                assert final[sid] == kill.executed[sid], (
                    f"{where}: {sid} was completed at kill {n + 1} but ran again")
                assert kill.executed[sid] <= 1 + in_flight[sid], (
                    f"{where}: {sid} ran {kill.executed[sid]} times before kill {n + 1}")
        in_flight.update(sid for sid, st in kill.statuses.items() if st in IN_FLIGHT)
    for sid, count in final.items():
        assert count <= 1 + in_flight[sid], (
            f"{where}: {sid} ran {count} times but was in flight at {in_flight[sid]} kills")
    return sum(1 for count in final.values() if count > 1)


def reference_run(tmp: Path, monkeypatch: pytest.MonkeyPatch
                  ) -> tuple[tuple[Any, ...], Counter[str]]:
    """An uninterrupted run (in this process): its final state and what it executed."""
    from engine import Engine

    db, side = tmp / "reference.db", tmp / "reference.side"
    monkeypatch.setenv(crash_targets.SIDE_FILE_ENV, str(side))
    with Engine(db) as engine:
        result = engine.run(crash_targets.build_workflow(), {"start": crash_targets.INPUT})
    monkeypatch.delenv(crash_targets.SIDE_FILE_ENV)
    assert result.ok, result.error
    ran = executed(side)
    assert ran and max(ran.values()) == 1
    return final_state(db, result.run_id), ran


def test_sigkill_at_random_moments_then_resume(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    seed = int(os.environ.get("STEPWELL_CRASH_SEED") or random.SystemRandom().randrange(2**32))
    print(f"crash test seed: {seed} (replay with STEPWELL_CRASH_SEED={seed})")
    h = Harness(tmp_path)
    reference, ref_executed = reference_run(tmp_path, monkeypatch)
    assert len(reference[2]) >= 30
    chains: list[Chain] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        while True:
            with lock:
                kills = sum(len(c.kills) for c in chains)
                if kills >= KILLS or len(chains) >= MAX_CHAINS or errors:
                    return
                chain = Chain(index=len(chains), db=tmp_path / f"chain{len(chains)}.db",
                              side=tmp_path / f"chain{len(chains)}.side")
                chains.append(chain)
            try:
                run_chain(h, chain, random.Random(seed + chain.index), len(ref_executed),
                          lambda: sum(len(c.kills) for c in chains) < KILLS)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
                errors.append(exc)
                return

    threads = [threading.Thread(target=worker) for _ in range(PARALLEL)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    total = sum(len(c.kills) for c in chains)
    assert total >= KILLS, f"only {total} kills landed in {len(chains)} chains"
    reran = sum(check_chain(c, reference, ref_executed) for c in chains)
    print(f"{total} kills in {len(chains)} chains; {reran} in-flight steps ran twice")


def test_a_kill_inside_an_inline_loop_body_before_its_end_sentinel_exists(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A while_loop body that runs inline commits its end sentinel's creation with the
    # sentinel's outcome: killed inside the body, the database has no row for it yet.
    reference, _ = reference_run(tmp_path, monkeypatch)
    monkeypatch.setenv("STEPWELL_CRASH_SLEEP", "0.15")  # the kill lands inside the body
    h = Harness(tmp_path)
    chain = Chain(index=0, db=tmp_path / "inline-body.db", side=tmp_path / "inline-body.side")
    proc = h.start(chain)
    body = "rounds_iter_2_bump"
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if chain.side.exists() and f" {body}\n" in chain.side.read_text():
            break
        time.sleep(0.002)
    assert proc.poll() is None, f"the run ended before {body} started:\n{h.stderr(chain)}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    [(run_id,)] = query(chain.db, "SELECT id FROM runs")
    chain.run_id = run_id
    killed = statuses(chain.db, run_id)
    assert killed[body] == "running", killed
    assert killed.get("rounds_iter_1_rounds_sentinel_end") == "completed", killed
    assert "rounds_iter_2_rounds_sentinel_end" not in killed
    chain.kills.append(Kill(statuses=killed, executed=executed(chain.side)))
    chain.exit_code = h.resume(chain).wait(timeout=120)
    chain.stderr = h.stderr(chain)
    assert chain.exit_code == 0, chain.stderr
    status, outputs, steps = final_state(chain.db, run_id)
    assert (status, outputs, steps) == reference
    ordered = [sid for (sid,) in query(chain.db, "SELECT step_id FROM steps WHERE run_id = ? "
                                       "AND step_id LIKE 'rounds_iter_2_%' ORDER BY seq", run_id)]
    assert ordered == ["rounds_iter_2_rounds_sentinel_start", body,
                       "rounds_iter_2_rounds_sentinel_end"]
