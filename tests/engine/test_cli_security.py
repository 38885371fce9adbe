"""The CLI with hostile input and a full disk: one line of error, nothing half-written,
and every later command still works."""

from __future__ import annotations

import json
import os
import resource
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engine.security_server import ROOT, code_workflow, one_block

ECHO = one_block("echo", "reshape", {"mappings": {"x": "x"}})
BIG = one_block("big", "function", {"python": "tests.engine.security_targets:echo",
                                    "output_schema": {"type": "object"}})


def stepwell(*args: str, limit_file_size: int | None = None) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        if limit_file_size is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_size, limit_file_size))

    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPWELL_")}
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False,
                          preexec_fn=limit)


def _runs(listing: str) -> list[dict[str, object]]:
    data = json.loads(listing)
    return list(data["data"] if isinstance(data, dict) else data)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


@pytest.mark.parametrize("value", ["[" * 900 + "]" * 900, '{"x": NaN}', '{"x": Infinity}'])
def test_hostile_inputs_are_refused_in_one_line(tmp_path: Path, value: str) -> None:
    workflow, data, db = tmp_path / "w.yaml", tmp_path / "in.json", str(tmp_path / "s.db")
    workflow.write_text(ECHO)
    assert stepwell("run", str(workflow), "--input", '{"x": 1}', "--db", db).returncode == 0
    data.write_text(value)
    proc = stepwell("run", str(workflow), "--input", f"@{data}", "--db", db)
    assert proc.returncode == 2
    assert "JSON" in one_line_error(proc)
    listed = stepwell("runs", "list", "--db", db, "--json")
    assert listed.returncode == 0, listed.stderr
    assert len(_runs(listed.stdout)) == 1  # the refused input left nothing behind


def test_a_full_disk_is_one_line_and_the_run_resumes(tmp_path: Path) -> None:
    workflow, data, db = tmp_path / "w.yaml", tmp_path / "in.json", tmp_path / "s.db"
    workflow.write_text(BIG)
    data.write_text(json.dumps({"blob": "x" * 200_000}))
    proc = stepwell("run", str(workflow), "--input", f"@{data}", "--db", str(db),
                    limit_file_size=700_000)
    assert proc.returncode != 0
    assert "database" in one_line_error(proc)
    [run] = _runs(stepwell("runs", "list", "--db", str(db), "--json").stdout)
    resumed = stepwell("runs", "resume", run["id"], "--db", str(db))
    assert resumed.returncode == 0, resumed.stderr
    final = json.loads(stepwell("runs", "get", run["id"], "--db", str(db), "--json").stdout)
    assert final["lifecycle"]["status"] == "completed"


def test_the_database_is_private(tmp_path: Path) -> None:
    workflow, db = tmp_path / "w.yaml", tmp_path / "s.db"
    workflow.write_text(code_workflow("def transform(data):\n    return {}\n"))
    assert stepwell("run", str(workflow), "--input", "{}", "--db", str(db)).returncode == 0
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    files = Path(f"{db}.files")
    if files.exists():
        assert stat.S_IMODE(files.stat().st_mode) == 0o700


def test_escape_sequences_never_reach_the_terminal(tmp_path: Path) -> None:
    workflow, db = tmp_path / "w.yaml", str(tmp_path / "s.db")
    workflow.write_text(one_block("evil\x1b]0;owned\x07\x1b[2J", "reshape",
                                  {"mappings": {"x": "x"}}))
    proc = stepwell("run", str(workflow), "--input", '{"x": 1}', "--db", db)
    assert proc.returncode == 0, proc.stderr
    listed = stepwell("runs", "list", "--db", db)
    assert "\x1b]" not in listed.stdout + proc.stdout + proc.stderr
    assert "\x1b[2J" not in listed.stdout + proc.stdout + proc.stderr
