"""The ``function`` block (legacy ``functions``): user Python from ``input-json-0``.

Two modes:

* ``code`` (Retab's): module text defining ``entrypoint`` (default ``transform``). It runs
  in a fresh worker process (:mod:`blocks._function_worker`) that gets one JSON request
  on stdin and answers on stdout. ``timeout_seconds`` bounds it: on expiry the worker's
  process group is killed and the attempt fails as transient ``FUNCTION_TIMEOUT``. A new
  process per call keeps calls isolated (no state leaks between steps) at the price of
  interpreter start-up (~50 ms, plus pydantic's import when the code uses ``models``).
* ``python: "pkg.module:func"``: an importable function called in-process (a sync one
  in a worker thread). It may raise a stepwell ``BlockError`` (e.g. ``TransientError``) to
  ask for a retry; other exceptions fail the step. ``models`` is not importable there:
  the function receives the same ``Input`` instance, built from the upstream schema.

In both modes ``input_data`` is the ``Input`` model for a JSON object and the plain JSON
value otherwise, and the result must satisfy ``output_schema``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import re
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import ByteReceiveStream, Process
from pydantic import Field

from blocks import _function_worker as worker
from blocks.base import BlockType, StrictConfig
from blocks.control import ensure_matches_schema, require_json, schema_diagnostics, who
from engine.contracts.blocks import BlockContext, BlockResult, HandleKind
from engine.contracts.errors import (
    BlockError,
    Diagnostic,
    ErrorCategory,
    PermanentError,
    QuotaError,
    TransientError,
)
from engine.contracts.values import Payload

if TYPE_CHECKING:
    from engine.contracts.definition import BlockDef

_PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)
_PYTHON_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_STDERR_LIMIT = 8 * 1024


class SecretMount(StrictConfig):
    """``{name, env, required}``: expose ``env`` (from the run env) to the code."""

    name: str
    env: str
    required: bool = True


class Mounts(StrictConfig):
    """``secrets`` are passed as environment variables; ``tables`` are accepted, unused."""

    secrets: list[SecretMount] = Field(default_factory=list)
    tables: list[dict[str, Any]] = Field(default_factory=list)


class FunctionConfig(StrictConfig):
    """Config of the function block (see the module docstring)."""

    language: str = "python"
    code: str | None = None
    entrypoint: str = "transform"
    python: str | None = None
    output_schema: dict[str, Any] | None = None
    timeout_seconds: float = Field(60, ge=1, le=300)
    mounts: Mounts | None = None
    run_in_thread: bool = Field(
        False,
        description="python mode: run a sync function in a worker thread (for blocking I/O) "
        "instead of inline on the engine's event loop",
    )


def _defines(tree: ast.Module, name: str) -> bool:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found = node.name == name
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found = any(isinstance(t, ast.Name) and t.id == name for t in targets)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            found = any((a.asname or a.name) in (name, "*") for a in node.names)
        else:
            found = False
        if found:
            return True
    return False


def _code_diagnostics(config: FunctionConfig, path: str) -> list[Diagnostic]:
    assert config.code is not None
    try:
        tree = ast.parse(config.code)
    except SyntaxError as exc:
        return [
            Diagnostic(
                code="FUNCTION_SYNTAX_ERROR",
                message=f"line {exc.lineno}: {exc.msg}",
                path=f"{path}.config.code",
                fix="fix the Python syntax",
            )
        ]
    if not _defines(tree, config.entrypoint):
        return [
            Diagnostic(
                code="FUNCTION_ENTRYPOINT_MISSING",
                message=f"the code defines no top-level {config.entrypoint!r}",
                path=f"{path}.config.entrypoint",
                fix=f"define `def {config.entrypoint}(input_data: Input) -> Output:` "
                "or set entrypoint",
            )
        ]
    return []


class Function(BlockType):
    """Runs user Python on ``input-json-0`` and emits its JSON result."""

    type_name = "function"
    config_model = FunctionConfig
    operation = "function_invocation"

    def input_handles(self, config: FunctionConfig) -> dict[str, HandleKind]:
        return {"input-json-0": "json"}

    def output_handles(self, config: FunctionConfig) -> dict[str, HandleKind]:
        return {"output-json-0": "json"}

    def output_schema(self, config: FunctionConfig, handle: str) -> dict[str, Any] | None:
        return config.output_schema

    def check(self, block: BlockDef, config: FunctionConfig, path: str) -> list[Diagnostic]:
        problems: list[Diagnostic] = []
        if config.output_schema is None:
            problems.append(
                Diagnostic(
                    code="MISSING_USER_DECLARED_SCHEMA",
                    message="Function block has no output_schema.",
                    path=f"{path}.config.output_schema",
                    fix="declare the JSON Schema of what the function returns, e.g. "
                    "`output_schema: {type: object, properties: {...}}`",
                )
            )
        problems += schema_diagnostics(config.output_schema, f"{path}.config.output_schema")
        if config.language.lower() != "python":
            problems.append(
                Diagnostic(
                    code="UNSUPPORTED_FUNCTION_LANGUAGE",
                    message=f"language {config.language!r} is not supported; stepwell runs Python",
                    path=f"{path}.config.language",
                    fix="port the code to Python (language: python)",
                )
            )
        return problems + self._source_diagnostics(config, path)

    @staticmethod
    def _source_diagnostics(config: FunctionConfig, path: str) -> list[Diagnostic]:
        if (config.code is None) == (config.python is None):
            both = config.code is not None
            return [
                Diagnostic(
                    code="FUNCTION_SOURCE_CONFLICT" if both else "FUNCTION_SOURCE_MISSING",
                    message="set exactly one of config.code and config.python"
                    + (" (both are set)" if both else ""),
                    path=f"{path}.config.code",
                    fix="write the module text in `code`, or point `python` at `pkg.module:func`",
                )
            ]
        if config.python is not None and not _PYTHON_REF.match(config.python):
            return [
                Diagnostic(
                    code="INVALID_PYTHON_REF",
                    message=f"{config.python!r} is not `module:function`",
                    path=f"{path}.config.python",
                    fix="write it like `my_pkg.transforms:clean`",
                )
            ]
        return _code_diagnostics(config, path) if config.code is not None else []

    def runs_inline(self, config: FunctionConfig) -> bool:
        """Synchronous ``python:`` targets (once imported) run in the driver loop."""
        return _runs_inline(config)

    async def run(
        self, ctx: BlockContext, config: FunctionConfig, inputs: Mapping[str, Payload]
    ) -> BlockResult:
        """Call the function and validate its result.

        Raises:
            PermanentError: bad config, the code raised (``FUNCTION_RAISED``), the result
                breaks ``output_schema`` (``OUTPUT_SCHEMA_MISMATCH``).
            TransientError: the call outlived ``timeout_seconds`` (``FUNCTION_TIMEOUT``).
            BlockError: whatever stepwell error the user code raised itself.
        """
        self._require_runnable(ctx, config)
        data = require_json(ctx, inputs, "input-json-0")
        started = time.perf_counter()
        if config.python is not None:
            output, stdout = await _run_in_process(ctx, config, data), None
        else:
            output, stdout = await _run_in_worker(ctx, config, data)
        duration_ms = int((time.perf_counter() - started) * 1000)
        ensure_matches_schema(ctx, output, config.output_schema, "the function's return value")
        artifact = {
            "operation": self.operation,
            "inputs": data,
            "output": output,
            "duration_ms": duration_ms,
            "error": None,
            "stdout": stdout or None,
        }
        return BlockResult(outputs={"output-json-0": Payload.json(output)}, artifact=artifact)

    @staticmethod
    def _require_runnable(ctx: BlockContext, config: FunctionConfig) -> None:
        problem = None
        if config.language.lower() != "python":
            problem = f"language {config.language!r} is not supported; use Python"
        elif config.output_schema is None:
            problem = "config.output_schema is missing; declare what the function returns"
        elif (config.code is None) == (config.python is None):
            problem = "set exactly one of config.code and config.python"
        if problem:
            raise PermanentError(f"{who(ctx)}: {problem}.", code="INVALID_FUNCTION_CONFIG")


# ----------------------------------------------------------------------------- worker mode


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
        [sys.executable, "-P", "-m", "blocks._function_worker"],
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


async def _run_in_worker(ctx: BlockContext, config: FunctionConfig, data: Any) -> tuple[Any, str]:
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


# ----------------------------------------------------------------------------- in-process mode


_TARGETS: dict[str, Any] = {}


def _import_target(ctx: BlockContext, ref: str) -> Any:
    target = _TARGETS.get(ref)
    if target is None:
        target = _TARGETS[ref] = _resolve_target(ctx, ref)
    return target


def _resolve_target(ctx: BlockContext, ref: str) -> Any:
    module_name, _, attr_path = ref.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise PermanentError(
            f"{who(ctx)}: cannot import {module_name!r} ({exc}). Install the package in "
            "stepwell's environment or add its directory to PYTHONPATH.",
            code="FUNCTION_IMPORT_ERROR",
            stack_trace=traceback.format_exc(),
        ) from exc
    except Exception as exc:  # the module's own top-level code failed
        raise PermanentError(
            f"{who(ctx)}: importing {module_name!r} raised {type(exc).__name__}: {exc}. "
            "Fix the module.",
            code="FUNCTION_IMPORT_ERROR",
            stack_trace=traceback.format_exc(),
        ) from exc
    for part in attr_path.split("."):
        if not hasattr(target, part):
            raise PermanentError(
                f"{who(ctx)}: {module_name!r} has no {attr_path!r}. Fix config.python "
                "(`module:function`).",
                code="FUNCTION_ENTRYPOINT_MISSING",
            )
        target = getattr(target, part)
    if not callable(target):
        raise PermanentError(
            f"{who(ctx)}: {ref!r} is not callable.", code="FUNCTION_ENTRYPOINT_MISSING"
        )
    return target


_ASYNC: dict[int, tuple[Any, bool]] = {}


def _is_async(fn: Any) -> bool:
    hit = _ASYNC.get(id(fn))
    if hit is not None and hit[0] is fn:
        return hit[1]
    answer = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None))
    _ASYNC[id(fn)] = (fn, answer)  # holds fn: ids stay unique
    return answer


def _runs_inline(config: FunctionConfig) -> bool:
    """True for an already imported, synchronous ``python:`` target not sent to a thread."""
    if config.python is None or config.run_in_thread:
        return False
    fn = _TARGETS.get(config.python)
    return fn is not None and not _is_async(fn)


def _raised(ctx: BlockContext, exc: Exception) -> PermanentError:
    return PermanentError(
        f"function {ctx.block_id} raised {type(exc).__name__}: {exc}",
        code="FUNCTION_RAISED",
        stack_trace=traceback.format_exc(),
    )


async def _run_in_process(ctx: BlockContext, config: FunctionConfig, data: Any) -> Any:
    assert config.python is not None
    fn = _import_target(ctx, config.python)
    try:
        input_data = worker.make_input(data, ctx.input_schemas.get("input-json-0"))
    except ValueError as exc:  # pydantic.ValidationError
        raise PermanentError(
            f"function {ctx.block_id}: the input does not fit the Input model ({exc}). "
            "Check the upstream block's output.",
            code="FUNCTION_INPUT_INVALID",
        ) from exc
    if not config.run_in_thread and not _is_async(fn):
        # Sync functions run inline: a thread hop costs more than a trivial step, and
        # in-process functions are meant for fast, CPU-bound logic. Nothing can
        # interrupt a sync call, so no timer is armed; blocking I/O belongs in
        # `async def`, in `run_in_thread: true`, or in `code` (a worker process).
        try:
            result = fn(input_data)
        except BlockError:
            raise  # the user's own retryable/permanent signal, as raised
        except Exception as exc:
            raise _raised(ctx, exc) from exc
        if inspect.isawaitable(result):
            result = await result
    else:
        with anyio.move_on_after(config.timeout_seconds) as scope:
            try:
                if config.run_in_thread and not _is_async(fn):
                    result = await anyio.to_thread.run_sync(fn, input_data, abandon_on_cancel=True)
                else:
                    result = fn(input_data)
                if inspect.isawaitable(result):
                    result = await result
            except BlockError:
                raise
            except Exception as exc:
                raise _raised(ctx, exc) from exc
        if scope.cancelled_caught:
            raise TransientError(
                f"{who(ctx)} did not finish within timeout_seconds={config.timeout_seconds:g}. "
                "Speed the function up or raise config.timeout_seconds (max 300).",
                code="FUNCTION_TIMEOUT",
            )
    try:
        return worker.to_json(result)
    except TypeError as exc:
        raise PermanentError(
            f"function {ctx.block_id} returned something that is not JSON: {exc}.",
            code="FUNCTION_OUTPUT_NOT_JSON",
        ) from exc
