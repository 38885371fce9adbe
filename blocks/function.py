"""The ``function`` block (legacy ``functions``): user Python from ``input-json-0``.

Two modes:

* ``code`` (Retab's): module text defining ``entrypoint`` (default ``transform``). It runs
  in a fresh worker process (:mod:`blocks.function_process` starts
  :mod:`blocks.function_worker`) that gets one JSON request on stdin and answers on
  stdout. ``timeout_seconds`` bounds it: on expiry the worker's process group is killed
  and the attempt fails as transient ``FUNCTION_TIMEOUT``. A new process per call keeps
  calls isolated (no state leaks between steps) at the price of interpreter start-up
  (~50 ms, plus pydantic's import when the code uses ``models``).
* ``python: "pkg.module:func"``: an importable function called in-process
  (:mod:`blocks.function_inprocess`; a sync one inline, or in a worker thread). It may
  raise a stepwell ``BlockError`` (e.g. ``TransientError``) to ask for a retry; other
  exceptions fail the step. ``models`` is not importable there: the function receives
  the same ``Input`` instance, built from the upstream schema.

In both modes ``input_data`` is the ``Input`` model for a JSON object and the plain JSON
value otherwise, and the result must satisfy ``output_schema``. What the code prints,
writes to ``sys.stderr`` and logs with ``logging`` goes to the step's log (``ctx.log``,
shown by ``stepwell steps logs``), attempt by attempt, failed attempts included.
"""

from __future__ import annotations

import ast
import re
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pydantic import Field

from blocks.base import BlockType, StrictConfig
from blocks.control import ensure_matches_schema, require_json, schema_diagnostics, who
from blocks.function_inprocess import run_in_process, runs_inline
from blocks.function_process import run_in_worker
from blocks.log_capture import add_entries, begin_capture, end_capture
from blocks.sandbox import LOG_SINK
from engine.contracts.blocks import BlockContext, BlockResult, HandleKind, block_result
from engine.contracts.errors import Diagnostic, PermanentError
from engine.contracts.logs import LogEntry, LogStream, StepLog
from engine.contracts.policy import CodePolicy, SecurityPolicy
from engine.contracts.values import Payload

if TYPE_CHECKING:
    from engine.contracts.definition import BlockDef

#: Characters of printed text an artifact keeps (the last ones, as a ``code`` worker).
STDOUT_TAIL = 64 * 1024
_PYTHON_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class SecretMount(StrictConfig):
    """``{name, env, required}``: expose ``env`` (from the run env) to the code."""

    name: str
    env: str
    required: bool = True


class Mounts(StrictConfig):
    """``secrets`` are passed as environment variables; ``tables`` are accepted, unused."""

    secrets: list[SecretMount] = Field(default_factory=list)
    tables: list[dict[str, Any]] = Field(default_factory=list)


class WorkerLimitsConfig(StrictConfig):
    """Resource limits of the ``code`` worker; a server caps them at its maximums."""

    memory_mb: int | None = Field(None, ge=16)
    cpu_seconds: int | None = Field(None, ge=1)
    processes: int | None = Field(None, ge=1)
    file_size_mb: int | None = Field(None, ge=1)
    open_files: int | None = Field(None, ge=16)


class FunctionConfig(StrictConfig):
    """Config of the function block (see the module docstring)."""

    language: str = "python"
    code: str | None = None
    entrypoint: str = "transform"
    python: str | None = None
    output_schema: dict[str, Any] | None = None
    timeout_seconds: float = Field(60, ge=1, le=300)
    mounts: Mounts | None = None
    limits: WorkerLimitsConfig | None = None
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

    def policy_diagnostics(self, block: BlockDef, policy: SecurityPolicy,
                           path: str) -> list[Diagnostic]:
        """``code: none`` refuses every function; ``sandboxed`` refuses ``python:``
        references off the allowlist (``code`` then runs in a confined worker)."""
        reference = block.config.get("python")
        if policy.code is CodePolicy.NONE:
            return [Diagnostic(
                code="CODE_NOT_ALLOWED", path=f"{path}.config",
                message="this server runs no code (started with --code none)",
                fix="remove the function block, or use a server that runs code")]
        if isinstance(reference, str) and not policy.allows_python(reference):
            return [Diagnostic(
                code="CODE_NOT_ALLOWED", path=f"{path}.config.python",
                message=f"python: {reference!r} is not on this server's allowlist",
                fix="write the logic as `code` (it runs in a sandboxed worker), or ask the "
                "operator to start the server with --allow-python "
                f"{reference.partition(':')[0]}:*")]
        return []

    def runs_inline(self, config: FunctionConfig) -> bool:
        """Synchronous ``python:`` targets (once imported) run in the driver loop."""
        return runs_inline(config)

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
        sandbox = None
        if config.python is not None:
            token = begin_capture(ctx.log)  # ``captured``, without a generator per step
            try:
                output = await run_in_process(ctx, config, data)
            finally:
                end_capture(token)
            stdout = printed(ctx.log)
        else:
            output, stdout, sandbox = await _in_worker(ctx, config, data)
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
        if sandbox is not None:
            artifact["sandbox"] = sandbox
        return block_result(outputs={"output-json-0": Payload.json(output)}, artifact=artifact)

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


def printed(log: StepLog | None) -> str | None:
    """What a ``python:`` function printed (its last :data:`STDOUT_TAIL` characters, from
    the step's log), for its artifact; None when it printed nothing."""
    if log is None or log.empty:
        return None
    text = "".join(f"{e.message}\n" for e in log.entries() if e.stream == LogStream.STDOUT)
    return text[-STDOUT_TAIL:] or None


async def _in_worker(ctx: BlockContext, config: FunctionConfig, data: Any
                     ) -> tuple[Any, str, dict[str, Any]]:
    """:func:`run_in_worker` with the worker's log lines reaching ``ctx.log`` as they are
    sent (:data:`blocks.sandbox.LOG_SINK`); the stderr tail of a worker that did not
    answer is added without the lines already sent."""
    log = ctx.log
    if log is None:
        return await run_in_worker(ctx, config, data)
    sent: Counter[str] = Counter()

    def sink(entries: object) -> None:
        for item in entries if isinstance(entries, list) else ():
            if isinstance(item, dict) and item.get("stream") == LogStream.STDERR:
                sent[str(item.get("message"))] += 1
        add_entries(log, entries)

    rest = StepLog()
    token = LOG_SINK.set(sink)
    try:
        return await run_in_worker(replace(ctx, log=rest), config, data)
    finally:
        LOG_SINK.reset(token)
        _append(log, rest.entries(), sent)


def _append(log: StepLog, entries: tuple[LogEntry, ...], sent: Counter[str]) -> None:
    """Append ``entries`` to ``log``, skipping stderr lines counted in ``sent``."""
    for entry in entries:
        if entry.stream == LogStream.STDERR and sent[entry.message] > 0:
            sent[entry.message] -= 1
            continue
        log.write(entry.stream, entry.message, level=entry.level, logger=entry.logger,
                  at=entry.at)
