"""blocks.sandbox / confine / sandbox_host: workers that stay contained and always stop.

The worker is :mod:`tests.blocks.sandbox_worker` (it confines itself like the real ones
and runs the test's code). Promises that depend on the platform are skipped, with the
reason, where :func:`platform_report` says the platform does not offer them; these are
exactly the promises docs/security.md lists per platform.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from blocks.confine import ARG, EXIT_UNCONFINED, Plan
from blocks.sandbox import (
    WorkerOutcome,
    WorkerSpec,
    minimal_env,
    reap_workers,
    run_worker,
)
from blocks.sandbox_host import WorkerRegistry, platform_report
from engine.contracts.policy import SHARED_WORKER_DEFAULTS, WorkerLimits

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the worker sandbox is tested on Linux")
ROOT = Path(__file__).resolve().parents[2]
REPORT = platform_report()
GUARANTEES = REPORT.guarantees()


def needs(promise: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not GUARANTEES[promise],
                              reason=f"this platform does not guarantee {promise}")


def run(code: str, *, confine: bool = True, timeout: float = 30,
        limits: WorkerLimits = SHARED_WORKER_DEFAULTS, **spec: Any) -> WorkerOutcome:
    worker = WorkerSpec(module="tests.blocks.sandbox_worker", confine=confine, limits=limits,
                        **spec)
    request = json.dumps({"code": code}).encode()
    return anyio.run(lambda: run_worker(worker, request, timeout=timeout))


def answer(outcome: WorkerOutcome) -> Any:
    assert outcome.returncode == 0, outcome
    return json.loads(outcome.stdout)["result"]


def survivors(home: str) -> list[int]:
    """Processes whose environment has ``HOME=home`` (a confined worker's descendants)."""
    marker = f"HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_confined_worker_gets_a_minimal_environment_and_a_private_directory() -> None:
    os.environ["STEPWELL_SANDBOX_TEST_SECRET"] = "must-not-leak"
    try:
        result = answer(run("import os\nresult = [dict(os.environ), os.getcwd()]",
                            env={"DECLARED": "yes"}))
    finally:
        del os.environ["STEPWELL_SANDBOX_TEST_SECRET"]
    env, cwd = result
    assert set(env) == set(minimal_env(cwd, {"DECLARED": "yes"}))
    assert env["DECLARED"] == "yes" and env["HOME"] == cwd
    assert not Path(cwd).exists()  # removed afterwards


def test_open_worker_keeps_the_callers_environment_and_directory(tmp_path: Path) -> None:
    result = answer(run("import os\nresult = [os.environ.get('ONLY_HERE'), os.getcwd()]",
                        confine=False, env={**os.environ, "ONLY_HERE": "1"}, cwd=str(tmp_path)))
    assert result == ["1", str(tmp_path)]


@needs("filesystem")
def test_confined_worker_reads_nothing_outside(tmp_path: Path) -> None:
    db = tmp_path / "stepwell.db"
    db.write_text("org A's runs")
    code = f"""
found = {{}}
for path in ("/etc/passwd", {str(db)!r}, {str(ROOT / "README.md")!r}, "/proc/1/environ"):
    try:
        found[path] = open(path).read(5)
    except OSError as exc:
        found[path] = type(exc).__name__
open("scratch.txt", "w").write("the work directory is writable")
result = found
"""
    found = answer(run(code))
    assert set(found.values()) <= {"PermissionError", "FileNotFoundError"}, found


@needs("tree_kill")
def test_everything_a_worker_spawns_dies_with_it() -> None:
    daemon = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(120)
    os._exit(0)
result = os.getcwd()
"""
    home = answer(run(daemon))
    time.sleep(0.2)
    assert survivors(home) == []


@needs("tree_kill")
def test_a_timeout_kills_the_worker_and_its_escapees() -> None:
    code = """
import os, sys, time
print(os.getcwd(), file=sys.stderr, flush=True)
if os.fork() == 0:
    os.setsid()
    time.sleep(120)
time.sleep(120)
"""
    started = time.monotonic()
    outcome = run(code, timeout=1)
    assert outcome.timed_out and time.monotonic() - started < 5
    home = outcome.stderr.strip().splitlines()[0]
    time.sleep(0.2)
    assert survivors(home) == []


def test_cancelling_the_caller_kills_the_worker_at_once() -> None:
    worker = WorkerSpec(module="tests.blocks.sandbox_worker", confine=True)
    request = json.dumps({"code": "import time\ntime.sleep(120)"}).encode()

    async def main() -> float:
        started = time.monotonic()
        with anyio.move_on_after(0.5):
            await run_worker(worker, request, timeout=None)
        return time.monotonic() - started

    assert anyio.run(main) - 0.5 < 2  # from the cancel to the worker's end


def test_memory_limit() -> None:
    outcome = run("x = bytearray(1536 * 1024 * 1024)\nresult = len(x)")
    assert outcome.returncode != 0 and "MemoryError" in outcome.stderr


def test_cpu_limit_kills() -> None:
    outcome = run("while True:\n    pass", limits=WorkerLimits(cpu_seconds=1))
    assert outcome.returncode is not None and outcome.returncode != 0


def test_file_size_limit() -> None:
    code = "open('big', 'wb').write(b'x' * (3 * 1024 * 1024))"
    outcome = run(code, limits=WorkerLimits(file_size_mb=1))
    assert outcome.returncode != 0 and "File too large" in outcome.stderr


@needs("processes")
def test_process_limit() -> None:
    code = """
import os, time
made = 0
try:
    for _ in range(200):
        if os.fork() == 0:
            time.sleep(5)
            os._exit(0)
        made += 1
except OSError:
    pass
result = made
"""
    assert answer(run(code, limits=WorkerLimits(processes=20))) < 20


def test_output_is_bounded() -> None:
    flood = "import sys\nfor _ in range(400):\n    sys.stderr.write('e' * 1_000_000)\nresult = 1"
    outcome = run(flood)
    assert answer(outcome) == 1 and len(outcome.stderr) <= 8 * 1024
    outcome = run("import sys\nsys.stdout.write('o' * 5_000_000)", stdout_limit=1_000_000)
    assert outcome.too_much_output and len(outcome.stdout) <= 1_000_000


@needs("network")
def test_confined_worker_has_no_network() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        code = f"""
import socket
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2)
    result = "connected"
