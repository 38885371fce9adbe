"""blocks.egress: address rules after resolution, redirects checked per hop, bounded bodies.

Every request here goes to 127.0.0.1; refused destinations are refused before any
connection (a transport that fails the test when used proves it).
"""

from __future__ import annotations

import ipaddress

import anyio
import httpx
import pytest

from blocks.egress import EgressRefused, ResponseTooLarge, blocked_reason, send
from engine.contracts.policy import EgressPolicy
from tests.blocks.loopback import LoopbackServer, Reply

RESTRICTED = EgressPolicy(restricted=True)


class NoConnection(httpx.AsyncBaseTransport):
    """A transport that fails the test if anything tries to connect."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"a connection to {request.url} was attempted")


def call(url: str, policy: EgressPolicy, *, headers: dict[str, str] | None = None,
         transport: httpx.AsyncBaseTransport | None = None, method: str = "GET") -> object:
    return anyio.run(lambda: send(method, url, headers=headers or {}, content=None, timeout=5,
                                  policy=policy, transport=transport))


@pytest.mark.parametrize("address", [
    "127.0.0.1", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
    "fe80::1", "fd00:ec2::254", "224.0.0.1", "0.0.0.0", "100.100.100.200", "::ffff:127.0.0.1",
    "240.0.0.1"])
def test_non_public_addresses_have_a_reason(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address))


def test_public_addresses_pass() -> None:
    assert blocked_reason(ipaddress.ip_address("93.184.215.14")) is None
    assert blocked_reason(ipaddress.ip_address("2606:4700::1111")) is None


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/", "http://[::1]:9/", "http://10.0.0.1/", "http://169.254.169.254/latest",
    "http://192.168.0.10:8080/x", "http://[fd00:ec2::254]/", "http://localhost:9/",
    "http://2130706433/", "http://[::ffff:169.254.169.254]/"])
def test_restricted_refuses_before_connecting(url: str) -> None:
    with pytest.raises(EgressRefused):
        call(url, RESTRICTED, transport=NoConnection())


def test_allowlist_by_network_and_by_name() -> None:
    with LoopbackServer([Reply(200, {"ok": True})]) as server:
        reply = call(server.url, EgressPolicy(restricted=True, allowlist=("127.0.0.0/8",)))
        assert reply.status_code == 200  # type: ignore[attr-defined]
        by_name = server.url.replace("127.0.0.1", "localhost")
        reply = call(by_name, EgressPolicy(restricted=True, allowlist=("localhost",)))
        assert reply.status_code == 200  # type: ignore[attr-defined]
        assert server.requests[-1].headers["Host"].startswith("localhost:")


def test_open_policy_reaches_loopback() -> None:
    with LoopbackServer([Reply(200, {"ok": True})]) as server:
        assert call(server.url, EgressPolicy()).text == '{"ok": true}'  # type: ignore[attr-defined]


def test_every_redirect_hop_is_checked() -> None:
    policy = EgressPolicy(restricted=True, allowlist=("127.0.0.1",))
    with LoopbackServer([Reply(302, None, {"Location": "http://127.0.0.2:9/next"})]) as server:
        with pytest.raises(EgressRefused, match="127.0.0.2"):
            call(server.url, policy)
        assert len(server.requests) == 1


def test_cross_origin_redirect_drops_the_block_headers() -> None:
    with LoopbackServer([Reply(200, {"at": "b"})]) as target:
        with LoopbackServer([Reply(307, None, {"Location": f"{target.url}/b"})]) as first:
            reply = call(f"{first.url}/a", EgressPolicy(), headers={"X-Token": "s3cret-token"})
            assert reply.status_code == 200 and reply.redirects  # type: ignore[attr-defined]
            assert first.requests[0].headers.get("X-Token") == "s3cret-token"
            assert "X-Token" not in target.requests[0].headers
            refuse = EgressPolicy(cross_origin_redirects="refuse")
            with pytest.raises(EgressRefused, match="another origin"):
                call(f"{first.url}/a", refuse, headers={"X-Token": "s3cret-token"})
        assert len(target.requests) == 1


def test_same_origin_redirect_keeps_headers_and_303_becomes_get() -> None:
    with LoopbackServer([Reply(303, None, {"Location": "/done"}), Reply(200, [1])]) as server:
        reply = anyio.run(lambda: send("POST", server.url, headers={"X-Token": "t0ken"},
                                       content=b"{}", timeout=5, policy=EgressPolicy()))
        assert reply.status_code == 200
        assert [r.method for r in server.requests] == ["POST", "GET"]
        assert server.requests[1].headers.get("X-Token") == "t0ken"


def test_too_many_redirects() -> None:
    with LoopbackServer([Reply(302, None, {"Location": "/again"})]) as server:
        with pytest.raises(EgressRefused, match="redirects"):
            call(server.url, EgressPolicy(max_redirects=3))
        assert len(server.requests) == 4


def test_bodies_are_capped() -> None:
    with LoopbackServer([Reply(200, b"x" * 5000)]) as server:
        with pytest.raises(ResponseTooLarge):
            call(server.url, EgressPolicy(max_response_bytes=1000))
        assert call(server.url, EgressPolicy(max_response_bytes=5000)).text == "x" * 5000  # type: ignore[attr-defined]
