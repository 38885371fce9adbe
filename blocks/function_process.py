"""``code`` mode of the ``function`` block: one worker process per call.

The module text runs in a fresh interpreter (:mod:`blocks.function_worker`, started as
``python -P -m blocks.function_worker`` in its own session) that reads one JSON request
on stdin and answers on stdout. ``timeout_seconds`` bounds the exchange: on expiry the
worker's process group is killed and the attempt fails as transient ``FUNCTION_TIMEOUT``.
A crash is transient when a signal killed the worker (out of memory?) and permanent
otherwise; a failure the worker reports becomes the matching ``FUNCTION_*`` error, or the
stepwell error the code raised itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import ByteReceiveStream, Process

from blocks.control import who
from engine.contracts.blocks import BlockContext
from engine.contracts.errors import (
    BlockError,
    ErrorCategory,
    PermanentError,
    QuotaError,
    TransientError,
)

if TYPE_CHECKING:
    from blocks.function import FunctionConfig

_PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)
_STDERR_LIMIT = 8 * 1024


def _worker_env(ctx: BlockContext, config: FunctionConfig) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PROJECT_ROOT, env.get("PYTHONPATH")) if p)
    for secret in config.mounts.secrets if config.mounts else []:
        value = ctx.env.get(secret.env, os.environ.get(secret.env))
        if value is None and secret.required:
            raise PermanentError(
                f"{who(ctx)}: secret {secret.name!r} needs the environment variable "
                f"{secret.env!r}, which is not set. Export it before running stepwell, or "
                "mark the secret `required: false`.",
                code="MISSING_SECRET",
            )
        if value is not None:
            env[secret.env] = value
    return env


def _kill(proc: Process) -> None:
    if proc.returncode is not None:
        return
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)  # the worker leads its own group
        else:
            proc.kill()
    except ProcessLookupError:
        pass


async def _drain(stream: ByteReceiveStream | None, into: bytearray) -> None:
    if stream is not None:
        async for chunk in stream:
            into.extend(chunk)


async def _feed(proc: Process, body: bytes) -> None:
    assert proc.stdin is not None
    try:
        await proc.stdin.send(body)
        await proc.stdin.aclose()
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass  # the worker died early; its exit code and stderr tell why


async def _exchange(
    ctx: BlockContext, config: FunctionConfig, body: bytes
) -> tuple[bytes, bytes, int | None]:
    proc = await anyio.open_process(
        [sys.executable, "-P", "-m", "blocks.function_worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_worker_env(ctx, config),
        start_new_session=True,
    )
    out, err = bytearray(), bytearray()
    try:
        with anyio.move_on_after(config.timeout_seconds) as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_feed, proc, body)
                tg.start_soon(_drain, proc.stdout, out)
                tg.start_soon(_drain, proc.stderr, err)
            await proc.wait()
    finally:
        with anyio.CancelScope(shield=True):
            _kill(proc)
            await proc.aclose()
    if scope.cancelled_caught:
        raise TransientError(
            f"{who(ctx)} did not finish within timeout_seconds={config.timeout_seconds:g}; "
            "the worker was killed. Speed the code up or raise config.timeout_seconds (max 300).",
            code="FUNCTION_TIMEOUT",
            context={"stderr": bytes(err[-_STDERR_LIMIT:]).decode(errors="replace")},
        )
    return bytes(out), bytes(err), proc.returncode


async def run_in_worker(
    ctx: BlockContext, config: FunctionConfig, data: Any
) -> tuple[Any, str]:
    """Run ``config.code`` on ``data`` in a worker process.

    Args:
        ctx: the step's context (block id, input schemas, env for secrets).
        config: the function block's config (``code`` mode).
        data: the JSON input.

    Returns:
        ``(output, stdout)``: the entrypoint's JSON result and what the code printed.

    Raises:
        PermanentError: the code failed to load, raised, or returned something not JSON;
            a required secret is not set; the worker exited before answering.
        TransientError: the call outlived ``timeout_seconds``, or a signal killed it.
        BlockError: whatever stepwell error the user code raised itself.
    """
    request = {
        "block_id": ctx.block_id,
        "code": config.code,
        "entrypoint": config.entrypoint,
        "input": data,
        "input_schema": ctx.input_schemas.get("input-json-0"),
        "output_schema": config.output_schema,
    }
    out, err, returncode = await _exchange(ctx, config, json.dumps(request).encode())
    stderr = err[-_STDERR_LIMIT:].decode(errors="replace")
    try:
        response = json.loads(out)
    except ValueError:
        raise _crashed(ctx, returncode, stderr) from None
    if not response.get("ok"):
        raise _worker_error(ctx, config, response, stderr)
    return response.get("output"), response.get("stdout", "")


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
        "output": f"function {ctx.block_id} returned something that is not JSON: {message}. "
        "Return an Output, a dict or a list.",
    }
    return PermanentError(
        texts.get(str(kind), f"function {ctx.block_id} failed: {etype}: {message}"),
        code=_ERROR_CODES.get(str(kind), "FUNCTION_FAILED"),
        context=context,
        stack_trace=trace,
    )