except OSError as exc:
    result = type(exc).__name__
"""
        assert answer(run(code)) != "connected"
        listener.settimeout(0.2)
        with pytest.raises(TimeoutError):
            listener.accept()


@needs("signals")
def test_confined_worker_cannot_signal_the_host() -> None:
    code = f"import os\ntry:\n    os.kill({os.getpid()}, 0)\n    result = 'reached'\n" \
           "except OSError as exc:\n    result = type(exc).__name__"
    assert answer(run(code)) in ("PermissionError", "ProcessLookupError")


def test_a_required_layer_that_fails_stops_the_worker() -> None:
    plan = Plan(require=("landlock",), landlock=False)
    proc = subprocess.run([sys.executable, "-P", "-m", "tests.blocks.sandbox_worker", ARG,
                           plan.to_json()], input=b'{"code": "result = 1"}', cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, timeout=30, check=False)
    assert proc.returncode == EXIT_UNCONFINED and proc.stdout == b""
    assert b"stepwell sandbox: " in proc.stderr


def test_registry_reaps_workers_of_a_dead_host(tmp_path: Path) -> None:
    registry = WorkerRegistry(tmp_path / "workers")
    dead_host = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_host.wait()
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                              start_new_session=True)
    try:
        registry.add(worker.pid)
        entry = tmp_path / "workers" / f"{worker.pid}.json"
        record = json.loads(entry.read_text())
        entry.write_text(json.dumps({**record, "host": dead_host.pid}))
        assert registry.reap() == [worker.pid]
        assert worker.wait(timeout=5) != 0 and not entry.exists()
        assert registry.reap() == []
    finally:
        worker.kill()
        worker.wait()


def test_reap_own_kills_this_hosts_live_workers() -> None:
    async def main() -> list[int]:
        worker = WorkerSpec(module="tests.blocks.sandbox_worker", confine=False)
        request = json.dumps({"code": "import time\ntime.sleep(60)"}).encode()
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: run_worker(worker, request, timeout=30))
            await anyio.sleep(0.5)
            killed = await anyio.to_thread.run_sync(lambda: reap_workers(own=True))
        return killed

    started = time.monotonic()
    assert len(anyio.run(main)) == 1 and time.monotonic() - started < 5


def test_platform_report_describes_itself() -> None:
    line = REPORT.describe()
    assert line.startswith("worker sandbox: ") and "guaranteed: " in line
    assert GUARANTEES["memory"]  # the module runs on Linux only
