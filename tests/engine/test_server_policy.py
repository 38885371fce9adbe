"""engine.server.security: the start-up decisions of ``stepwell serve``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from engine.contracts.errors import UsageError
from engine.contracts.policy import CodePolicy
from engine.definition import Workflow
from engine.server.security import (
    RedactQueryKeys,
    check_keys,
    choose_policy,
    describe_policy,
    load_secrets,
    policy_problems,
    redact,
)
from tests.engine.security_server import python_workflow

LONG = "k" * 32


def test_one_organization_on_loopback_is_personal() -> None:
    policy = choose_policy("127.0.0.1", {"k1": "org_a", "k2": "org_a"})
    assert policy.code is CodePolicy.OPEN and not policy.confine_workers
    assert not policy.egress.restricted and not policy.declared_secrets_only


@pytest.mark.parametrize(("host", "keys"), [
    ("127.0.0.1", {"k1": "org_a", "k2": "org_b"}), ("0.0.0.0", {LONG: "org_a"}),
    ("192.168.1.4", {LONG: "org_a"})])
def test_several_organizations_or_a_public_bind_are_shared(host: str, keys: dict[str, str]
                                                          ) -> None:
    policy = choose_policy(host, keys, allow_python=("m:*",), egress_allow=("10.0.0.0/8",))
    assert policy.code is CodePolicy.SANDBOXED and policy.confine_workers
    assert policy.egress.restricted and policy.egress.allowlist == ("10.0.0.0/8",)
    assert policy.declared_secrets_only and policy.python_allowlist == ("m:*",)
    assert "code policy sandboxed" in describe_policy(policy)


def test_code_override() -> None:
    assert choose_policy("127.0.0.1", {"k": "o"}, code="none").code is CodePolicy.NONE
    shared_open = choose_policy("127.0.0.1", {"a": "x", "b": "y"}, code="open")
    assert shared_open.code is CodePolicy.OPEN and shared_open.confine_workers
    with pytest.raises(UsageError, match="--code"):
        choose_policy("127.0.0.1", {"k": "o"}, code="maybe")


def test_short_keys_are_refused_off_loopback() -> None:
    check_keys("127.0.0.1", {"short": "o"})
    check_keys("0.0.0.0", {LONG: "o"})
    with pytest.raises(UsageError, match="shorter than 32 characters"):
        check_keys("0.0.0.0", {LONG: "o", "short": "p"})


def test_secrets_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps({"org_a": {"TOKEN": "t"}}))
    assert load_secrets(path) == {"org_a": {"TOKEN": "t"}}
    assert load_secrets(None) == {}
    for bad in ("[]", '{"org_a": {"bad name": "x"}}', '{"org_a": {"N": 1}}', "{"):
        path.write_text(bad)
        with pytest.raises(UsageError, match="secrets"):
            load_secrets(path)


def test_policy_problems_ask_each_block_type() -> None:
    from blocks.registry import default_registry

    workflow = Workflow.from_yaml(python_workflow("os:_exit"))
    shared = choose_policy("127.0.0.1", {"a": "x", "b": "y"})
    problems = policy_problems(workflow, default_registry(), shared)
    assert [p.code for p in problems] == ["CODE_NOT_ALLOWED"]
    personal = choose_policy("127.0.0.1", {"a": "x"})
    assert policy_problems(workflow, default_registry(), personal) == []


def test_access_tokens_are_redacted_from_log_records() -> None:
    assert redact("GET /v1/x?access_token=sk_1&limit=2") == "GET /v1/x?access_token=[REDACTED]&limit=2"
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", "/v1/runs?ACCESS_TOKEN=secret", "1.1", 200),
                               None)
    assert RedactQueryKeys().filter(record)
    assert "secret" not in record.getMessage()


def test_workers_of_a_shared_server_take_its_rules() -> None:
    from engine.server.security import policy_for

    shared = policy_for(True, allow_python=("m:*",), egress_allow=("10.0.0.0/8",))
    assert shared == choose_policy("0.0.0.0", {LONG: "o"}, allow_python=("m:*",),
                                   egress_allow=("10.0.0.0/8",))
    assert shared.confine_workers and shared.declared_secrets_only
    assert policy_for(False) == choose_policy("127.0.0.1", {"k": "o"})
