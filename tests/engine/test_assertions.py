"""assert_step failures read as the test's own line and the message, not this library."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FAILING_TEST = textwrap.dedent("""
    from engine import Engine
    from engine.testing import assert_step

    ROUTING = {ROUTING!r}

    def test_wrong_status(tmp_path):
        with Engine(tmp_path / "stepwell.db") as engine:
            result = engine.run(ROUTING, {{"invoice": {{
                "invoice_number": "INV-1", "supplier": "Acme",
                "lines": [{{"quantity": 3, "unit_price": 10}}]}}}})
            assert_step(result, "normalise", status="error")
""")


def test_a_failing_assert_step_hides_its_own_frames(tmp_path: Path) -> None:
    routing = str(ROOT / "examples" / "invoice_routing" / "workflow.yaml")
    (tmp_path / "test_failing.py").write_text(FAILING_TEST.format(ROUTING=routing))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_failing.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "status: expected 'error', got 'completed'" in out
    assert 'assert_step(result, "normalise", status="error")' in out
    assert "engine/assertions.py" not in out and "problems.append" not in out
    assert len(out.splitlines()) < 30, out
