"""The ``api_call`` block: one HTTP request per attempt, every attempt recorded.

``input-json-0 -> output-json-0``. ``url`` and header values may hold ``${NAME}``,
replaced from the run environment (and ``mounts.secrets`` names); on a personal machine
an unknown name is left as written, on a shared server (the policy's
``declared_secrets_only``) the run environment holds only the organization's declared
secrets and an unknown name fails the step (``UNDECLARED_SECRET``) before anything is
sent. For POST, PUT and PATCH the body is the input JSON after ``field_mappings``
(rename ``source -> target``; a mapping beats a passthrough key of the same name;
sources in sorted order) and the ``request_schema`` filter (top-level keys in its
``properties`` only), sent as ``application/json``; other verbs send no body. An
``Idempotency-Key`` header (``sha256(run_id, step_id, attempt)[:32]``) lets the server
drop duplicates when an in-flight step runs again after a crash.

Sending goes through :func:`blocks.egress.send` under the policy's egress rules:
redirects are followed hop by hop (a hop to another origin drops the block's headers),
the body is read up to ``max_response_bytes`` (10 MB; ``RESPONSE_TOO_LARGE`` past it),
and on a shared server only public addresses (plus an allowlist) are reached
(``EGRESS_REFUSED``, before any connection).

Outcome: status 200-399 -> the output is the parsed JSON body (an empty body is
``null``, a non-JSON body its text), validated against ``output_schema``. 429 ->
quota error with the ``Retry-After`` delay (the retry policy caps the wait at its
``max_interval_s``); 408 and 5xx, connection failures and timeouts -> transient
(retried by the engine); other statuses -> permanent.

Artifact ``api_call_invocation``: ``{attempts: [...], error}`` with every attempt so far
(the runner retries by calling :meth:`ApiCall.run` again; the block keeps each step's
attempts in memory until it succeeds or fails for good, so after ``runs resume`` in a new
process the list starts again; a failed step's attempts are in its error context).
Secrets never reach the database: ``Authorization``, ``Cookie``, ``Set-Cookie``,
``X-Api-Key``, ``Proxy-Authorization`` and every header whose value came from ``${...}``
are ``[REDACTED]``; the recorded URL is the template (placeholders unexpanded);
substituted values are scrubbed from the output, recorded bodies, headers, redirects
and error messages. Each attempt also writes a request/response summary of that scrubbed
record to the step's log (:mod:`blocks.http_log`; ``stepwell steps logs``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from blocks.base import BlockType, StrictConfig
from blocks.control import schema_diagnostics, schema_errors, who
from blocks.egress import EgressRefused, ResponseTooLarge, send
from blocks.function import Mounts
from blocks.http_log import log_attempt
from engine.contracts.blocks import BlockContext, BlockResult, HandleKind
from engine.contracts.errors import (
    BlockError,
    Diagnostic,
    PermanentError,
    QuotaError,
    TransientError,
)
from engine.contracts.policy import EgressPolicy, policy_of
from engine.contracts.values import Payload

if TYPE_CHECKING:
    from engine.contracts.definition import BlockDef

_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SENSITIVE = frozenset({"authorization", "cookie", "set-cookie", "x-api-key",
                        "proxy-authorization"})
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_BODY_METHODS = ("POST", "PUT", "PATCH")
_BODY_LIMIT = 64 * 1024
_RETRIED = "transient: the engine retries it per the retry policy"
_HISTORY_LIMIT = 1024
REDACTED = "[REDACTED]"


class ApiCallConfig(StrictConfig):
    """Config of api_call (see the module docstring)."""

    method: str = "POST"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float = 180.0
    request_schema: dict[str, Any] | None = None
    field_mappings: dict[str, str] = Field(default_factory=dict)
    output_schema: dict[str, Any] | None = None
    mounts: Mounts | None = None

    @field_validator("method")
    @classmethod
    def _upper(cls, value: str) -> str:
        value = value.upper()
        if value not in _METHODS:
            raise ValueError(f"method must be one of {', '.join(_METHODS)}")
        return value

    @field_validator("timeout_seconds")
    @classmethod
    def _positive(cls, value: float) -> float:
        return value if value > 0 else 180.0


class _Request:
    """The request of one attempt: the real values and their redacted record.

    With ``declared_only`` (a shared server), a ``${NAME}`` that is not among the run's
    declared secrets fails the attempt instead of being sent as written.
    """

    def __init__(self, ctx: BlockContext, config: ApiCallConfig, *,
                 declared_only: bool = False) -> None:
        env = dict(ctx.env)
        for secret in config.mounts.secrets if config.mounts else []:
            if secret.env in env:
                env.setdefault(secret.name, env[secret.env])
        self.ctx = ctx
        self.declared_only = declared_only
        self.secrets: set[str] = set()
        self.url, _ = self._fill(config.url, env)
        self.headers: dict[str, str] = {}
        self.recorded_headers: dict[str, str] = {}
        for name, template in config.headers.items():
            value, substituted = self._fill(template, env)
            self.headers[name] = value
            hide = substituted or name.lower() in _SENSITIVE
            self.recorded_headers[name] = REDACTED if hide else value

    def _fill(self, template: str, env: Mapping[str, str]) -> tuple[str, bool]:
        used = False

        def sub(m: re.Match[str]) -> str:
            nonlocal used
            if m[1] not in env:
                if self.declared_only:
                    raise PermanentError(
                        f"{who(self.ctx)}: ${{{m[1]}}} is not a secret of this organization, "
                        "so nothing was sent. Add it to the organization's secrets file on "
                        "the server (placeholders never read the server's environment).",
                        code="UNDECLARED_SECRET")
                return m[0]
            used = True
            if len(env[m[1]]) >= 4:
                self.secrets.add(env[m[1]])
            return env[m[1]]

        return _REF.sub(sub, template), used

    def scrub(self, text: str) -> str:
        """``text`` with every substituted value replaced by ``[REDACTED]``."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text

    def scrub_value(self, value: Any) -> Any:
        """A JSON value with every substituted value scrubbed from its strings and keys."""
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, list):
            return [self.scrub_value(v) for v in value]
        if isinstance(value, dict):
            return {self.scrub(str(k)): self.scrub_value(v) for k, v in value.items()}
        return value


