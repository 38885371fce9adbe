"""``python -m bench.cluster`` end to end on the test PostgreSQL server (tiny sizes): the
floors, the per-step table and both worker tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.postgres import server_url


def test_the_cluster_bench_prints_its_tables() -> None:
    url = server_url()
    done = subprocess.run(
        [sys.executable, "-m", "bench.cluster", "--url", url, "--only", "steps,workers",
         "--steps", "12", "--repeat", "1", "--no-dbos", "--runs", "6", "--workers", "1,2",
         "--nap-ms", "20", "--nap-runs", "8", "--nap-in-flight", "4"],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for label in ("floor, prepared", "chain", "fanout", "trivial functions",
                  "functions waiting", "bound runs/s", "load average"):
        assert label in out, f"{label!r} missing from:\n{out}"


def test_the_floor_commits_every_row() -> None:
    url = server_url()
    for kind in ("row", "row-prepared"):
        done = subprocess.run(
            [sys.executable, "-m", "bench.cluster_measure", "floor", kind, "50", "full", url,
             "--repeat", "1"], capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["steps"] == 50
