"""One attempt of one block: run its handler and turn what happened into a result.

The runner (:mod:`engine.runner`) decides when an attempt runs and what follows it;
this module runs it. An attempt either returns the handler's
:class:`~engine.contracts.blocks.BlockResult`, checked against the node's declared
output handles, or a failure ``(error, retry_after)``: stepwell errors as raised,
anything else (a handler bug) as a permanent ``UNEXPECTED_ERROR`` with its stack kept
whole. The handler sees its :class:`~engine.contracts.blocks.BlockContext` both as an
argument and through ``current_context()``.
"""

from __future__ import annotations

import traceback
from typing import Any, NoReturn

import anyio

from engine.contracts.blocks import (
    CURRENT_CONTEXT,
    BlockContext,
    BlockResult,
    OPENS_LOOP,
    ExpandItems,
    LoopStart,
)
from engine.contracts.bounded import MAX_JSON_DEPTH, nesting_problem
from engine.contracts.errors import (
    BlockError,
    ErrorStage,
    PermanentError,
    TransientError,
)
from engine.contracts.events import StepErrorInfo
from engine.contracts.logs import LOOP_LOGGER, AttemptLog, LogStream
from engine.scheduler import Task

#: Deepest artifact accepted: an artifact quotes outputs (at most ``MAX_JSON_DEPTH``) under
#: a few keys of its own.
MAX_ARTIFACT_DEPTH = MAX_JSON_DEPTH + 16

#: What an attempt ends with: the result, or the error and the wait it asks for.
Outcome = BlockResult | tuple[StepErrorInfo, float | None]


def run_attempt_inline(task: Task, ctx: BlockContext) -> Outcome:
    """Drive the handler's coroutine to completion without an event loop turn.

    A handler that suspends although its type declared ``runs_inline`` fails the step
    with ``INLINE_BLOCK_SUSPENDED``.
    """
    node = task.node
    token = CURRENT_CONTEXT.set(ctx)
    coro = node.impl.run(ctx, node.config, task.inputs)
    try:
        try:
            coro.send(None)
        except StopIteration as stop:
            result = stop.value
        else:
            coro.close()
            raise PermanentError(
                f"block {node.id!r} ({node.type}) declared runs_inline() but suspended. "
                "Return False from runs_inline() for configs that await I/O.",
                code="INLINE_BLOCK_SUSPENDED")
        check_outputs(task, result)
        return result
    except Exception as exc:  # noqa: BLE001 - every failure becomes a step error
        return failure(task, exc)
    finally:
        CURRENT_CONTEXT.reset(token)


async def run_attempt(task: Task, ctx: BlockContext) -> Outcome:
    """Await the handler, giving up 5 s after the block's own ``timeout_seconds``."""
    node = task.node
    token = CURRENT_CONTEXT.set(ctx)
    try:
        timeout = ctx.timeout_seconds
        with anyio.fail_after(timeout + 5 if timeout else None):
            result = await node.impl.run(ctx, node.config, task.inputs)
        check_outputs(task, result)
        return result
    except TimeoutError:
        late = TransientError(
            f"block {node.id!r} did not finish within {ctx.timeout_seconds}s; raise "
            "config.timeout_seconds if it needs longer.", code="STEP_TIMEOUT")
        return error_info(late, None), None
    except Exception as exc:  # noqa: BLE001 - every failure becomes a step error
        return failure(task, exc)
    finally:
        CURRENT_CONTEXT.reset(token)


def failure(task: Task, exc: Exception) -> tuple[StepErrorInfo, float | None]:
    """A failed attempt as (error, retry-after): stepwell errors as raised, anything else
    (a handler bug) as a permanent ``UNEXPECTED_ERROR`` with its stack kept whole."""
    if isinstance(exc, BlockError):
        return error_info(exc, exc.stack_trace or traceback.format_exc()), exc.retry_after
    node = task.node
    wrapped = PermanentError(
        f"block {node.id!r} ({node.type}) failed: {type(exc).__name__}: {exc}",
        code="UNEXPECTED_ERROR")
    return error_info(wrapped, traceback.format_exc()), None