def request_body(ctx: BlockContext, config: ApiCallConfig, data: Any) -> Any:
    """The input after ``field_mappings`` and the ``request_schema`` filter.

    Raises:
        PermanentError: mappings or a request schema on an input that is not an object.
    """
    if not isinstance(data, Mapping):
        if config.field_mappings or config.request_schema:
            raise PermanentError(
                f"{who(ctx)}: field_mappings and request_schema need a JSON object input, got "
                f"{type(data).__name__}. Reshape the input upstream.", code="BODY_NOT_OBJECT")
        return data
    body = {k: v for k, v in data.items() if k not in config.field_mappings}
    for source in sorted(config.field_mappings):
        if source in data:
            body[config.field_mappings[source]] = data[source]
    props = (config.request_schema or {}).get("properties")
    if isinstance(props, Mapping):
        body = {k: v for k, v in body.items() if k in props}
    return body


def idempotency_key(run_id: str, step_id: str, attempt: int) -> str:
    """``sha256("run_id:step_id:attempt")`` hex, first 32 characters."""
    return hashlib.sha256(f"{run_id}:{step_id}:{attempt}".encode()).hexdigest()[:32]


def parse_body(text: str) -> Any:
    """JSON when it parses, None when empty, else the text itself."""
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _record_headers(headers: Mapping[str, str], scrub: Any) -> dict[str, str]:
    return {k: REDACTED if k.lower() in _SENSITIVE else scrub(v) for k, v in headers.items()}


