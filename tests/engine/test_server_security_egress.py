"""A shared ``stepwell serve`` under attack by org B's key holder: ``api_call``.

``127.0.0.2`` is allowlisted for api_call (the test's upstream servers listen there);
everything else that is not public is refused before any connection is made. Every
byte goes to loopback addresses.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.engine.security_server import (
    KEY_A,
    KEY_B,
    SECRET_A,
    SECRET_B,
    SERVER_ENV_SECRET,
    Org,
    SharedServer,
    Upstream,
    api_workflow,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedServer]:
    with SharedServer(tmp_path_factory.mktemp("egress")) as live:
        yield live


@pytest.fixture(scope="module")
def b(server: SharedServer) -> Org:
    return server.org("b")


@pytest.fixture()
def upstream() -> Iterator[Upstream]:
    with Upstream() as up:
        yield up


def step_of(org: Org, run: dict[str, Any]) -> dict[str, Any]:
    return org.step(run["id"], "work")


def error_code(org: Org, run: dict[str, Any]) -> str:
    step = step_of(org, run)
    assert step["lifecycle"]["status"] == "error", step
    return str(step["lifecycle"]["details"]["error_code"])


def test_placeholders_resolve_from_declared_secrets_only(b: Org, upstream: Upstream) -> None:
    for name in ("STEPWELL_API_KEYS", "PROVIDER_SECRET", "A_TOKEN", "HOME"):
        run = b.run(api_workflow(f"{upstream.url}/echo?k=${{{name}}}"),
                    json_inputs={"data": {}})
        assert error_code(b, run) == "UNDECLARED_SECRET"
    assert upstream.requests == []


def test_substituted_secrets_never_reach_the_database(b: Org, upstream: Upstream,
                                                      server: SharedServer) -> None:
    run = b.run(api_workflow(f"{upstream.url}/echo", headers={"X-Token": "${B_TOKEN}"}),
                json_inputs={"data": {}})
    step = step_of(b, run)
    assert step["lifecycle"]["status"] == "completed", step
    assert upstream.requests[0]["headers"]["X-Token"] == SECRET_B  # it was sent
    assert SECRET_B not in json.dumps(step)  # outputs, artifact, headers: all scrubbed
    assert "[REDACTED]" in json.dumps(step["handle_outputs"])
    assert SECRET_B.encode() not in server.db.read_bytes()


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://192.168.1.1/",
    "http://[::1]:9/", "http://localhost:9/", "http://[fd00:ec2::254]/",
    "http://0.0.0.0:9/"])
def test_private_and_metadata_addresses_are_refused(b: Org, url: str) -> None:
    assert error_code(b, b.run(api_workflow(url), json_inputs={"data": {}})) == \
        "EGRESS_REFUSED"


def test_the_server_itself_is_not_reachable(b: Org, server: SharedServer) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        for url in (f"http://127.0.0.1:{port}/", f"{server.url}/v1/workflows/runs"):
            run = b.run(api_workflow(url), json_inputs={"data": {}})
            assert error_code(b, run) == "EGRESS_REFUSED"
        listener.settimeout(0.3)
        with pytest.raises(TimeoutError):
            listener.accept()


def test_redirects_are_checked_hop_by_hop(b: Org, upstream: Upstream,
                                          server: SharedServer) -> None:
    to_server = f"{upstream.url}/redirect?to={server.url}/v1/workflows/runs"
    assert error_code(b, b.run(api_workflow(to_server), json_inputs={"data": {}})) == \
        "EGRESS_REFUSED"
    with Upstream() as other:
        hop = f"{upstream.url}/redirect?status=307&to={other.url}/echo"
        run = b.run(api_workflow(hop, headers={"X-Token": "${B_TOKEN}",
                                              "Authorization": "Bearer ${B_TOKEN}"}),
                    json_inputs={"data": {}})
        assert step_of(b, run)["lifecycle"]["status"] == "completed"
        received = other.requests[0]["headers"]
        assert "X-Token" not in received and "Authorization" not in received
        assert SECRET_B not in json.dumps(received)


def test_a_huge_response_is_refused_not_stored(b: Org, upstream: Upstream,
                                               server: SharedServer) -> None:
    size = server.db.stat().st_size
    run = b.run(api_workflow(f"{upstream.url}/big?mb=30"), json_inputs={"data": {}})
    assert error_code(b, run) == "RESPONSE_TOO_LARGE"
    assert server.db.stat().st_size - size < 5 * 1024 * 1024


def test_retry_after_is_capped_by_the_retry_policy(b: Org, upstream: Upstream) -> None:
    started = time.monotonic()
    run = b.run(api_workflow(f"{upstream.url}/limited",
                             retry={"max_attempts": 2, "initial_interval_s": 0.1,
                                    "max_interval_s": 1}), json_inputs={"data": {}})
    assert step_of(b, run)["lifecycle"]["status"] == "completed"
    assert time.monotonic() - started < 20


def test_no_key_or_secret_ever_leaves_in_a_request(upstream: Upstream) -> None:
    seen = json.dumps(upstream.requests)
    assert not any(s in seen for s in (KEY_A, KEY_B, SECRET_A, SERVER_ENV_SECRET))


def test_both_organizations_are_still_served(server: SharedServer) -> None:
    assert server.proc is not None and server.proc.poll() is None
    server.org("a").alive()
    server.org("b").alive()
