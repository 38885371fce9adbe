"""A shared ``stepwell serve`` under attack by org B's key holder: code and input.

Each test tries one attack from the threat model (docs/security.md) against a real
server for two organizations and asserts the safe outcome: refused with a 4xx, or run
without effect. The last test checks that the server still answers both organizations.
The egress attacks are in test_server_security_egress.py, documents, orphans and
operations in test_server_security_ops.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from blocks.sandbox_host import platform_report
from tests.blocks.test_sandbox import survivors
from tests.engine.security_server import (
    KEY_A,
    KEY_B,
    SECRET_A,
    SECRET_B,
    SERVER_ENV_SECRET,
    Org,
    SharedServer,
    code_workflow,
    one_block,
    python_workflow,
)

GUARANTEES = platform_report().guarantees()
LEAKS = (KEY_A, KEY_B, SECRET_A, SERVER_ENV_SECRET)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedServer]:
    with SharedServer(tmp_path_factory.mktemp("shared")) as live:
        yield live


@pytest.fixture(scope="module")
def a(server: SharedServer) -> Org:
    return server.org("a")


@pytest.fixture(scope="module")
def b(server: SharedServer) -> Org:
    return server.org("b")


def output(org: Org, run: dict[str, Any]) -> Any:
    step = org.step(run["id"], "work")
    assert step["lifecycle"]["status"] == "completed", step
    return step["handle_outputs"]["output-json-0"]["data"]


def failure(org: Org, run: dict[str, Any]) -> dict[str, Any]:
    step = org.step(run["id"], "work")
    assert step["lifecycle"]["status"] == "error", step
    return dict(step["lifecycle"])


def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert detail["code"] == code, detail
    return dict(detail)


def test_start_up_states_the_policy_and_the_sandbox(server: SharedServer) -> None:
    log = server.log.read_text()
    assert "code policy sandboxed" in log and "worker sandbox: " in log


@pytest.mark.parametrize("reference", ["os:_exit", "builtins:exec", "subprocess:run",
                                       "tests.engine.server_workflows:book",
                                       "tests.engine.security_targets:time.sleep",
                                       "tests.engine.security_targets:Any"])
def test_python_references_off_the_allowlist_are_refused_at_apply(b: Org, reference: str
                                                                  ) -> None:
    detail = refused(b.apply(python_workflow(reference)), 403, "CODE_NOT_ALLOWED")
    assert reference in detail["message"] and "--allow-python" in detail["message"]
    assert detail["details"]["diagnostics"][0]["yaml_path"] == "spec.blocks.work.config.python"


def test_allowlisted_python_runs(b: Org) -> None:
    run = b.run(python_workflow("tests.engine.security_targets:echo"),
                json_inputs={"data": {"x": 1}})
    assert output(b, run) == {"echo": {"x": 1}}


def test_function_code_sees_only_its_declared_secrets(b: Org) -> None:
    code = "import os\ndef transform(data):\n    return {'env': dict(os.environ)}\n"
    env = output(b, b.run(code_workflow(code), json_inputs={"data": {}}))["env"]
    assert not any(secret in json.dumps(env) for secret in (*LEAKS, SECRET_B))
    assert "STEPWELL_API_KEYS" not in env and "PROVIDER_SECRET" not in env
    mounted = code_workflow(code, mounts={"secrets": [{"name": "token", "env": "B_TOKEN"}]})
    env = output(b, b.run(mounted, json_inputs={"data": {}}))["env"]
    assert env["B_TOKEN"] == SECRET_B and not any(s in json.dumps(env) for s in LEAKS)
    stolen = code_workflow(code, mounts={"secrets": [{"name": "token", "env": "A_TOKEN"}]})
    assert failure(b, b.run(stolen, json_inputs={"data": {}}))["details"]["error_code"] == \
        "MISSING_SECRET"


@pytest.mark.skipif(not GUARANTEES["filesystem"], reason="no file isolation on this platform")
def test_function_code_cannot_read_the_database_or_system_files(b: Org,
                                                                 server: SharedServer) -> None:
    targets = ["/etc/passwd", str(server.db), f"{server.db}-wal", str(server.secrets),
               f"/proc/{server.pid}/environ"]
    code = f"""
def transform(data):
    seen = {{}}
    for path in {targets!r}:
        try:
            seen[path] = open(path, "rb").read(64).decode("latin-1")
        except OSError as exc:
            seen[path] = type(exc).__name__
    return seen
"""
    seen = output(b, b.run(code_workflow(code), json_inputs={"data": {}}))
    assert set(seen.values()) <= {"PermissionError", "FileNotFoundError"}, seen


@pytest.mark.skipif(not GUARANTEES["tree_kill"], reason="no tree kill on this platform")
def test_a_forked_daemon_dies_with_its_worker(b: Org) -> None:
    code = """
import os, time
def transform(data):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(300)
        os._exit(0)
    return {"home": os.getcwd()}
