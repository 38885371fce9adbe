"""Server settings: API keys, organizations, the body cap, file-path documents.

``STEPWELL_API_KEYS`` is a comma-separated list of ``key`` or ``key:org_id`` entries; a
key without an organization belongs to ``org_local`` (the organization of runs started
from the CLI). With no key configured, ``stepwell serve`` makes one at start and prints
it, and refuses to listen on anything but a loopback address.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import field

from engine.contracts.errors import UsageError
from engine.contracts.frozen import record
from engine.contracts.policy import SecurityPolicy

DEFAULT_ORG = "org_local"
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
KEYS_ENV = "STEPWELL_API_KEYS"


@record
class ServerConfig:
    """How the HTTP API behaves.

    Attributes:
        api_keys: key -> organization id. Requests must carry one of these keys.
        max_body_bytes: larger request bodies are refused with 413.
        allow_file_paths: accept run documents given as paths on the server's machine
            (``file:///...`` or an absolute path as the document ``url``). Off by default:
            anyone holding a key could otherwise read any file the server can.
        generated_key: the key made at start when none was configured (printed once).
        policy: who may run code, and where ``api_call`` may go (see
            :mod:`engine.server.security`; default: a personal server's).
        secrets: organization -> its secrets (``${NAME}`` values, secret mounts).
        orphan_sweep_s: seconds between two looks for runs whose owner died, while the
            server is up (0: only at start).
    """

    api_keys: Mapping[str, str] = field(default_factory=dict)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    allow_file_paths: bool = False
    generated_key: str | None = None
    policy: SecurityPolicy = field(default_factory=SecurityPolicy.local)
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    orphan_sweep_s: float = 5.0


def parse_api_keys(text: str | None) -> dict[str, str]:
    """``"k1,k2:org_b"`` -> ``{"k1": "org_local", "k2": "org_b"}``.

    Raises:
        UsageError: an entry is empty on one side of ``:``, or a key is listed twice
            for different organizations.
    """
    keys: dict[str, str] = {}
    for raw in (text or "").split(","):
        entry = raw.strip()
        if not entry:
            continue
        key, sep, org = entry.partition(":")
        key, org = key.strip(), org.strip()
        if not key or (sep and not org):
            raise UsageError(
                f"{KEYS_ENV} entry {entry!r} is malformed. Write `key` or `key:org_id`, "
                "entries separated by commas.")
        org = org or DEFAULT_ORG
        if keys.get(key, org) != org:
            raise UsageError(f"{KEYS_ENV} gives one key two organizations ({keys[key]}, "
                             f"{org}). Use a distinct key per organization.")
        keys[key] = org
    return keys


def generate_api_key() -> str:
    """A fresh random key (``sk_local_`` + 32 url-safe characters)."""
    return "sk_local_" + secrets.token_urlsafe(24)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def server_config(host: str, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                  allow_file_paths: bool = False,
                  environ: Mapping[str, str] | None = None) -> ServerConfig:
    """The configuration ``stepwell serve`` starts with.

    Keys come from ``STEPWELL_API_KEYS``; when there are none, one is generated for
    ``org_local``, which is only allowed on a loopback host.

    Raises:
        UsageError: a malformed key list, or a non-loopback host without configured keys.
    """
    env = os.environ if environ is None else environ
    keys = parse_api_keys(env.get(KEYS_ENV))
    generated = None
    if not keys:
        if not is_loopback(host):
            raise UsageError(
                f"Refusing to listen on {host} without API keys: anyone who can reach it "
                f"could run code on this machine. Set {KEYS_ENV}=key[:org_id],... or bind "
                "127.0.0.1.")
        generated = generate_api_key()
        keys = {generated: DEFAULT_ORG}
    return ServerConfig(api_keys=keys, max_body_bytes=max_body_bytes,
                        allow_file_paths=allow_file_paths, generated_key=generated)
