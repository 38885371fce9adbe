"""Stand-ins for blocks of a compiled graph: test stubs and output checks.

Both work by rewriting :class:`~engine.compiled.Node` entries of a compiled graph so that
``node.impl`` is a wrapper around the real :class:`~blocks.base.BlockType`. Nothing else
changes: the scheduler routes, the runner retries and the store persists a wrapped block
exactly as it would the real one.

**Stubs** (``Engine(stubs={key: stub})``). A key is a block id (every execution of the
block, in every loop iteration) or a step id (``orders_iter_1_list_price``: that one
execution; the step stub wins over a block stub). A stub is:

* a value: the JSON data of the block's only output handle (a :class:`FileRef`,
  ``bytes`` or :class:`~pathlib.Path` for a file handle);
* :class:`Outputs`: data per output handle, for blocks with several (a conditional fires
  the handles you name, and only those);
* :class:`Failure`: the attempt fails with that error (``transient`` ones are retried);
* :class:`Attempts`: one stub per attempt, in order: ``Attempts(Failure.transient("503"),
  Failure.transient("503"), {"ok": True})`` fails twice and then succeeds;
* a callable ``(StubCall) -> stub`` (or ``async def``): computes the stub from the inputs.

A stubbed step records the artifact ``{"operation": "stub", "stub_key": key}``.
Unknown keys, containers, loop sentinels and notes cannot be stubbed: :func:`apply_stubs`
raises a :class:`~engine.contracts.errors.UsageError` naming them before anything runs.

**Output checks** (:func:`check_custom_outputs`): block types an app registers itself are
wrapped so that JSON output the store could not encode fails that step with a permanent
``OUTPUT_NOT_JSON`` error naming the block and the fix, instead of aborting the run.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FunctionType
from typing import Any

from blocks.base import BlockType
from blocks.builtin import is_builtin
from engine.compiled import CompiledGraph, Node
from engine.contracts.blocks import BlockContext, BlockResult
from engine.contracts.errors import (
    BlockError,
    ErrorCategory,
    ErrorStage,
    PermanentError,
    QuotaError,
    TransientError,
    UsageError,
)
from engine.contracts.frozen import record
from engine.contracts.values import FileRef, Payload

_ITER = re.compile(r"(\d+)_(.+)")


@dataclass(frozen=True, slots=True)
class Failure:
    """A stubbed attempt that fails.

    Attributes:
        message: the step's error message.
        category: ``transient`` and ``quota`` are retried by the engine's retry policy,
            ``permanent`` fails the step at once.
        code: the stored ``error_code``.
        retry_after: seconds a ``quota`` failure asks the engine to wait.
    """

    message: str = "stubbed failure"
    category: ErrorCategory | str = ErrorCategory.PERMANENT
    code: str = "STUB_FAILURE"
    retry_after: float | None = None

    @classmethod
    def transient(cls, message: str = "stubbed transient failure", *,
                  code: str = "STUB_FAILURE") -> Failure:
        """A failure the engine retries (a timeout, a 503)."""
        return cls(message, ErrorCategory.TRANSIENT, code)

    @classmethod
    def permanent(cls, message: str = "stubbed permanent failure", *,
                  code: str = "STUB_FAILURE") -> Failure:
        """A failure that fails the step at once."""
        return cls(message, ErrorCategory.PERMANENT, code)

    @classmethod
    def quota(cls, message: str = "stubbed rate limit", *, retry_after: float = 0.0,
              code: str = "STUB_FAILURE") -> Failure:
        """A rate limit (429), retried after ``retry_after`` seconds."""
        return cls(message, ErrorCategory.QUOTA, code, retry_after)

    def error(self, *, stub_key: str | None = None, attempt: int | None = None
              ) -> BlockError:
        """The :class:`~engine.contracts.errors.BlockError` a stubbed attempt raises.

        Args:
            stub_key: the stub that scripted this failure. Given, the error carries a
                short stack trace saying so (see :func:`_scripted_stack`): the real stack
                of a scripted failure only shows the stub machinery, and formatting it
                costs more than the rest of the stubbed attempt.
            attempt: the attempt that failed (0 = the first), named in that stack trace.
        """
        category = ErrorCategory(self.category)
        kind = {ErrorCategory.TRANSIENT: TransientError, ErrorCategory.QUOTA: QuotaError}.get(
            category, PermanentError)
        stack = None if stub_key is None else _scripted_stack(stub_key, category, attempt)
        return kind(self.message, code=self.code, retry_after=self.retry_after,
                    stack_trace=stack)


def _scripted_stack(stub_key: str, category: ErrorCategory, attempt: int | None) -> str:
    """The stack trace recorded for a failure a stub scripted: no block code ran, so it
    names the stub (and the attempt) instead of the engine frames that raised it."""
    which = "" if attempt is None else f" for attempt {attempt + 1}"
    return (f"Scripted failure: stub {stub_key!r} answered Failure.{category.value}(...)"
            f"{which}; no block code ran, so there is no traceback.\n")


@dataclass(frozen=True, slots=True)
class Outputs:
    """Data per output handle: ``Outputs({"output-json-else": invoice})``.

    Handles left out do not fire (a routing block skips what hangs off them).
    """

    handles: Mapping[str, Any]
    artifact: dict[str, Any] | None = None


class Attempts:
    """One stub per attempt: entry ``n`` answers attempt ``n`` (0 = the first).

    ``Attempts(Failure.transient("503"), Failure.transient("503"), {"ok": True})`` fails
    twice, then succeeds, provided the retry policy allows three attempts.
    """

    __slots__ = ("entries",)

    def __init__(self, *entries: Any) -> None:
        if not entries:
            raise UsageError("Attempts() needs at least one entry: Attempts(Failure.transient(), "
                             "{...}).")
        self.entries = entries

    def __repr__(self) -> str:
        return f"Attempts({', '.join(map(repr, self.entries))})"


@record
class StubCall:
    """What a callable stub is given.

    Attributes:
        step_id, block_id: the step being stubbed.
        attempt: 0 on the first attempt, +1 per retry.
        inputs: data per input handle (a :class:`FileRef` for file handles).
        iteration: the innermost loop iteration, or None at top level.
    """

    step_id: str
    block_id: str
    attempt: int
    inputs: dict[str, Any] = field(default_factory=dict)
    iteration: int | None = None

    @property
    def input(self) -> Any:
        """The data of the only input handle.

        Raises:
            UsageError: the step has no input or several; read :attr:`inputs` instead.
        """
        if len(self.inputs) != 1:
            raise UsageError(
                f"step {self.step_id!r} has {len(self.inputs)} inputs "
                f"({', '.join(sorted(self.inputs)) or 'none'}); read call.inputs[handle].")
        return next(iter(self.inputs.values()))


class StubbedBlock(BlockType):
    """A block whose executions answer from stubs; steps without one run ``inner``."""

    def __init__(self, inner: BlockType, *, outputs: Mapping[str, str],
                 block_stub: tuple[str, Any] | None, step_stubs: Mapping[str, Any]) -> None:
        self.inner = inner
        self.type_name = inner.type_name  # type: ignore[misc]  # the wrapped type's name
        self.outputs = dict(outputs)
        self.block_stub = block_stub
        self.step_stubs = dict(step_stubs)
        stubs = [block_stub[1]] if block_stub else []
        stubs += self.step_stubs.values()
        self._sync = not any(_is_async(s) for s in stubs)

    def runs_inline(self, config: Any) -> bool:
        """Inline when every stub is synchronous (and the real block is, if it still runs)."""
        if not self._sync:
            return False
        return self.block_stub is not None or self.inner.runs_inline(config)

    async def run(self, ctx: BlockContext, config: Any, inputs: Mapping[str, Payload]
                  ) -> BlockResult:
        """The stub's answer for this step and attempt, or the real block's."""
        if ctx.step_id in self.step_stubs:
            key, stub = ctx.step_id, self.step_stubs[ctx.step_id]
        elif self.block_stub is not None:
            key, stub = self.block_stub
        else:
            return await self.inner.run(ctx, config, inputs)
        stub = await _resolve(ctx, key, stub, inputs)
        return _result(ctx, key, stub, self.outputs)


class CheckedBlock(BlockType):
    """An app-registered block type whose JSON outputs are checked before storage."""

    def __init__(self, inner: BlockType) -> None:
        self.inner = inner
        self.type_name = inner.type_name  # type: ignore[misc]  # the wrapped type's name

    def runs_inline(self, config: Any) -> bool:
        """As the wrapped block."""
        return self.inner.runs_inline(config)

    async def run(self, ctx: BlockContext, config: Any, inputs: Mapping[str, Payload]
                  ) -> BlockResult:
        """Run the block; JSON data the store cannot encode is a permanent step error."""
        result = await self.inner.run(ctx, config, inputs)
        for handle, payload in getattr(result, "outputs", {}).items():
            if getattr(payload, "kind", None) == "json":
                _require_json(ctx, handle, payload.data)
        return result


# --------------------------------------------------------------------------- graph rewrite


def apply_stubs(graph: CompiledGraph, stubs: Mapping[str, Any]) -> CompiledGraph:
    """A copy of ``graph`` whose stubbed blocks answer from ``stubs``.

    Raises:
        UsageError: a key names no block or step of the workflow, or a block that cannot
            be stubbed (container, loop sentinel); every bad key is listed.
    """
    if not stubs:
        return graph
    by_block: dict[str, tuple[str, Any] | None] = {}
    by_step: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for key, stub in stubs.items():
        block_id = key if key in graph.nodes else _block_of_step(graph, key, None)
        problem = _unstubbable(graph, key, block_id)
        if problem:
            problems.append(problem)
        elif key == block_id:
            by_block[key] = (key, stub)
        else:
            assert block_id is not None
            by_block.setdefault(block_id, None)
            by_step.setdefault(block_id, {})[key] = stub
    if problems:
        raise UsageError(
            f"Cannot stub workflow {graph.workflow.name!r}:\n  " + "\n  ".join(problems))
    nodes = dict(graph.nodes)
    for block_id, block_stub in by_block.items():
        node = nodes[block_id]
        wrapped = StubbedBlock(node.impl, outputs=node.outputs, block_stub=block_stub,
                               step_stubs=by_step.get(block_id, {}))
        nodes[block_id] = _with_impl(node, wrapped)
    return dataclasses.replace(graph, nodes=nodes)


def check_custom_outputs(graph: CompiledGraph) -> CompiledGraph:
    """A copy of ``graph`` whose app-registered block types check their JSON outputs.

    Built-in types are left alone: their outputs are JSON by construction.
    """
    custom = {nid: _with_impl(n, CheckedBlock(n.impl))
              for nid, n in graph.nodes.items()
              if not is_builtin(n.impl) and not isinstance(n.impl, CheckedBlock)}
    if not custom:
        return graph
    return dataclasses.replace(graph, nodes={**graph.nodes, **custom})


def _with_impl(node: Node, impl: BlockType) -> Node:
    """``node`` run by ``impl`` (``dataclasses.replace``, without its per-call field
    inspection: stubbing a workflow replaces a node per stubbed block, in every test)."""
    values = {name: getattr(node, name) for name in _NODE_FIELDS}
    values["impl"] = impl
    return Node(**values)


_NODE_FIELDS = tuple(f.name for f in dataclasses.fields(Node))


def _block_of_step(graph: CompiledGraph, step_id: str, scope: str | None) -> str | None:
    """The block behind ``<container>_iter_<i>_..._<block>`` within ``scope``, if any."""
    for member in graph.members.get(scope, ()):
        node = graph.nodes[member]
        if scope is not None and step_id == member:
            return member
        if node.container and step_id.startswith(member + "_iter_"):
            match = _ITER.fullmatch(step_id[len(member) + 6:])
            found = match and _block_of_step(graph, match[2], member)
            if found:
                return found
    return None


def _unstubbable(graph: CompiledGraph, key: str, block_id: str | None) -> str | None:
    if block_id is None:
        blocks = sorted(n for n, node in graph.nodes.items() if node.sentinel_of is None)
        close = difflib.get_close_matches(key, blocks, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        if any(b.id == key for b in graph.workflow.blocks):
            return f"{key!r} is a note block: it never runs, so there is nothing to stub."
        return (f"{key!r} is not a block or step id of this workflow.{hint} Block ids: "
                f"{', '.join(blocks)}. Steps inside loops are named "
                "<container>_iter_<i>_<block> (e.g. 'orders_iter_0_price').")
    node = graph.nodes[block_id]
    if node.sentinel_of is not None:
        return (f"{key!r} is a loop sentinel generated by the engine; stub the blocks "
                f"inside {node.sentinel_of!r} instead.")
    if node.container:
        return (f"{key!r} is a {node.container} container; stub the blocks inside it "
                "(all iterations by block id, one by step id) instead.")
    return None


# --------------------------------------------------------------------------- answering


def _is_async(stub: Any) -> bool:
    """True when answering ``stub`` awaits (an ``async def`` function or ``__call__``)."""
    if isinstance(stub, Attempts):
        return any(_is_async(s) for s in stub.entries)
    if not callable(stub):
        return False  # most stubs are values: skip inspect's unwrapping
    if isinstance(stub, FunctionType):  # a function's own __call__ is never async
        return inspect.iscoroutinefunction(stub)
    return inspect.iscoroutinefunction(stub) or inspect.iscoroutinefunction(
        type(stub).__call__)


async def _resolve(ctx: BlockContext, key: str, stub: Any, inputs: Mapping[str, Payload]
                   ) -> Any:
    """Follow Attempts and callables down to a value, Outputs or Failure."""
    if isinstance(stub, Attempts):
        if ctx.attempt >= len(stub.entries):
            raise PermanentError(
                f"stub {key!r} scripts {len(stub.entries)} attempts but attempt "
                f"{ctx.attempt + 1} ran; add entries to its Attempts(...).",
                code="STUB_EXHAUSTED")
        stub = stub.entries[ctx.attempt]
    if callable(stub) and not isinstance(stub, (type, Failure, Outputs, FileRef, Path)):
        call = StubCall(step_id=ctx.step_id, block_id=ctx.block_id, attempt=ctx.attempt,
                        iteration=ctx.iteration,
                        inputs={h: p.document if p.kind == "file" else p.data
                                for h, p in inputs.items()})
        stub = stub(call)
        if inspect.isawaitable(stub):
            stub = await stub
    if isinstance(stub, Failure):
        raise stub.error(stub_key=key, attempt=ctx.attempt)
    return stub


def _result(ctx: BlockContext, key: str, stub: Any, handles: dict[str, str]) -> BlockResult:
    artifact: dict[str, Any] = {"operation": "stub", "stub_key": key}
    if isinstance(stub, Outputs):
        unknown = sorted(set(stub.handles) - set(handles))
        if unknown:
            raise PermanentError(
                f"stub {key!r} names output handle(s) {', '.join(unknown)}, which block "
                f"{ctx.block_id!r} ({ctx.block_type}) does not have. Its output handles: "
                f"{', '.join(sorted(handles)) or 'none'}.", code="STUB_UNKNOWN_HANDLE",
                stage=ErrorStage.OUTPUT_STORAGE)
        artifact.update(stub.artifact or {})
        values = dict(stub.handles)
    elif len(handles) == 1:
        values = {next(iter(handles)): stub}
    elif not handles and stub is None:
        values = {}
    else:
        raise PermanentError(
            f"stub {key!r}: block {ctx.block_id!r} ({ctx.block_type}) has "
            f"{len(handles)} output handles ({', '.join(sorted(handles)) or 'none'}), so a "
            "plain value is ambiguous. Wrap it: Outputs({handle: data, ...}).",
            code="STUB_AMBIGUOUS_OUTPUT", stage=ErrorStage.OUTPUT_STORAGE)
    outputs = {h: _payload(ctx, key, h, handles[h], v) for h, v in values.items()}
    return BlockResult(outputs=outputs, artifact=artifact)


def _payload(ctx: BlockContext, key: str, handle: str, kind: str, value: Any) -> Payload:
    if isinstance(value, Payload):
        return value
    if kind == "json":
        _require_json(ctx, handle, value)
        return Payload.json(value)
    if isinstance(value, FileRef):
        return Payload.file(value)
    if isinstance(value, bytes | Path) and ctx.files is not None:
        data = value if isinstance(value, bytes) else value.read_bytes()
        name = value.name if isinstance(value, Path) else f"{ctx.step_id}.bin"
        return Payload.file(ctx.files.put_bytes(data, name))
    raise PermanentError(
        f"stub {key!r} gives a {type(value).__name__} for file handle {handle!r} of block "
        f"{ctx.block_id!r}; give a FileRef, bytes or a pathlib.Path.",
        code="STUB_BAD_FILE", stage=ErrorStage.OUTPUT_STORAGE)


def _require_json(ctx: BlockContext, handle: str, data: Any) -> None:
    from store.codec import encode  # the store's own encoder: same acceptance rules

    try:
        encode(data)
    except (TypeError, ValueError, RecursionError) as exc:
        raise PermanentError(
            f"block {ctx.block_id!r} ({ctx.block_type}) put data on JSON handle {handle!r} "
            f"that cannot be stored as JSON ({exc}). Return dicts, lists, strings, numbers, "
            "booleans or None (convert other objects first), or declare a file handle and "
            "return Payload.file(ctx.files.put_bytes(...)).",
            code="OUTPUT_NOT_JSON", stage=ErrorStage.OUTPUT_STORAGE) from exc


__all__ = ["Attempts", "Failure", "Outputs", "StubCall", "apply_stubs", "check_custom_outputs"]
