"""The Dask executor under a shared server's code policy (``stepwell worker --shared
--executor dask://``), on a real ``distributed.LocalCluster``.

An attempt carries its run's policy and environment to the Dask worker, and the
function block applies them there: ``code`` runs in a confined worker process (a
minimal environment with the declared secrets only, a fresh directory, its own
process), and ``python:`` references off the allowlist are refused on the worker too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from blocks.sandbox_host import platform_report
from engine import Workflow
from engine.contracts.policy import SECURITY_SERVICE
from engine.core import Engine
from engine.executors import DaskExecutor
from engine.server.security import policy_for, run_environment

ROOT = Path(__file__).resolve().parents[2]
distributed = pytest.importorskip("distributed")
DASK_ONLY = "dask-worker-environment-3f1e"
SECRET = "org-secret-on-dask-77c4"
GUARANTEES = platform_report().guarantees()
PROBE = """\
import os
def transform(data):
    seen = {}
    for path in ("/etc/passwd", os.environ.get("DB_PATH_PROBE", "/nonexistent")):
        try:
            seen[path] = open(path, "rb").read(8).decode("latin-1")
        except OSError as exc:
            seen[path] = type(exc).__name__
    return {"env": dict(os.environ), "cwd": os.getcwd(), "pid": os.getpid(),
            "parent": os.getppid(), "files": seen}
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.LocalCluster]:
    """One Dask worker process whose environment holds a value code must never see."""
    saved = dict(os.environ)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    os.environ["STEPWELL_DASK_ONLY"] = DASK_ONLY
    try:
        local = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                                         dashboard_address=None)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        yield local
    finally:
        local.close()


def one_function(config: dict[str, Any]) -> Workflow:
    return (Workflow.builder("policy").block("start", "start_json")
            .block("f", "function", config={"output_schema": {"type": "object"}, **config})
            .edge("start", "f").build())


@pytest.fixture()
def shared(cluster: distributed.LocalCluster, tmp_path: Path) -> Iterator[Engine]:
    """An engine as ``stepwell worker --shared --executor dask://`` makes it."""
    policy = policy_for(True, code="auto", allow_python=("tests.engine.executor_targets:*",),
                        egress_allow=(), worker_user=None)
    executor = DaskExecutor(cluster.scheduler_address)
    engine = Engine(tmp_path / "shared.db", executor=executor)
    engine.services[SECURITY_SERVICE] = policy
    engine.env = run_environment(policy, {"org_local": {"A_TOKEN": SECRET}}, os.environ)
    try:
        yield engine
    finally:
        engine.close()
        executor.close()


def output(engine: Engine, workflow: Workflow, inputs: Any = None) -> dict[str, Any]:
    """What block ``f`` returned."""
    result = engine.run(workflow, {"start": inputs or {}})
    assert result.status == "completed", result.error
    [step] = [s for s in result.steps() if s.step_id == "f"]
    payload = step.handle_outputs["output-json-0"].model_dump(mode="json")
    return dict(payload["data"])


def on_the_dask_worker(cluster: distributed.LocalCluster, fn: Any) -> Any:
    """``fn()`` run in the cluster's one worker process."""
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        [value] = client.run(fn).values()
    return value


def dask_worker_pid(cluster: distributed.LocalCluster) -> int:
    """The pid of the cluster's one worker process."""
    return int(on_the_dask_worker(cluster, os.getpid))


def dask_only() -> str | None:
    """What the Dask worker's environment holds under ``STEPWELL_DASK_ONLY``."""
    return os.environ.get("STEPWELL_DASK_ONLY")


def test_code_sent_to_dask_runs_in_the_confined_worker(cluster: distributed.LocalCluster,
                                                        shared: Engine) -> None:
    seen = output(shared, one_function({
        "code": PROBE, "mounts": {"secrets": [{"name": "token", "env": "A_TOKEN"}]}}))
    env = seen["env"]
    assert on_the_dask_worker(cluster, dask_only) == DASK_ONLY  # there to be leaked
    assert "STEPWELL_DASK_ONLY" not in env and DASK_ONLY not in json.dumps(env)
    assert env["A_TOKEN"] == SECRET and env["HOME"] == seen["cwd"]
    assert Path(seen["cwd"]).name.startswith("stepwell-worker-")
    worker = dask_worker_pid(cluster)
    assert seen["pid"] not in (worker, os.getpid())
    if GUARANTEES["filesystem"]:
        assert seen["files"]["/etc/passwd"] == "PermissionError", seen["files"]


def test_undeclared_secrets_stay_home_on_dask(shared: Engine) -> None:
    assert SECRET not in json.dumps(output(shared, one_function({"code": PROBE})))


def test_python_off_the_allowlist_is_refused_on_dask(shared: Engine) -> None:
    result = shared.run(one_function({"python": "os:getcwd"}), {"start": {}})
    [step] = [s for s in result.steps() if s.step_id == "f"]
    assert result.status == "error" and step.lifecycle.status == "error"
    assert step.lifecycle.details.error_code == "CODE_NOT_ALLOWED"  # type: ignore[union-attr]


def test_allowlisted_python_runs_on_the_dask_worker(cluster: distributed.LocalCluster,
                                                   shared: Engine) -> None:
    wf = (Workflow.builder("where").block("start", "start_json")
          .block("f", "function", config={"python": "tests.engine.executor_targets:where",
                                          "output_schema": {"type": "object"}})
          .edge("start", "f").build())
    assert output(shared, wf, {"n": 1})["pid"] == dask_worker_pid(cluster)
