"""api_call under a host's policy: declared secrets, scrubbed outputs, egress, caps.

Loopback servers are allowlisted explicitly where a test needs to reach one; refused
destinations are refused before any connection.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from engine.contracts.policy import SECURITY_SERVICE, EgressPolicy, SecurityPolicy
from engine.testing import run_block
from tests.blocks.loopback import LoopbackServer, Reply

SHARED = SecurityPolicy.shared(egress_allowlist=("127.0.0.1",))


def call(config: dict[str, Any], policy: SecurityPolicy | None = None,
         env: dict[str, str] | None = None) -> Any:
    services = {SECURITY_SERVICE: policy} if policy is not None else None
    return run_block("api_call", {"method": "GET", **config}, {"input-json-0": {}},
                     services=services, env=env or {}, )


def test_personal_machine_leaves_unknown_placeholders_as_written() -> None:
    with LoopbackServer([Reply(200, {"ok": True})]) as server:
        run = call({"url": f"{server.url}/x?k=${{NOT_SET}}"})
        assert run.status == "completed"
        assert server.requests[0].path == "/x?k=${NOT_SET}"


def test_shared_server_refuses_undeclared_placeholders_before_sending() -> None:
    with LoopbackServer([Reply(200, {"ok": True})]) as server:
        run = call({"url": f"{server.url}/x?k=${{HOME}}"}, SHARED, env={"TOKEN": "abcd1234"})
        assert run.status == "error" and run.error["code"] == "UNDECLARED_SECRET"
        assert server.requests == []


def test_substituted_values_are_scrubbed_from_the_output_and_artifact() -> None:
    echo = Reply(200, {"seen": "Bearer abcd1234", "abcd1234": ["x abcd1234 y"]})
    with LoopbackServer([echo]) as server:
        run = call({"url": server.url, "headers": {"Authorization": "Bearer ${TOKEN}"}},
                   SHARED, env={"TOKEN": "abcd1234"})
        assert run.status == "completed", run.error
        assert server.requests[0].headers["Authorization"] == "Bearer abcd1234"
    assert run.outputs["output-json-0"] == {"seen": "Bearer [REDACTED]",
                                            "[REDACTED]": ["x [REDACTED] y"]}
    assert "abcd1234" not in json.dumps(run.artifact)


def test_shared_server_refuses_private_addresses() -> None:
    with LoopbackServer([Reply(200, {"ok": True})]) as server:
        run = call({"url": server.url}, SecurityPolicy.shared())
        assert run.status == "error" and run.error["code"] == "EGRESS_REFUSED"
        assert "loopback" in run.error["message"] and server.requests == []


def test_responses_are_capped() -> None:
    small = replace(SHARED, egress=EgressPolicy(restricted=True, allowlist=("127.0.0.1",),
                                                max_response_bytes=1000))
    with LoopbackServer([Reply(200, "y" * 4000)]) as server:
        run = call({"url": server.url}, small)
        assert run.status == "error" and run.error["code"] == "RESPONSE_TOO_LARGE"


def test_an_absurd_retry_after_is_not_honoured_as_is() -> None:
    with LoopbackServer([Reply(429, {"e": 1}, {"Retry-After": "inf"})]) as server:
        run = call({"url": server.url, "retry": {"max_attempts": 1}})
        assert run.status == "error" and run.error["code"] == "HTTP_429"
