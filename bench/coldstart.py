"""W4: ``stepwell run`` of a one-step workflow, as a whole process, shell to exit."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ONE_STEP = """\
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata:
  name: one step
spec:
  blocks:
    start:
      type: start_json
  edges: []
"""


def _stepwell() -> list[str]:
    found = shutil.which("stepwell", path=os.path.dirname(sys.executable))
    return [found] if found else [sys.executable, "-m", "engine.cli"]


def bytecode_env(folder: Path) -> dict[str, str]:
    """The environment of a timed process: bytecode cached (in ``folder``), as an installed
    package has it. Without it a shell that sets ``PYTHONDONTWRITEBYTECODE`` would time
    compiling every module from source on every start."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
    return env


def python_floor(folder: Path, repeat: int) -> float:
    """Median seconds for ``python -c`` that imports sqlite3 and commits one row."""
    code = ("import sqlite3; c = sqlite3.connect(r'%s'); c.execute('PRAGMA journal_mode=WAL');"
            "c.execute('CREATE TABLE IF NOT EXISTS t (x)'); c.execute('INSERT INTO t VALUES (1)');"
            "c.commit()" % (folder / "cold-floor.db"))
    env = bytecode_env(folder)
    times = []
    for index in range(repeat + 1):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        if index:  # the first run compiles bytecode caches
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def cold_start(folder: Path, repeat: int) -> float:
    """Median seconds of ``stepwell run one.yaml --input '{}'`` in a fresh database."""
    workflow = folder / "one.yaml"
    workflow.write_text(ONE_STEP)
    env = bytecode_env(folder)
    times = []
    for index in range(repeat + 1):
        db = folder / f"cold-{index}.db"
        start = time.perf_counter()
        done = subprocess.run(
            [*_stepwell(), "run", str(workflow), "--input", "{}", "--db", str(db), "--json"],
            capture_output=True, text=True, check=False, env=env)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"cold start run failed ({done.returncode}): {done.stderr}")
        if index:  # the first run compiles bytecode caches
            times.append(elapsed)
    return statistics.median(times)