class ApiCall(BlockType):
    """Calls an HTTP endpoint with the input JSON (see the module docstring)."""

    type_name = "api_call"
    config_model = ApiCallConfig
    operation = "api_call_invocation"
    runs_unfed = True  # a request needs no body

    def __init__(self) -> None:
        self._history: OrderedDict[tuple[str, str], list[dict[str, Any]]] = OrderedDict()

    def input_handles(self, config: ApiCallConfig) -> dict[str, HandleKind]:
        return {"input-json-0": "json"}

    def output_handles(self, config: ApiCallConfig) -> dict[str, HandleKind]:
        return {"output-json-0": "json"}

    def output_schema(self, config: ApiCallConfig, handle: str) -> dict[str, Any] | None:
        return config.output_schema

    def check(self, block: BlockDef, config: ApiCallConfig, path: str) -> list[Diagnostic]:
        problems = schema_diagnostics(config.request_schema, f"{path}.config.request_schema")
        problems += schema_diagnostics(config.output_schema, f"{path}.config.output_schema")
        if not re.match(r"^(https?://|\$\{)", config.url):
            problems.append(Diagnostic(code="INVALID_URL", path=f"{path}.config.url",
                                       message=f"url {config.url!r} is not an http(s) URL",
                                       fix="write it as https://host/path (may use ${NAME})"))
        if config.method not in _BODY_METHODS:
            for field in ("field_mappings", "request_schema"):
                if getattr(config, field):
                    problems.append(Diagnostic(
                        code="IGNORED_BODY_SETTING", severity="warning",
                        path=f"{path}.config.{field}",
                        message=f"api_call block {block.id!r}: {field} shapes the request "
                        f"body, and a {config.method} request is sent without one",
                        fix="use method: POST, PUT or PATCH to send the input as the body, "
                        f"or remove {field}"))
        return problems

    def _attempts(self, ctx: BlockContext) -> list[dict[str, Any]]:
        key = (ctx.run_id, ctx.step_id)
        history = [a for a in self._history.pop(key, []) if a["attempt_number"] < ctx.attempt]
        self._history[key] = history
        while len(self._history) > _HISTORY_LIMIT:
            self._history.popitem(last=False)
        return history

    async def run(
        self, ctx: BlockContext, config: ApiCallConfig, inputs: Mapping[str, Payload]
    ) -> BlockResult:
        """Send the request and turn the answer into the output (or an error).

        Raises:
            QuotaError: HTTP 429 (``retry_after`` from ``Retry-After``).
            TransientError: 408/5xx, connection failure or timeout.
            PermanentError: other statuses, a missing secret, an output that breaks
                ``output_schema``.
        """
        policy = policy_of(ctx.services)
        self._check_secrets(ctx, config)
        history = self._attempts(ctx)
        request = _Request(ctx, config, declared_only=policy.declared_secrets_only)
        body = None
        if "input-json-0" in inputs and config.method in _BODY_METHODS:
            body = request_body(ctx, config, inputs["input-json-0"].data)
        attempt = {"attempt_number": ctx.attempt, "request_method": config.method,
                   "request_url": config.url, "request_headers": dict(request.recorded_headers),
                   "request_body": body, "started_at": _now()}
        history.append(attempt)
        try:
            output = await self._send(ctx, config, request, body, attempt, policy.egress)
        except BlockError as exc:
            exc.message = request.scrub(exc.message)
            if isinstance(exc.context.get("response"), str):
                exc.context["response"] = request.scrub(exc.context["response"])
            attempt["error"] = exc.message
            exc.context = {**exc.context, "attempts": request.scrub_value(list(history))}
            if not exc.retryable:
                self._history.pop((ctx.run_id, ctx.step_id), None)
            raise
        finally:
            log_attempt(ctx.log, request.scrub_value(attempt))
        self._history.pop((ctx.run_id, ctx.step_id), None)
        artifact = {"operation": self.operation, "attempts": request.scrub_value(history),
                    "error": None}
        return BlockResult(outputs={"output-json-0": Payload.json(output)}, artifact=artifact)

    @staticmethod
    def _check_secrets(ctx: BlockContext, config: ApiCallConfig) -> None:
        for secret in config.mounts.secrets if config.mounts else []:
            if secret.required and secret.env not in ctx.env:
                raise PermanentError(
                    f"{who(ctx)}: secret {secret.name!r} needs the environment variable "
                    f"{secret.env!r}, which is not set. Export it before running stepwell, or "
                    "mark the secret `required: false`.", code="MISSING_SECRET")

    async def _send(self, ctx: BlockContext, config: ApiCallConfig, request: _Request,
                    body: Any, attempt: dict[str, Any], egress: EgressPolicy) -> Any:
        import httpx

        headers = {"Idempotency-Key": idempotency_key(ctx.run_id, ctx.step_id, ctx.attempt),
                   **request.headers}
        content = None
        if body is not None:
            headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
            headers["Content-Type"] = "application/json"
            content = json.dumps(body).encode()
        started = time.perf_counter()
        try:
            reply = await send(config.method, request.url, headers=headers, content=content,
                               timeout=config.timeout_seconds, policy=egress)
        except EgressRefused as exc:
            raise PermanentError(f"{who(ctx)}: {config.method} {config.url} was not sent: "
                                 f"{request.scrub(exc.reason)}. A shared server only reaches "
                                 "public addresses and the ones its operator allowlists "
                                 "(--egress-allow).", code="EGRESS_REFUSED") from None
        except ResponseTooLarge as exc:
            raise PermanentError(f"{who(ctx)}: the response of {config.url} is larger than "
                                 f"{exc.limit:,} bytes; it was not kept. Ask the API for less "
                                 "(paging, filters).", code="RESPONSE_TOO_LARGE") from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise PermanentError(f"{who(ctx)}: invalid url {config.url!r} ({exc}). Fix "
                                 "config.url.", code="INVALID_URL") from exc
        except httpx.TimeoutException as exc:
            raise TransientError(f"{who(ctx)}: {config.method} {config.url} timed out after "
                                 f"{config.timeout_seconds:g}s ({_RETRIED}). Raise "
                                 "config.timeout_seconds if the API is slow.",
                                 code="HTTP_TIMEOUT") from exc
        except httpx.TransportError as exc:
            raise TransientError(f"{who(ctx)}: cannot reach {config.url} ({type(exc).__name__}"
                                 f": {exc}; {_RETRIED}). Check the URL and that the "
                                 "server is up.", code="HTTP_UNREACHABLE") from exc
        finally:
            attempt["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
            attempt["completed_at"] = _now()
        text = reply.text
        attempt.update(response_status=reply.status_code,
                       response_headers=_record_headers(reply.headers, request.scrub),
                       response_body=request.scrub(text[:_BODY_LIMIT]))
        if reply.redirects:
            attempt["redirects"] = request.scrub_value(reply.redirects)
        self._raise_for_status(ctx, config, reply.status_code, reply.headers, text)
        output = request.scrub_value(parse_body(text))
        errors = schema_errors(output, config.output_schema) if config.output_schema else []
        if errors:
            raise PermanentError(
                f"{who(ctx)}: the response of {config.url} does not match output_schema at "
                f"{errors[0]['path']}: {errors[0]['message']}. Fix output_schema or the API.",
                code="OUTPUT_SCHEMA_MISMATCH", context={"errors": errors[:20]})
        return output

    @staticmethod
    def _raise_for_status(ctx: BlockContext, config: ApiCallConfig, status: int,
                          headers: Mapping[str, str], text: str) -> None:
        if status < 400:
            return
        where = f"{who(ctx)}: {config.method} {config.url} answered HTTP {status}"
        snippet = {"response": text[:2000]}
        if status == 429:
            from blocks.providers.openai import retry_after_seconds

            wait = retry_after_seconds(headers.get("retry-after"))
            wait = wait if wait is not None and math.isfinite(wait) else None
            raise QuotaError(f"{where} (rate limited; quota: retried"
                             f"{f' after {wait:g}s' if wait is not None else ''} per the "
                             "retry policy). If it persists, raise config.retry.max_attempts "
                             "or call the API less often.",
                             code="HTTP_429", retry_after=wait, context=snippet)
        if status == 408 or status >= 500:
            raise TransientError(f"{where} ({_RETRIED}). If it persists, check the API's "
                                 "status.", code=f"HTTP_{status}",
                                 context=snippet)
        raise PermanentError(f"{where}. Check the request (url, headers, body) against what "
                             "the API expects; the response is in the error context.",
                             code=f"HTTP_{status}", context=snippet)