"""
    home = output(b, b.run(code_workflow(code), json_inputs={"data": {}}))["home"]
    time.sleep(0.3)
    assert survivors(home) == []


def test_memory_and_cpu_limits_fail_the_step(b: Org) -> None:
    hog = "def transform(data):\n    block = bytearray(1536 * 1024 * 1024)\n    return {}\n"
    lifecycle = failure(b, b.run(code_workflow(hog), json_inputs={"data": {}}))
    assert "MemoryError" in json.dumps(lifecycle)
    spin = "def transform(data):\n    while True:\n        pass\n"
    started = time.monotonic()
    run = b.run(code_workflow(spin, limits={"cpu_seconds": 1}, retry={"max_attempts": 1}),
                json_inputs={"data": {}})
    failure(b, run)
    assert time.monotonic() - started < 30


def test_limits_above_the_server_maximum_are_capped(b: Org) -> None:
    code = ("import resource\ndef transform(data):\n"
            "    return {'as': resource.getrlimit(resource.RLIMIT_AS)[0]}\n")
    run = b.run(code_workflow(code, limits={"memory_mb": 1_000_000}), json_inputs={"data": {}})
    assert output(b, run)["as"] == 4096 * 1024 * 1024


def test_a_stderr_flood_does_not_grow_the_server(b: Org, server: SharedServer) -> None:
    before = server.rss_mb()
    code = ("import sys\ndef transform(data):\n    for _ in range(400):\n"
            "        sys.stderr.write('x' * 1_000_000)\n    return {'done': True}\n")
    assert output(b, b.run(code_workflow(code), json_inputs={"data": {}})) == {"done": True}
    assert server.rss_mb() - before < 64


def test_deep_json_inputs_are_refused_before_anything_is_stored(a: Org) -> None:
    workflow_id = a.workflow(one_block("echo", "reshape", {"mappings": {"x": "x"}}))
    before = a.http.get("/v1/workflows/runs").json()["data"]
    deep: Any = {}
    for _ in range(300):
        deep = {"x": deep}
    refused(a.start(workflow_id, json_inputs={"data": deep}), 422, "INVALID_INPUT")
    for literal in ("NaN", "Infinity", "-Infinity"):
        body = json.dumps({"workflow_id": workflow_id, "json_inputs": {"data": {"x": 0}}}
                          ).replace('"x": 0', f'"x": {literal}')
        response = a.http.post("/v1/workflows/runs", content=body,
                               headers={"Content-Type": "application/json"})
        assert response.status_code == 422, response.text
    assert a.http.get("/v1/workflows/runs").json()["data"] == before
    assert a.start(workflow_id, json_inputs={"data": {"x": 1}}).status_code == 200


def test_a_yaml_bomb_under_the_alias_cap_is_refused_quickly(a: Org) -> None:
    lines = ["metadata: {name: bomb}", "apiVersion: workflows.retab.com/v1alpha2",
             "kind: Workflow", "x0: &x0 [" + ",".join(["lol"] * 9) + "]"]
    lines += [f"x{i}: &x{i} [" + ",".join([f"*x{i - 1}"] * 9) + "]" for i in range(1, 10)]
    text = "\n".join(lines) + "\nspec: {blocks: {}}\n"
    assert text.count("*") == 81 and len(text) < 900
    started = time.monotonic()
    detail = refused(a.apply(text), 422, "INVALID_YAML")
    assert "expands" in detail["message"] and time.monotonic() - started < 3


def test_yaml_nested_thousands_of_levels_is_refused_quickly(a: Org) -> None:
    text = "spec: {blocks: " + "[" * 5000 + "]" * 5000 + "}\n"
    started = time.monotonic()
    detail = refused(a.apply(text), 422, "INVALID_YAML")
    assert "nests deeper than 80 levels" in detail["message"]
    assert time.monotonic() - started < 2


def test_control_characters_never_reach_names(a: Org) -> None:
    evil = one_block("evil\x1b[2J\x1b[31mname\r\n", "reshape", {"mappings": {"x": "x"}})
    workflow_id = a.workflow(evil)
    stored = a.http.get(f"/v1/workflows/{workflow_id}").json()
    assert stored["name"] == "evil[2J[31mname"


EVIL_NAME = "C\x1b]0;PWN\x07\x1b[31mRED\u202e\r\n"


def test_control_characters_never_reach_created_or_renamed_workflows(a: Org) -> None:
    created = a.http.post("/v1/workflows", json={"name": EVIL_NAME, "project_id": "p",
                                                 "description": "two\nlines\x1b[2J"})
    assert created.status_code == 200, created.text
    assert created.json()["name"] == "C]0;PWN[31mRED"
    workflow_id = created.json()["id"]
    stored = a.http.get(f"/v1/workflows/{workflow_id}").json()
    assert stored["name"] == "C]0;PWN[31mRED" and stored["description"] == "two\nlines[2J"
    renamed = a.http.patch(f"/v1/workflows/{workflow_id}", json={"name": "R\x1b[2J\u202e"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "R[2J"
    refused(a.http.patch(f"/v1/workflows/{workflow_id}", json={"name": "\x1b\x07"}), 422,
            "INVALID_REQUEST")


def test_control_characters_never_reach_run_metadata(a: Org) -> None:
    workflow_id = a.workflow(one_block("meta", "reshape", {"mappings": {"x": "x"}}))
    response = a.start(workflow_id, json_inputs={"data": {"x": 1}},
                       metadata={"k\x1b[31m\r\n": EVIL_NAME})
    assert response.status_code == 200, response.text
    run = a.http.get(f"/v1/workflows/runs/{response.json()['id']}").json()
    assert run["metadata"] == {"k[31m": "C]0;PWN[31mRED"}


def test_workflows_stay_in_their_organization(a: Org, b: Org) -> None:
    workflow_id = a.workflow(one_block("mine", "reshape", {"mappings": {"x": "x"}}))
    assert a.http.get(f"/v1/workflows/{workflow_id}").status_code == 200
    assert b.http.get(f"/v1/workflows/{workflow_id}").status_code == 404
    assert b.start(workflow_id, json_inputs={"data": {"x": 1}}).status_code == 404


def test_both_organizations_are_still_served(a: Org, b: Org, server: SharedServer) -> None:
    assert server.proc is not None and server.proc.poll() is None
    a.alive()
    b.alive()
    code = "def transform(data):\n    return {'ok': True}\n"
    assert output(a, a.run(code_workflow(code), json_inputs={"data": {}})) == {"ok": True}
    assert output(b, b.run(code_workflow(code), json_inputs={"data": {}})) == {"ok": True}
