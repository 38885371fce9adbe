"""``code`` mode of the ``function`` block: one worker process per call.

The module text runs in a fresh interpreter (:mod:`blocks.function_worker`, started by
:func:`blocks.sandbox.run_worker` in its own session) that reads one JSON request on
stdin and answers on stdout. ``timeout_seconds`` bounds the exchange: on expiry the
worker and everything it spawned are killed and the attempt fails as transient
``FUNCTION_TIMEOUT``. The host's :class:`~engine.contracts.policy.SecurityPolicy` says
how: on a personal machine the worker inherits the environment and working directory
(plus the block's ``limits``, if any); on a shared server it is confined (minimal
environment with only the block's declared secrets, a private directory, the platform's
isolation layers, the server's default and maximum limits).
A crash is transient when a signal killed the worker (out of memory?) and permanent
otherwise; a failure the worker reports becomes the matching ``FUNCTION_*`` error, or the
stepwell error the code raised itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from blocks.control import who
from blocks.function_worker import NOT_JSON_FIX, not_json_message
from blocks.log_capture import add_entries
from blocks.sandbox import WorkerSpec, run_worker
from engine.contracts.blocks import BlockContext
from engine.contracts.errors import (
    BlockError,
    ErrorCategory,
    PermanentError,
    QuotaError,
    TransientError,
)
from engine.contracts.logs import LogStream
from engine.contracts.policy import CodePolicy, policy_of

if TYPE_CHECKING:
    from blocks.function import FunctionConfig

def declared_secrets(ctx: BlockContext, config: FunctionConfig, *,
                     process_env: bool) -> dict[str, str]:
    """The values of the block's ``mounts.secrets``, keyed by their ``env`` names.

    Args:
        ctx: the step's context; ``ctx.env`` holds the run's secrets.
        config: the block's config.
        process_env: also look in this process's environment (a personal machine).

    Raises:
        PermanentError: a required secret has no value (``MISSING_SECRET``).
    """
    found: dict[str, str] = {}
    for secret in config.mounts.secrets if config.mounts else []:
        value = ctx.env.get(secret.env)
        if value is None and process_env:
            value = os.environ.get(secret.env)
        if value is None and secret.required:
            raise PermanentError(
                f"{who(ctx)}: secret {secret.name!r} needs the environment variable "
                f"{secret.env!r}, which is not set. Export it before running stepwell (a "
                "shared server: add it to this organization's secrets file), or mark the "
                "secret `required: false`.",
                code="MISSING_SECRET",
            )
        if value is not None:
            found[secret.env] = value
    return found


def worker_spec(ctx: BlockContext, config: FunctionConfig) -> WorkerSpec:
    """How to start this step's worker under the host's policy.

    Raises:
        PermanentError: the policy runs no code, or a required secret is missing.
    """
    policy = policy_of(ctx.services)
    if policy.code is CodePolicy.NONE:
        raise PermanentError(f"{who(ctx)}: this server runs no code (--code none).",
                             code="CODE_NOT_ALLOWED")
    confine = policy.confine_workers
    secrets = declared_secrets(ctx, config, process_env=not confine)
    requested = config.limits.model_dump(exclude_none=True) if config.limits else None
    return WorkerSpec(module="blocks.function_worker", confine=confine,
                      limits=policy.worker_limits(requested),
                      env=secrets if confine else {**os.environ, **secrets},
                      user=policy.worker_user)


async def run_in_worker(
    ctx: BlockContext, config: FunctionConfig, data: Any
) -> tuple[Any, str, dict[str, Any]]:
    """Run ``config.code`` on ``data`` in a worker process.

    Args:
        ctx: the step's context (block id, input schemas, env for secrets).
        config: the function block's config (``code`` mode).
        data: the JSON input.

    Returns:
        ``(output, stdout, sandbox)``: the entrypoint's JSON result, what the code printed
        (its tail), and how the worker was confined (``confined``, ``layers``, ``limits``).

    Raises:
        PermanentError: the code failed to load, raised, or returned something not JSON;
            a required secret is not set; the worker exited before answering or wrote
            too much; the policy runs no code; the sandbox cannot be set up.
        TransientError: the call outlived ``timeout_seconds``, or a signal killed it.
        BlockError: whatever stepwell error the user code raised itself.
    """
    spec = worker_spec(ctx, config)
    request = {
        "block_id": ctx.block_id,
        "code": config.code,
        "entrypoint": config.entrypoint,
        "input": data,
        "input_schema": ctx.input_schemas.get("input-json-0"),
        "output_schema": config.output_schema,
    }
    outcome = await run_worker(spec, json.dumps(request).encode(),
                               timeout=config.timeout_seconds)
    try:
        response = json.loads(outcome.stdout)
    except ValueError:
        response = None
    if isinstance(response, dict):
        add_entries(ctx.log, response.get("logs"))
    elif ctx.log is not None:  # no answer (killed, crashed): what it wrote to stderr
        ctx.log.write_text(LogStream.STDERR, outcome.stderr)
    if outcome.timed_out:
        raise TransientError(
            f"{who(ctx)} did not finish within timeout_seconds={config.timeout_seconds:g}; "
            "the worker was killed. Speed the code up or raise config.timeout_seconds (max 300).",
            code="FUNCTION_TIMEOUT", context={"stderr": outcome.stderr})
    if outcome.unconfined:
        raise PermanentError(
            f"{who(ctx)}: the worker sandbox could not be set up here ({outcome.stderr.strip()}"
            "). Nothing ran. See docs/security.md for what each platform offers.",
            code="SANDBOX_UNAVAILABLE")
    if outcome.too_much_output:
        raise PermanentError(
            f"{who(ctx)}: the worker wrote more than {spec.stdout_limit // (1024 * 1024)} MB "
            "of output and was stopped. Return less data.", code="FUNCTION_OUTPUT_TOO_LARGE")
    if not isinstance(response, dict):
        raise _crashed(ctx, outcome.returncode, outcome.stderr)
    if not response.get("ok"):
        raise _worker_error(ctx, config, response, outcome.stderr)
    sandbox = {"confined": spec.confine, "layers": response.get("sandbox") or [],
               "limits": {k: v for k, v in asdict(spec.limits).items() if v is not None}}
    return response.get("output"), response.get("stdout", ""), sandbox


def _crashed(ctx: BlockContext, returncode: int | None, stderr: str) -> BlockError:
    signal_number = -returncode if returncode is not None and returncode < 0 else None
    killed = signal_number is not None
    cls = TransientError if killed else PermanentError
    how = f"was killed by signal {signal_number}" if killed else f"exited with code {returncode}"
    return cls(
        f"{who(ctx)}: the worker process {how} before answering"
        + (
            " (out of memory?); it will be retried."
            if killed
            else ". Does the code call os._exit or crash the interpreter? See stderr in details."
        ),
        code="FUNCTION_CRASHED",
        context={"returncode": returncode, "stderr": stderr},
    )


_ERROR_CODES = {
    "load": "FUNCTION_LOAD_ERROR",
    "entrypoint": "FUNCTION_ENTRYPOINT_MISSING",
    "input": "FUNCTION_INPUT_INVALID",
    "raised": "FUNCTION_RAISED",
    "output": "FUNCTION_OUTPUT_NOT_JSON",
}
_CATEGORY_ERRORS: dict[str, type[BlockError]] = {
    ErrorCategory.TRANSIENT: TransientError,
    ErrorCategory.QUOTA: QuotaError,
    ErrorCategory.PERMANENT: PermanentError,
}


def _worker_error(
    ctx: BlockContext, config: FunctionConfig, response: Mapping[str, Any], stderr: str
) -> BlockError:
    kind, etype, message = response.get("kind"), response.get("error_type"), response.get("message")
    context = {"stdout": response.get("stdout", ""), "stderr": stderr}
    trace = response.get("traceback") or None
    if kind == "block_error":
        cls = _CATEGORY_ERRORS.get(response.get("category", ""), PermanentError)
        return cls(
            str(message),
            code=response.get("code") or "BLOCK_ERROR",
            context={**(response.get("context") or {}), **context},
            stack_trace=trace,
        )
    texts = {
        "load": f"function {ctx.block_id} failed to load: {etype}: {message}. Fix config.code.",
        "entrypoint": f"function {ctx.block_id}: {message}. Define it or set config.entrypoint.",
        "input": f"function {ctx.block_id}: the input does not fit the Input model "
        f"({etype}: {message}). Check the upstream block's output.",
        "raised": f"function {ctx.block_id} raised {etype}: {message}",
        "output": not_json_message(who(ctx), str(message)) if etype == "TypeError" else
        f"{who(ctx)}: its return value could not be turned into JSON ({etype}: {message}). "
        f"{NOT_JSON_FIX}",
    }
    return PermanentError(
        texts.get(str(kind), f"function {ctx.block_id} failed: {etype}: {message}"),
        code=_ERROR_CODES.get(str(kind), "FUNCTION_FAILED"),
        context=context,
        stack_trace=trace,
    )