def error_info(exc: BlockError, stack: str | None) -> StepErrorInfo:
    """The persisted form of a block error."""
    return StepErrorInfo(message=exc.message, stage=exc.stage, category=exc.category,
                         code=exc.code, stack_trace=stack, context=exc.context)


def timeout_of(config: Any) -> float | None:
    """A block's ``config.timeout_seconds``, if it sets one."""
    value = getattr(config, "timeout_seconds", None)
    return float(value) if value else None


def check_outputs(task: Task, result: Any) -> None:
    """Refuse a result that is not a BlockResult, fires handles the node does not have, or
    holds JSON (an output or the artifact) nested deeper than ``MAX_JSON_DEPTH``.

    Raises:
        PermanentError: ``BAD_BLOCK_RESULT``, ``UNKNOWN_OUTPUT_HANDLE``,
            ``HANDLE_KIND_MISMATCH`` or ``OUTPUT_TOO_DEEP`` (stage ``output_storage``).
    """
    node = task.node
    if not isinstance(result, BlockResult):
        raise PermanentError(
            f"block {node.id!r} ({node.type}) returned {type(result).__name__}, not a "
            "BlockResult. Return BlockResult(outputs={handle: Payload.json(...)}).",
            stage=ErrorStage.OUTPUT_STORAGE, code="BAD_BLOCK_RESULT")
    for handle, payload in result.outputs.items():
        kind = node.outputs.get(handle)
        if kind is None:
            raise PermanentError(
                f"block {node.id!r} ({node.type}) produced output handle {handle!r}, which it "
                f"does not declare. Declared outputs: {sorted(node.outputs) or 'none'}. "
                "Fix output_handles() or the handler.",
                stage=ErrorStage.OUTPUT_STORAGE, code="UNKNOWN_OUTPUT_HANDLE")
        given = getattr(payload, "kind", None)
        if given != kind:
            raise PermanentError(
                f"block {node.id!r} ({node.type}) put a {given or type(payload).__name__} "
                f"payload on {kind} handle {handle!r}. Use Payload.{kind}(...).",
                stage=ErrorStage.OUTPUT_STORAGE, code="HANDLE_KIND_MISMATCH")
        if kind == "json":
            problem = nesting_problem(payload.data, max_depth=MAX_JSON_DEPTH)
            if problem is not None:
                _too_deep(node, f"output {handle!r}", problem)
    if result.artifact is not None:
        problem = nesting_problem(result.artifact, max_depth=MAX_ARTIFACT_DEPTH)
        if problem is not None:
            _too_deep(node, "artifact", problem)


def _too_deep(node: Any, what: str, problem: str) -> NoReturn:
    """Refuse a block output or artifact nested too deep (``problem`` says where):
    stored, it would break every listing that serialises it."""
    raise PermanentError(
        f"block {node.id!r} ({node.type}) produced an {what} that is too deeply nested "
        f"({problem}). Return JSON nested at most {MAX_JSON_DEPTH} levels (flatten it, "
        "or encode the deep part as a string).",
        stage=ErrorStage.OUTPUT_STORAGE, code="OUTPUT_TOO_DEEP")


def attempt_log(task: Task, ctx: BlockContext, outcome: Outcome) -> AttemptLog | None:
    """What the attempt wrote to ``ctx.log``, ready for the store (None when nothing);
    a container whose loop opened adds a note of its size (:data:`LOOP_LOGGER`)."""
    log = ctx.log
    if log is None:
        return None
    control = outcome.control if isinstance(outcome, BlockResult) else None
    if isinstance(control, OPENS_LOOP):
        log.write(LogStream.STEPWELL, loop_note(control), logger=LOOP_LOGGER)
    if log.empty:
        return None
    return AttemptLog(step_id=task.step_id, attempt=ctx.attempt, entries=log.entries())


def loop_note(control: ExpandItems | LoopStart) -> str:
    """What a container's log says when its loop opens (the item count first)."""
    if isinstance(control, LoopStart):
        return f"loop opened: at most {control.max_iterations} iterations"
    items = len(control.items)
    on_error = ("a failed item fails the loop" if control.on_item_error == "fail"
                else "a failed item becomes null")
    return (f"{items} item{'' if items == 1 else 's'}, {control.max_concurrency} at a time; "
            f"{on_error}")
