"""What a shared ``stepwell serve`` decides at start-up, and enforces at its edges.

* :func:`choose_policy`: the code policy is a server setting. One organization on a
  loopback address is a personal server: code runs as it does from the CLI. Several
  organizations, or any other address, make a shared server: ``python:`` references
  only from an operator allowlist, ``function`` code only in confined workers,
  ``api_call`` only to public addresses (plus an allowlist). ``--code`` overrides.
* :func:`check_keys`: a server reachable from other machines refuses keys shorter than
  :data:`MIN_PUBLIC_KEY_LENGTH` characters.
* :func:`load_secrets`: the per-organization secrets file; each run sees its own
  organization's secrets as its environment, and nothing of the server's.
* :func:`policy_problems`: the apply-time refusal of workflows the policy forbids,
  asked of each block type (``BlockType.policy_diagnostics``).
* :class:`RedactQueryKeys`: a logging filter that keeps ``access_token`` out of logs.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from engine.contracts.errors import Diagnostic, UsageError
from engine.contracts.policy import CodePolicy, SecurityPolicy
from engine.server.config import KEYS_ENV, is_loopback

MIN_PUBLIC_KEY_LENGTH = 32
CODE_MODES = ("auto", "open", "sandboxed", "none")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: ``key=value`` pairs of a query string as they appear in a log line.
_PAIR = re.compile(r"(?P<key>[^\s?&;=\"']+)=(?P<value>[^&;\s\"']*)")
_SECRET_KEYS = frozenset({"access_token"})


def check_keys(host: str, keys: Mapping[str, str]) -> None:
    """Refuse short keys on a non-loopback bind.

    Raises:
        UsageError: a key is shorter than :data:`MIN_PUBLIC_KEY_LENGTH` characters.
    """
    if is_loopback(host):
        return
    short = sum(1 for key in keys if len(key) < MIN_PUBLIC_KEY_LENGTH)
    if short:
        raise UsageError(
            f"Refusing to listen on {host}: {short} API key(s) in STEPWELL_API_KEYS are "
            f"shorter than {MIN_PUBLIC_KEY_LENGTH} characters, which is guessable from the "
            "network. Make long random keys (e.g. `python -c \"import secrets; "
            "print(secrets.token_urlsafe(32))\"`) or bind 127.0.0.1.")


def is_shared(host: str, keys: Mapping[str, str]) -> bool:
    """True when more than one organization, or other machines, can reach the server."""
    return len(set(keys.values())) > 1 or not is_loopback(host)


def choose_policy(host: str, keys: Mapping[str, str], *, code: str = "auto",
                  allow_python: tuple[str, ...] = (), egress_allow: tuple[str, ...] = (),
                  worker_user: str | None = None) -> SecurityPolicy:
    """The policy ``stepwell serve`` runs with (see the module docstring).

    Args:
        host: the bind address.
        keys: key -> organization.
        code: ``auto``, ``open``, ``sandboxed`` or ``none``.
        allow_python: ``module:function`` patterns allowed in ``python:`` references.
        egress_allow: hosts and networks ``api_call`` may reach on a shared server.
        worker_user: the user confined workers run as when the server runs as root.

    Raises:
        UsageError: an unknown code mode.
    """
    return policy_for(is_shared(host, keys), code=code, allow_python=allow_python,
                      egress_allow=egress_allow, worker_user=worker_user)


def policy_for(shared: bool, *, code: str = "auto", allow_python: tuple[str, ...] = (),
               egress_allow: tuple[str, ...] = (), worker_user: str | None = None
               ) -> SecurityPolicy:
    """A shared or personal host's policy (``stepwell worker --shared`` runs the queued
    runs of a shared server under the same rules as the server).

    Raises:
        UsageError: an unknown code mode.
    """
    if code not in CODE_MODES:
        raise UsageError(f"--code {code!r} is not one of {', '.join(CODE_MODES)}.")
    mode = (CodePolicy.SANDBOXED if shared else CodePolicy.OPEN) if code == "auto" \
        else CodePolicy(code)
    if shared or mode is CodePolicy.SANDBOXED:
        return SecurityPolicy.shared(code=mode, python_allowlist=allow_python,
                                     egress_allowlist=egress_allow, worker_user=worker_user)
    return SecurityPolicy(code=mode, python_allowlist=allow_python)


def describe_policy(policy: SecurityPolicy) -> str:
    """One start-up line saying who may run code and where api_call may go."""
    code = {CodePolicy.OPEN: "code runs as this user (python: references and function code)",
            CodePolicy.SANDBOXED: "function code runs in confined workers; python: only "
            + (f"from the allowlist ({', '.join(policy.python_allowlist)})"
               if policy.python_allowlist else "refused (no allowlist)"),
            CodePolicy.NONE: "code blocks are refused (--code none)"}[policy.code]
    egress = ("api_call reaches public addresses only"
              + (f" (and {', '.join(policy.egress.allowlist)})" if policy.egress.allowlist
                 else "")) if policy.egress.restricted else "api_call reaches any address"
    return f"code policy {policy.code.value}: {code}; {egress}"


def load_secrets(path: str | Path | None) -> dict[str, dict[str, str]]:
    """Read ``{"org_id": {"NAME": "value", ...}, ...}`` (JSON).

    Raises:
        UsageError: unreadable file, not that shape, or a name that is not an identifier.
    """
    if path is None:
        return {}
    try:
        raw: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"Cannot read the secrets file {path}: {exc}. Write JSON like "
                         '{"org_a": {"API_TOKEN": "..."}}.') from None
    if not isinstance(raw, dict):
        raise UsageError(f"The secrets file {path} must hold a JSON object keyed by "
                         "organization id.")
    secrets: dict[str, dict[str, str]] = {}
    for org, values in raw.items():
        if not isinstance(values, dict) or not all(
                isinstance(k, str) and _NAME.match(k) and isinstance(v, str)
                for k, v in values.items()):
            raise UsageError(f"Secrets of {org!r} in {path} must map NAME (letters, digits, "
                             "underscores) to a string value.")
        secrets[str(org)] = dict(values)
    return secrets


def run_environment(policy: SecurityPolicy, secrets: Mapping[str, Mapping[str, str]],
                    environ: Mapping[str, str]) -> Callable[[str], dict[str, str]]:
    """The environment of each organization's runs (``Engine(env=...)``).

    A shared server gives a run its organization's secrets and nothing else; a personal
    one gives the server's environment (without ``STEPWELL_API_KEYS``) plus them.
    """
    if policy.declared_secrets_only:
        return lambda org: dict(secrets.get(org, {}))
    base = {k: v for k, v in environ.items() if k != KEYS_ENV}
    return lambda org: {**base, **secrets.get(org, {})}


def policy_problems(workflow: Any, registry: Any, policy: SecurityPolicy) -> list[Diagnostic]:
    """What the policy forbids in ``workflow`` (empty when it may run).

    Args:
        workflow: an :class:`engine.definition.Workflow`.
        registry: the block registry (each type judges its own config).
        policy: the server's policy.
    """
    problems: list[Diagnostic] = []
    for block in workflow.blocks:
        impl = registry.get(block.type)
        problems += impl.policy_diagnostics(block, policy, block.path or f"spec.blocks.{block.id}")
    return problems


def _decoded_key(key: str) -> str:
    """A query key as the server reads it: percent-decoded (repeatedly), lower case."""
    for _ in range(3):
        decoded = unquote_plus(key)
        if decoded == key:
            break
        key = decoded
    return key.strip().lower()


def _redact_pair(match: re.Match[str]) -> str:
    if _decoded_key(match["key"]) in _SECRET_KEYS:
        return f"{match['key']}=[REDACTED]"
    return match.group()


def redact(text: str) -> str:
    """``text`` with every ``access_token=...`` value replaced, whatever the spelling of the
    key (``ACCESS_TOKEN``, percent-encoded ``access%5Ftoken``): keys are decoded first."""
    if "=" not in text:
        return text
    return _PAIR.sub(_redact_pair, text)


class RedactQueryKeys(logging.Filter):
    """Rewrites log records so ``access_token`` query values never reach a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the message and its arguments; always keep the record."""
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def install_log_redaction() -> None:
    """Attach :class:`RedactQueryKeys` to uvicorn's loggers (idempotent)."""
    for name in ("uvicorn.access", "uvicorn.error", "uvicorn"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactQueryKeys) for f in logger.filters):
            logger.addFilter(RedactQueryKeys())
