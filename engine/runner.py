"""The runner: the only module that awaits. It drives a Scheduler with an anyio task group.

One driver coroutine owns the scheduler and the store connection. Workers run block
handlers and send what happened back over a memory stream. The driver loop:

1. release ready tasks up to ``max_concurrency`` (``queued`` -> ``running``);
2. persist every event emitted since the last commit *in one transaction* (a completion
   and the release of its dependents share a commit: group commit without delaying
   anyone), then start the released workers;
3. wait for the next message, then drain every message already waiting before
   committing again.

So a step's completion is always committed before anything that depends on it starts.
Retries go through the driver too (``running -> queued`` then ``queued -> running``), and
the worker waits for the ``running`` transition to be committed before its next attempt.
"""

from __future__ import annotations

import math
import os
import random
import time
import traceback
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from blocks.base import _CURRENT, BlockContext, BlockResult
from engine.errors import BlockError, ErrorCategory, ErrorStage, PermanentError, TransientError
from engine.events import RunUpdate, StepErrorInfo
from engine.graph import CompiledGraph
from engine.replay import Replay
from engine.scheduler import Scheduler, Task
from engine.values import RunStatus
from store.base import Store


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How a block's transient and quota errors are retried.

    Attributes:
        max_attempts: attempts in all, the first included (1 = never retry).
        initial_interval_s: wait before the first retry.
        backoff: multiplier applied to the wait after each retry.
        max_interval_s: the wait never exceeds this.
        jitter: fraction of random spread added to each wait (0 = none).
    """

    max_attempts: int = 3
    initial_interval_s: float = 0.5
    backoff: float = 2.0
    max_interval_s: float = 30.0
    jitter: float = 0.1

    def delay(self, retry_number: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based)."""
        wait = min(self.max_interval_s, self.initial_interval_s * self.backoff ** (retry_number - 1))
        if self.jitter:
            wait *= 1 + random.uniform(0, self.jitter)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait

    @classmethod
    def from_config(cls, raw: Any, default: RetryPolicy) -> RetryPolicy:
        """A block's ``config.retry`` (mapping or model) over the engine default."""
        if raw is None:
            return default
        values = raw if isinstance(raw, Mapping) else raw.model_dump(exclude_none=True)
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__ and v is not None}
        return cls(**{**{f: getattr(default, f) for f in cls.__dataclass_fields__}, **known})


@dataclass(slots=True, kw_only=True)
class RunSettings:
    """Knobs of one run (filled by the Engine)."""

    run_id: str
    run_inputs: Mapping[str, Any] = field(default_factory=dict)
    max_concurrency: int = 8
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    services: Mapping[str, Any] = field(default_factory=dict)
    cancel_poll_s: float = 0.5
    heartbeat_s: float = 2.0
    replay: Replay | None = None


