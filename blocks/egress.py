"""Outbound HTTP for blocks: address rules, redirects hop by hop, bounded bodies.

:func:`send` makes one logical request with httpx and follows redirects itself, so that
every hop is checked the same way:

* **Addresses** (when :attr:`EgressPolicy.restricted`): the host is resolved first and
  every address it resolves to must be public (not loopback, private, link-local (cloud
  metadata lives there), multicast, reserved, unspecified, shared or otherwise not
  globally routable; IPv4-mapped IPv6 counts as its IPv4) unless the host name or the
  address is allowlisted. The connection then goes to the address that was checked (the
  URL carries the IP; ``Host`` and TLS SNI/certificate checks keep the name), so a DNS
  answer that changes between check and connect cannot redirect it. Environment proxies
  are ignored in restricted mode, since the proxy would connect on our behalf.
* **Redirects** (``max_redirects``): 303, and 301/302 after a POST, become GET without a
  body; 307/308 repeat the request. A hop to another origin (scheme, host or port) drops
  every header the block set (credentials included), or is refused when the policy says
  ``refuse``. Only http and https are followed.
* **Bodies**: at most ``max_response_bytes`` are read (a larger declared
  ``Content-Length`` is refused before reading).

Refusals raise :class:`EgressRefused` before any connection to the refused address is
made; :class:`ResponseTooLarge` when the body is too long.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import field
from typing import TYPE_CHECKING, Any

import anyio

from engine.contracts.frozen import record
from engine.contracts.policy import EgressPolicy

if TYPE_CHECKING:
    import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_SHARED = ipaddress.ip_network("100.64.0.0/10")


class EgressRefused(Exception):
    """The destination is not allowed; ``reason`` says why."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"{url}: {reason}")


class ResponseTooLarge(Exception):
    """The response body is longer than the policy allows."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"the response is larger than {limit:,} bytes")


@record
class Reply:
    """A final response: status, headers, body text, and the hops taken."""

    status_code: int
    headers: Mapping[str, str]
    text: str
    url: str
    redirects: list[dict[str, Any]] = field(default_factory=list)


def blocked_reason(address: Address) -> str | None:
    """Why ``address`` is not a public destination, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    checks = (("loopback", address.is_loopback), ("link-local", address.is_link_local),
              ("private", address.is_private), ("multicast", address.is_multicast),
              ("unspecified", address.is_unspecified), ("reserved", address.is_reserved),
              ("shared (carrier-grade NAT)", address in _SHARED),
              ("not globally routable", not address.is_global))
    return next((f"{address} is a {name} address" for name, hit in checks if hit), None)


def _allowlisted(policy: EgressPolicy, host: str, address: Address) -> bool:
    if policy.allows_host(host):
        return True
    for entry in policy.allowlist:
        if "/" in entry or _is_ip(entry):
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


async def resolve_checked(url: httpx.URL, policy: EgressPolicy) -> Address:
    """The address to connect to for ``url``, after checking every address of its host.

    Raises:
        EgressRefused: an address is not allowed, or the host does not resolve.
    """
    host = url.host
    port = url.port or (443 if url.scheme == "https" else 80)
    flags = socket.AI_NUMERICHOST if _is_ip(host) else 0
    try:
        infos = await anyio.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM,
                                        flags=flags)
    except OSError as exc:
        raise EgressRefused(str(url), f"cannot resolve {host!r} ({exc})") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in addresses:
        reason = blocked_reason(address)
        if reason and not _allowlisted(policy, host, address):
            raise EgressRefused(str(url), f"{reason}; only public addresses are allowed "
                                "unless the server allowlists them")
    if not addresses:
        raise EgressRefused(str(url), f"{host!r} has no address")
    return addresses[0]


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80)


async def _pinned(client: httpx.AsyncClient, method: str, url: httpx.URL,
                  headers: Mapping[str, str], content: bytes | None,
                  policy: EgressPolicy) -> httpx.Request:
    if not policy.restricted:
        return client.build_request(method, url, headers=headers, content=content)
    address = await resolve_checked(url, policy)
    literal = f"[{address}]" if address.version == 6 else str(address)
    host_header = url.netloc.decode("ascii")
    request = client.build_request(method, url.copy_with(host=literal.strip("[]")),
                                   headers={**headers, "Host": host_header}, content=content,
                                   extensions={"sni_hostname": url.host}
                                   if url.scheme == "https" else {})
    return request


async def _read_bounded(response: httpx.Response, limit: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ResponseTooLarge(limit)
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body.extend(chunk)
        if len(body) > limit:
            raise ResponseTooLarge(limit)
    return bytes(body)


def _next_hop(method: str, status: int, content: bytes | None) -> tuple[str, bytes | None]:
    if status == 303 or (status in (301, 302) and method == "POST"):
        return ("GET" if method != "HEAD" else "HEAD"), None
    return method, content


async def send(method: str, url: str, *, headers: Mapping[str, str],
               content: bytes | None, timeout: float, policy: EgressPolicy,
               transport: httpx.AsyncBaseTransport | None = None) -> Reply:
    """Send the request, follow redirects, and read the body (module docstring).

    Args:
        method, url, headers, content: the first request (``headers`` are the block's).
        timeout: httpx timeout, seconds.
        policy: the egress rules.
        transport: an httpx transport (tests); default: a real connection.

    Returns:
        The final response.

    Raises:
        EgressRefused: a hop goes where the policy forbids.
        ResponseTooLarge: the final body is too long.
        httpx.HTTPError: transport failures, as httpx raises them.
    """
    import httpx

    target = httpx.URL(url)
    block_headers = {k.lower() for k in headers}
    hops: list[dict[str, Any]] = []
    current_headers = dict(headers)
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False,
                                 trust_env=not policy.restricted, transport=transport) as client:
        for _hop in range(policy.max_redirects + 1):
            if target.scheme not in ("http", "https"):
                raise EgressRefused(str(target), "only http and https URLs are followed")
            request = await _pinned(client, method, target, current_headers, content, policy)
            response = await client.send(request, stream=True)
            try:
                location = response.headers.get("location")
                if not (response.is_redirect and location):
                    body = await _read_bounded(response, policy.max_response_bytes)
                    text = body.decode(response.encoding or "utf-8", errors="replace")
                    return Reply(status_code=response.status_code, headers=response.headers,
                                 text=text, url=str(target), redirects=hops)
            finally:
                await response.aclose()
            following = target.join(location)
            hops.append({"status": response.status_code, "from": str(target),
                         "to": str(following)})
            if _origin(following) != _origin(target):
                if policy.cross_origin_redirects == "refuse":
                    raise EgressRefused(str(following), "redirects to another origin are "
                                        "refused by the server's policy")
                current_headers = {k: v for k, v in current_headers.items()
                                   if k.lower() not in block_headers}
            method, content = _next_hop(method, response.status_code, content)
            if content is None:
                current_headers = {k: v for k, v in current_headers.items()
                                   if k.lower() != "content-type"}
            target = following
    raise EgressRefused(url, f"more than {policy.max_redirects} redirects")
