"""The function block under a host's security policy: who may run code, and how.

A personal machine (no policy service) runs both modes as before; a shared server's
policy refuses ``python:`` references off its allowlist, runs ``code`` in confined
workers with only the declared secrets, and caps the limits a block asks for.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

from blocks.function import Function
from engine.contracts.definition import BlockDef
from engine.contracts.policy import (
    SECURITY_SERVICE,
    CodePolicy,
    SecurityPolicy,
    WorkerLimits,
)
from engine.testing import run_block

SHARED = SecurityPolicy.shared(python_allowlist=("tests.engine.security_targets:*",))
ENV_CODE = "import os\ndef transform(data):\n    return {'env': dict(os.environ)}\n"


def function(config: dict[str, Any], policy: SecurityPolicy | None = None,
             env: dict[str, str] | None = None, data: Any = None) -> Any:
    services = {SECURITY_SERVICE: policy} if policy is not None else None
    return run_block("function", {"output_schema": {"type": "object"}, **config},
                     {"input-json-0": data if data is not None else {}},
                     services=services, env=env)


def test_personal_machine_code_inherits_the_environment() -> None:
    os.environ["STEPWELL_POLICY_TEST"] = "visible"
    try:
        run = function({"code": ENV_CODE})
    finally:
        del os.environ["STEPWELL_POLICY_TEST"]
    assert run.status == "completed"
    assert run.outputs["output-json-0"]["env"]["STEPWELL_POLICY_TEST"] == "visible"
    assert "sandbox" not in run.artifact or run.artifact["sandbox"]["confined"] is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="confinement is Linux")
def test_shared_code_sees_only_declared_secrets() -> None:
    os.environ["STEPWELL_POLICY_TEST"] = "hidden"
    try:
        run = function({"code": ENV_CODE, "mounts": {"secrets": [
            {"name": "token", "env": "TOKEN"}]}}, SHARED, env={"TOKEN": "t0k", "OTHER": "no"})
    finally:
        del os.environ["STEPWELL_POLICY_TEST"]
    assert run.status == "completed", run.error
    env = run.outputs["output-json-0"]["env"]
    assert env["TOKEN"] == "t0k" and "OTHER" not in env and "STEPWELL_POLICY_TEST" not in env
    sandbox = run.artifact["sandbox"]
    assert sandbox["confined"] and "rlimits" in sandbox["layers"]
    assert sandbox["limits"]["memory_mb"] == 1024


def test_shared_secrets_come_from_the_run_environment_only() -> None:
    os.environ["ONLY_IN_PROCESS"] = "x"
    try:
        run = function({"code": ENV_CODE, "mounts": {"secrets": [
            {"name": "t", "env": "ONLY_IN_PROCESS"}]}}, SHARED, env={})
    finally:
        del os.environ["ONLY_IN_PROCESS"]
    assert run.status == "error" and run.error["code"] == "MISSING_SECRET"


def test_limits_are_capped_by_the_policy_maximum() -> None:
    policy = SecurityPolicy.shared()
    assert policy.worker_limits({"memory_mb": 10**6}).memory_mb == 4096
    assert policy.worker_limits({"cpu_seconds": 5}).cpu_seconds == 5
    assert policy.worker_limits(None) == policy.worker_defaults
    assert SecurityPolicy.local().worker_limits({"memory_mb": 100}) == WorkerLimits(memory_mb=100)


def test_python_references_follow_the_allowlist() -> None:
    ok = function({"python": "tests.engine.security_targets:echo"}, SHARED, data={"a": 1})
    assert ok.status == "completed" and ok.outputs["output-json-0"] == {"echo": {"a": 1}}
    refused = function({"python": "os:getcwd"}, SHARED)
    assert refused.status == "error" and refused.error["code"] == "CODE_NOT_ALLOWED"
    none = function({"code": ENV_CODE}, SecurityPolicy(code=CodePolicy.NONE))
    assert none.status == "error" and none.error["code"] == "CODE_NOT_ALLOWED"


def block(config: dict[str, Any]) -> BlockDef:
    return BlockDef(id="f", type="function", config={"output_schema": {}, **config})


def test_policy_diagnostics_at_apply_time() -> None:
    impl = Function()
    assert impl.policy_diagnostics(block({"python": "os:_exit"}), SecurityPolicy.local(),
                                   "spec.blocks.f") == []
    refused = impl.policy_diagnostics(block({"python": "os:_exit"}), SHARED, "spec.blocks.f")
    assert [d.code for d in refused] == ["CODE_NOT_ALLOWED"]
    assert refused[0].path == "spec.blocks.f.config.python"
    assert impl.policy_diagnostics(
        block({"python": "tests.engine.security_targets:spin"}), SHARED, "p") == []
    assert impl.policy_diagnostics(block({"code": "x"}), SHARED, "p") == []
    none = SecurityPolicy(code=CodePolicy.NONE)
    assert [d.code for d in impl.policy_diagnostics(block({"code": "x"}), none, "p")] == [
        "CODE_NOT_ALLOWED"]
