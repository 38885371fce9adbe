"""``python`` mode of the ``function`` block: an importable function called in-process.

``python: "pkg.module:func"`` is imported once per process and cached. A synchronous
function runs inline on the engine's event loop (a thread hop costs more than a trivial
step) unless ``run_in_thread`` asks for a worker thread; an ``async def`` is awaited.
Only thread and async calls can be bounded by ``timeout_seconds``: nothing interrupts a
synchronous call. Under a policy other than ``open`` (a shared server) the reference
must be on the allowlist, and synchronous functions always go to a worker thread, so
that a timeout or a cancel abandons them and the run moves on. The function may raise a stepwell ``BlockError`` to ask for a retry;
other exceptions fail the step as ``FUNCTION_RAISED``.
"""

from __future__ import annotations

import importlib
import inspect
import traceback
from typing import TYPE_CHECKING, Any

import anyio

from blocks import function_worker as worker
from blocks.control import who
from engine.contracts.blocks import BlockContext
from engine.contracts.errors import BlockError, PermanentError, TransientError
from engine.contracts.policy import SECURITY_SERVICE, CodePolicy, SecurityPolicy

if TYPE_CHECKING:
    from blocks.function import FunctionConfig

#: Imported targets by reference: ``(function, is it async)``, both found once.
_TARGETS: dict[str, tuple[Any, bool]] = {}
#: Read on every call (an enum member read through its class is slow).
_OPEN = CodePolicy.OPEN
#: The policy of a host that set none (``policy_of``'s answer), built once.
_LOCAL_POLICY = SecurityPolicy.local()
#: Result types that are never awaitable (no ``isawaitable`` probe for them).
_PLAIN = frozenset({dict, list, str, int, float, bool, type(None)})
#: References imported under an open policy: only these may run inline (uninterruptible).
_INLINE: set[str] = set()


def _import_target(ctx: BlockContext, ref: str) -> tuple[Any, bool]:
    target = _TARGETS.get(ref)
    if target is None:
        fn = _resolve_target(ctx, ref)
        target = _TARGETS[ref] = (fn, _is_async(fn))
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


def _is_async(fn: Any) -> bool:
    """True for an ``async def`` target (or an object whose ``__call__`` is one); asked
    once per reference, when it is imported (:data:`_TARGETS`)."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None))


def runs_inline(config: FunctionConfig) -> bool:
    """True for an already imported, synchronous ``python:`` target not sent to a thread.

    Args:
        config: the function block's config.
    """
    if config.python is None or config.run_in_thread:
        return False
    target = _TARGETS.get(config.python)
    return target is not None and config.python in _INLINE and not target[1]


def _raised(ctx: BlockContext, exc: Exception) -> PermanentError:
    return PermanentError(
        f"function {ctx.block_id} raised {type(exc).__name__}: {exc}",
        code="FUNCTION_RAISED",
        stack_trace=traceback.format_exc(),
    )


async def run_in_process(ctx: BlockContext, config: FunctionConfig, data: Any) -> Any:
    """Call ``config.python`` with the ``Input`` built from ``data``.

    Args:
        ctx: the step's context (block id, input schemas).
        config: the function block's config (``python`` mode).
        data: the JSON input.

    Returns:
        The function's result as JSON.

    Raises:
        PermanentError: the target cannot be imported or is not callable, the input does
            not fit the ``Input`` model, the function raised, or its result is not JSON.
        TransientError: a thread or async call outlived ``timeout_seconds``.
        BlockError: whatever stepwell error the function raised itself.
    """
    assert config.python is not None
    policy = ctx.services.get(SECURITY_SERVICE)
    if not isinstance(policy, SecurityPolicy):  # policy_of, without a new policy per step
        policy = _LOCAL_POLICY
    open_policy = policy.code is _OPEN
    # an open policy allows every reference (SecurityPolicy.allows_python)
    if not open_policy and not policy.allows_python(config.python):
        raise PermanentError(
            f"{who(ctx)}: python: {config.python!r} is not on this server's allowlist; "
            "write the logic as `code` (it runs in a sandboxed worker).",
            code="CODE_NOT_ALLOWED")
    fn, is_async = _TARGETS.get(config.python) or _import_target(ctx, config.python)
    if open_policy:
        _INLINE.add(config.python)
    try:
        input_data = worker.make_input(data, ctx.input_schemas.get("input-json-0"))
    except ValueError as exc:  # pydantic.ValidationError
        raise PermanentError(
            f"function {ctx.block_id}: the input does not fit the Input model ({exc}). "
            "Check the upstream block's output.",
            code="FUNCTION_INPUT_INVALID",
        ) from exc
    threaded = config.run_in_thread or not open_policy
    if not threaded and not is_async:
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
        if type(result) not in _PLAIN and inspect.isawaitable(result):
            result = await result
    else:
        with anyio.move_on_after(config.timeout_seconds) as scope:
            try:
                if threaded and not is_async:
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
        return worker.returned_json(result)
    except TypeError as exc:
        raise PermanentError(
            worker.not_json_message(who(ctx), str(exc)), code="FUNCTION_OUTPUT_NOT_JSON",
        ) from exc