class Runner:
    """Executes one run of ``graph``, persisting every transition through ``store``."""

    def __init__(self, graph: CompiledGraph, store: Store, settings: RunSettings) -> None:
        self.graph = graph
        self.store = store
        self.settings = settings
        self.scheduler = Scheduler(graph)
        self._backlog: deque[Task] = deque()
        self._in_flight = 0
        self._gates: dict[str, anyio.Event] = {}
        self._scopes: dict[str, anyio.CancelScope] = {}

    async def run(self) -> RunUpdate:
        """Run to the end (or to cancellation) and return the run's final lifecycle."""
        sched = self.scheduler
        send, recv = anyio.create_memory_object_stream[tuple[Any, ...]](math.inf)
        self._flush(RunUpdate(status=RunStatus.RUNNING))
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch, send)
            sched.start()
            if self._cancel_requested():
                sched.cancel("cancelled by request")
            while True:
                self._release(tg, send)
                if sched.finished or (self._in_flight == 0 and not self._backlog
                                      and not sched.has_ready):
                    break
                await self._receive(recv)
            tg.cancel_scope.cancel()
        if sched.finished or sched.awaiting:
            outcome = sched.outcome()
        else:  # pragma: no cover - a scheduler bug; keep the run inspectable
            outcome = RunUpdate(status=RunStatus.ERROR,
                                reason="run stalled: no step can make progress")
        self._flush(outcome)
        return outcome

    # ------------------------------------------------------------------ driver

    def _release(self, tg: TaskGroup, send: MemoryObjectSendStream[tuple[Any, ...]]) -> None:
        sched = self.scheduler
        replay = self.settings.replay
        while sched.has_ready:
            for task in sched.take_ready():
                if replay is None or not replay.settle(sched, task):
                    self._backlog.append(task)
        starting: list[Task] = []
        while self._backlog and self._in_flight < self.settings.max_concurrency:
            task = self._backlog.popleft()
            sched.mark_running(task.step_id)
            self._in_flight += 1
            starting.append(task)
        self._flush()
        for task in starting:
            tg.start_soon(self._execute, task, send)

    async def _receive(self, recv: MemoryObjectReceiveStream[tuple[Any, ...]]) -> None:
        self._handle(await recv.receive())
        while True:
            try:
                message = recv.receive_nowait()
            except anyio.WouldBlock:
                return
            self._handle(message)

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind, step_id, value = message
        sched = self.scheduler
        if sched.cancelled and kind != "cancel":
            if kind in ("done", "fail"):
                self._in_flight -= 1
            return
        if kind == "done":
            self._in_flight -= 1
            if value.review is not None:
                sched.await_review(step_id, value)
            else:
                sched.complete(step_id, value)
        elif kind == "fail":
            self._in_flight -= 1
            sched.fail(step_id, value)
        elif kind == "retry":
            sched.retry(step_id, value)
            self._flush()
        elif kind == "resume":
            sched.mark_running(step_id)
            self._flush()
            value.set()
        elif kind == "cancel":
            sched.cancel(value)
            for scope in self._scopes.values():
                scope.cancel()

    def _flush(self, run_update: RunUpdate | None = None) -> None:
        events = self.scheduler.drain()
        if self.settings.replay is not None:
            events = self.settings.replay.filter(events)
        if events or run_update is not None:
            self.store.apply(self.settings.run_id, events, run_update, now=time.time())

    def _cancel_requested(self) -> bool:
        check = getattr(self.store, "cancel_requested", None)
        return bool(check and check(self.settings.run_id))

    async def _watch(self, send: MemoryObjectSendStream[tuple[Any, ...]]) -> None:
        """Poll for a cancel request from another process; keep the heartbeat fresh."""
        beat = getattr(self.store, "heartbeat", None)
        last_beat = 0.0
        while True:
            await anyio.sleep(self.settings.cancel_poll_s)
            if self._cancel_requested():
                await send.send(("cancel", None, "cancelled by request"))
                return
            now = time.time()
            if beat is not None and now - last_beat >= self.settings.heartbeat_s:
                beat(self.settings.run_id, now)
                last_beat = now

    # ------------------------------------------------------------------ workers

    async def _execute(self, task: Task, send: MemoryObjectSendStream[tuple[Any, ...]]) -> None:
        node = task.node
        policy = RetryPolicy.from_config(getattr(node.config, "retry", None), self.settings.retry)
        attempt = task.retry_count
        with anyio.CancelScope() as scope:
            self._scopes[task.step_id] = scope
            try:
                while True:
                    outcome = await self._attempt(task, attempt)
                    if isinstance(outcome, BlockResult):
                        await send.send(("done", task.step_id, outcome))
                        return
                    error, retry_after = outcome
                    if error.category is ErrorCategory.PERMANENT or attempt + 1 >= policy.max_attempts:
                        await send.send(("fail", task.step_id, error))
                        return
                    attempt += 1
                    await send.send(("retry", task.step_id, error))
                    await anyio.sleep(policy.delay(attempt, retry_after))
                    gate = anyio.Event()
                    await send.send(("resume", task.step_id, gate))
                    await gate.wait()
            finally:
                self._scopes.pop(task.step_id, None)

    async def _attempt(
        self, task: Task, attempt: int
    ) -> BlockResult | tuple[StepErrorInfo, float | None]:
        node = task.node
        ctx = BlockContext(
            run_id=self.settings.run_id, step_id=task.step_id, block_id=node.id,
            block_type=node.type, label=node.label, scope=task.scope, attempt=attempt,
            files=self.store.files, run_inputs=self.settings.run_inputs,
            env=self.settings.env, input_schemas=self.graph.input_schemas.get(node.id, {}),
            timeout_seconds=_timeout(node.config), services=self.settings.services,
        )
        token = _CURRENT.set(ctx)
        try:
            timeout = ctx.timeout_seconds
            with anyio.fail_after(timeout + 5 if timeout else None):
                result = await node.impl.run(ctx, node.config, task.inputs)
            _check_outputs(task, result)
            return result
        except BlockError as exc:
            return _error_info(exc, exc.stack_trace or traceback.format_exc()), exc.retry_after
        except TimeoutError:
            exc2 = TransientError(
                f"block {node.id!r} did not finish within {ctx.timeout_seconds}s; raise "
                "config.timeout_seconds if it needs longer.", code="STEP_TIMEOUT")
            return _error_info(exc2, None), None
        except Exception as exc:  # noqa: BLE001 - a handler bug becomes a step error, kept whole
            wrapped = PermanentError(
                f"block {node.id!r} ({node.type}) failed: {type(exc).__name__}: {exc}",
                code="UNEXPECTED_ERROR")
            return _error_info(wrapped, traceback.format_exc()), None
        finally:
            _CURRENT.reset(token)


def _timeout(config: Any) -> float | None:
    value = getattr(config, "timeout_seconds", None)
    return float(value) if value else None


def _error_info(exc: BlockError, stack: str | None) -> StepErrorInfo:
    return StepErrorInfo(message=exc.message, stage=exc.stage, category=exc.category,
                         code=exc.code, stack_trace=stack, context=exc.context)


def _check_outputs(task: Task, result: Any) -> None:
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
        if getattr(payload, "kind", None) != kind:
            raise PermanentError(
                f"block {node.id!r} ({node.type}) put a {getattr(payload, 'kind', type(payload).__name__)} "
                f"payload on {kind} handle {handle!r}. Use Payload.{kind}(...).",
                stage=ErrorStage.OUTPUT_STORAGE, code="HANDLE_KIND_MISMATCH")
