"""Test utilities for block logic and workflows (public API).

* :func:`run_block` runs one block with the handle inputs you give and returns its
  outputs, lifecycle and artifact (:class:`BlockRun`). It goes through the real engine
  (validation, runner, an in-memory SQLite store), so what you see is what a workflow run
  would persist; a pure block takes a few milliseconds.
* Stubs (:class:`Failure`, :class:`Outputs`, :class:`Attempts`, :class:`StubCall`, from
  :mod:`engine.stubs`): ``Engine(":memory:", stubs={...})`` runs a whole workflow with
  some blocks or steps answering from the test.
* :func:`assert_step` (from :mod:`engine.assertions`) checks one step of a run with a
  readable failure message.
* :data:`INSTANT_RETRY`: the default retry policy without the waits, for tests.
* :func:`untimed_yields` (from :mod:`engine.runner`): runs schedule alike on any machine
  (the driver never yields for time), for tests that compare two runs.
* :class:`~blocks.providers.scripted.ScriptedProvider`: model answers per block or step
  (``provider={"extract": {...}}`` is a shortcut for it).

The pytest plugin (:mod:`engine.pytest_plugin`) adds the fixtures ``stepwell_engine`` and
``stepwell_client``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Any

import anyio

from blocks.base import BlockType, StrictConfig
from blocks.providers import MODEL_PROVIDER_SERVICE
from blocks.providers.scripted import ScriptedProvider
from blocks.registry import BlockRegistry, default_registry
from engine.assertions import assert_step
from engine.contracts.blocks import BlockContext, BlockResult
from engine.contracts.errors import InputError, UsageError
from engine.contracts.files import FileStore
from engine.contracts.frozen import record
from engine.contracts.values import FileRef, Payload
from engine.core import Engine
from engine.definition import BlockDef, Workflow
from engine.launch import RunOrigin, create_run, stand_ins
from engine.options import RetryPolicy, model_provider
from engine.runner import untimed_yields
from engine.stubs import Attempts, Failure, Outputs, StubCall

__all__ = [
    "INSTANT_RETRY", "Attempts", "BlockRun", "Failure", "Outputs", "ScriptedProvider",
    "StubCall", "arun_block", "assert_step", "run_block", "untimed_yields",
]

#: The engine's default retry policy (3 attempts) without waiting between attempts.
INSTANT_RETRY = RetryPolicy(initial_interval_s=0.0, max_interval_s=0.0, jitter=0.0)
_NO_RETRY = RetryPolicy(max_attempts=1)
_GIVEN = "stepwell_given_input"
_MISSING: Any = object()


@record
class BlockRun:
    """How one :func:`run_block` call went.

    Attributes:
        block_id, block_type: the block as run.
        status: ``completed``, ``error`` or ``awaiting_review``.
        outputs: data per fired output handle (a :class:`FileRef` for file handles).
        files: the bytes of every file output, by handle.
        artifact: the operation record (``{"operation": ..., ...}``) or None.
        error: ``{message, stage, category, code}`` when the step failed.
        transitions: the lifecycle it went through (``pending, queued, running, ...``).
        retry_count, model, tokens, cost: as persisted on the step.
        review: the review record of a step that waits for a human, else None.
        logs: what the block wrote, one ``stream: message`` line per entry (a function's
            ``print()`` and ``logging``, an ``api_call``'s request and response), every
            attempt.
        step: the persisted step (``store.api.Step``), for anything else.
    """

    block_id: str
    block_type: str
    status: str
    outputs: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    artifact: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    transitions: list[str] = field(default_factory=list)
    retry_count: int = 0
    model: str | None = None
    tokens: dict[str, Any] | None = None
    cost: dict[str, Any] | None = None
    review: dict[str, Any] | None = None
    logs: list[str] = field(default_factory=list)
    step: Any = None

    @property
    def ok(self) -> bool:
        """True when the step completed."""
        return self.status == "completed"

    @property
    def output(self) -> Any:
        """The data of the only fired output handle.

        Raises:
            AssertionError: the step failed, or fired no handle or several.
        """
        if len(self.outputs) != 1:
            detail = f": {self.error['message']}" if self.error else ""
            raise AssertionError(
                f"block {self.block_id!r} ended {self.status}{detail} and fired "
                f"{len(self.outputs)} output handles ({', '.join(sorted(self.outputs)) or 'none'});"
                " read .outputs[handle].")
        return next(iter(self.outputs.values()))


def run_block(block_type: str | BlockType | BlockDef, config: Mapping[str, Any] | None = None,
              inputs: Mapping[str, Any] | None = None, **options: Any) -> BlockRun:
    """Run one block and return what it did (sync wrapper of :func:`arun_block`)."""
    return anyio.run(lambda: arun_block(block_type, config, inputs, **options))


async def arun_block(
    block_type: str | BlockType | BlockDef,
    config: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
    *,
    provider: Any = None,
    block_id: str | None = None,
    registry: BlockRegistry | None = None,
    input_schemas: Mapping[str, dict[str, Any]] | None = None,
    run_input: Any = _MISSING,
    env: Mapping[str, str] | None = None,
    services: Mapping[str, Any] | None = None,
    retry: RetryPolicy | None = None,
    files: FileStore | None = None,
) -> BlockRun:
    """Run one block with the given handle inputs, through the engine, in memory.

    Args:
        block_type: a type name (``"conditional"``), a :class:`BlockType` instance (a
            custom type, registered or not), or a :class:`BlockDef` from a loaded
            workflow (``load_workflow(path).block("normalise")``: its config and id).
        config: the block's ``config`` (as written in a workflow file).
        inputs: data per input handle; friendly names work (``document`` for
            ``input-file-document``). File handles take a :class:`~pathlib.Path`,
            ``bytes`` or a :class:`FileRef`.
        provider: model provider: an instance, ``"offline"``, or a mapping (a
            :class:`ScriptedProvider` script keyed by block id).
        block_id: the step's id (default: the BlockDef's id, else the type name).
        registry: where type names are looked up (default: the built-ins).
        input_schemas: JSON schema per input handle, as an upstream block would declare
            it (function blocks build their ``Input`` model from it).
        run_input: the run input of a start block (``start_json``/``start_document``).
        env, services: the block's environment and engine services.
        retry: retry policy (default: one attempt, so a transient error shows as is).
        files: a file store the :class:`FileRef` inputs are read from, and the file
            outputs are copied to (same ids: files are content-addressed). Without it,
            FileRef inputs must already be readable by the block.

    Returns:
        A :class:`BlockRun`; a failing block is ``status="error"``, not an exception.

    Raises:
        WorkflowValidationError: the config is invalid (every problem listed).
        InputError: an input names a handle the block does not have (the message lists
            its handles) or has the wrong kind of value.
    """
    impl, type_name, raw_config, block_id = _identify(block_type, config, block_id, registry)
    registry = (registry or default_registry()).copy()
    if isinstance(block_type, BlockType) and type_name not in registry:
        registry.register(block_type)
    registry.register(_GivenInput())
    from store.sqlite import SQLiteStore

    svc = dict(services or {})
    if provider is not None:
        svc[MODEL_PROVIDER_SERVICE] = model_provider(provider, env)
    with SQLiteStore(":memory:") as store:
        given = _given_inputs(impl, raw_config, block_id,
                              _copied_in(dict(inputs or {}), files, store), store)
        wf = _workflow(block_id, type_name, raw_config, given, input_schemas or {})
        engine = Engine(store=store, registry=registry, retry=retry or _NO_RETRY,
                        env=dict(env or {}), services=svc)
        run_inputs = {f"given_{i}": p.to_dict() for i, (_, p) in enumerate(given)}
        if run_input is not _MISSING:
            run_inputs[block_id] = _start_input(run_input, store, block_id)
        # The run inputs feed handles here, not start blocks: they are stored as given,
        # and a start block without one fails its step as it would in a workflow.
        prepared = create_run(store, stand_ins(engine.compile(wf), {}), run_inputs,
                              run_id="run_block", origin=RunOrigin(workflow_id="run_block"),
                              organization_id=engine.organization_id)
        await engine.execute(prepared)
        done = _block_run(store, block_id, type_name)
    if files is not None:
        for handle, ref in done.outputs.items():
            if isinstance(ref, FileRef):
                files.put_bytes(done.files[handle], ref.filename, ref.mime_type)
    return done


def _copied_in(inputs: dict[str, Any], files: FileStore | None, store: Any) -> dict[str, Any]:
    """``inputs`` with every FileRef's bytes copied from ``files`` into ``store``."""
    if files is None:
        return inputs
    for value in inputs.values():
        if isinstance(value, FileRef):
            store.files.put_bytes(files.read_bytes(value), value.filename, value.mime_type)
    return inputs


def _identify(block_type: str | BlockType | BlockDef, config: Mapping[str, Any] | None,
              block_id: str | None, registry: BlockRegistry | None
              ) -> tuple[BlockType, str, dict[str, Any], str]:
    if isinstance(block_type, BlockDef):
        raw = dict(block_type.config if config is None else config)
        name, block_id = block_type.type, block_id or block_type.id
    elif isinstance(block_type, BlockType):
        name, raw = block_type.type_name, dict(config or {})
    else:
        name, raw = str(block_type), dict(config or {})
    if isinstance(block_type, BlockType):
        impl = block_type
    else:
        impl = (registry or _default_registry()).get(name)
    if impl.container or not impl.executes:
        kind = impl.container or "note"
        raise UsageError(
            f"run_block runs one executing block; {name!r} is a {kind}. Run a workflow "
            "with Engine(':memory:') instead, and stub the blocks around it.")
    return impl, name, raw, block_id or name


_REGISTRY: list[BlockRegistry] = []


def _default_registry() -> BlockRegistry:
    if not _REGISTRY:
        _REGISTRY.append(default_registry())
    return _REGISTRY[0]


def _given_inputs(impl: BlockType, raw: dict[str, Any], block_id: str,
                  inputs: dict[str, Any], store: Any) -> list[tuple[str, Payload]]:
    """``(handle, payload)`` per given input; unknown handles raise InputError."""
    try:
        config = impl.parse_config(raw)
    except ValueError:
        return [(h, Payload.json(v)) for h, v in inputs.items()]  # compile reports it
    handles = impl.input_handles(config)
    aliases = {a: h for a, h in impl.input_aliases(config).items() if not a.isdigit()}
    out: list[tuple[str, Payload]] = []
    for name, value in inputs.items():
        handle = name if name in handles else impl.input_aliases(config).get(name)
        if handle is None:
            raise InputError(
                f"block {block_id!r} ({impl.type_name}) has no input handle {name!r}. Its "
                f"input handles: {', '.join(sorted(handles)) or 'none'}"
                + (f" (also written {', '.join(sorted(aliases))})" if aliases else "") + ".")
        out.append((handle, _payload(value, handles[handle], store, block_id, handle)))
    return out


def _payload(value: Any, kind: str, store: Any, block_id: str, handle: str) -> Payload:
    if isinstance(value, Payload):
        return value
    if kind == "json":
        return Payload.json(value)
    if isinstance(value, FileRef):
        return Payload.file(value)
    if isinstance(value, bytes):
        return Payload.file(store.files.put_bytes(value, f"{handle}.bin"))
    if isinstance(value, Path):
        if not value.is_file():
            raise InputError(f"input {handle!r} of block {block_id!r}: no file {value}.")
        return Payload.file(store.files.put_bytes(value.read_bytes(), value.name))
    raise InputError(
        f"input {handle!r} of block {block_id!r} is a file handle; give a pathlib.Path, "
        f"bytes or a FileRef, not a {type(value).__name__}.")


def _start_input(value: Any, store: Any, block_id: str) -> Any:
    if isinstance(value, bytes | Path | FileRef):
        return _payload(value, "file", store, block_id, "run_input").document.to_dict()  # type: ignore[union-attr]
    return value


def _workflow(block_id: str, type_name: str, raw: dict[str, Any],
              given: list[tuple[str, Payload]], schemas: Mapping[str, Any]) -> Workflow:
    builder = Workflow.builder(f"run_block {block_id}").block(block_id, type_name, config=raw)
    for i, (handle, payload) in enumerate(given):
        feeder = f"given_{i}"
        builder.block(feeder, _GIVEN, config={"kind": payload.kind,
                                              "json_schema": schemas.get(handle)})
        builder.edge(feeder, block_id, target_handle=handle)
    return builder.build()


class _GivenConfig(StrictConfig):
    kind: str = "json"
    json_schema: dict[str, Any] | None = None


class _GivenInput(BlockType):
    """Feeds one payload given to run_block (from the run inputs) into a handle."""

    type_name = _GIVEN
    config_model = _GivenConfig

    def output_handles(self, config: _GivenConfig) -> dict[str, Any]:
        return {f"output-{config.kind}-0": config.kind}

    def output_schema(self, config: _GivenConfig, handle: str) -> dict[str, Any] | None:
        return config.json_schema

    def runs_inline(self, config: Any) -> bool:
        return True

    async def run(self, ctx: BlockContext, config: _GivenConfig,
                  inputs: Mapping[str, Payload]) -> BlockResult:
        payload = Payload.from_dict(ctx.run_inputs[ctx.block_id])
        return BlockResult(outputs={f"output-{config.kind}-0": payload})


def _block_run(store: Any, block_id: str, type_name: str) -> BlockRun:
    reader = store.reader()
    step = reader.get_step(block_id, run_id="run_block")
    outputs: dict[str, Any] = {}
    files: dict[str, bytes] = {}
    for handle, payload in step.handle_outputs.items():
        if payload.type == "file":
            ref = FileRef(**payload.document.model_dump())
            outputs[handle] = ref
            files[handle] = store.local_files.read_bytes(ref)
        else:
            outputs[handle] = payload.data
    life = step.lifecycle
    error = None
    if life.status == "error":
        error = {"message": life.message, "stage": life.stage, "category": life.category,
                 "code": life.details.error_code if life.details else None}
    reviews = store.reviews(run_id="run_block")
    return BlockRun(
        block_id=block_id, block_type=type_name, status=life.status, outputs=outputs,
        files=files, error=error,
        artifact=_artifact(reader, step),
        transitions=[t["status"] for t in store.transitions("run_block", block_id)],
        retry_count=step.retry_count, model=step.model, tokens=step.tokens, cost=step.cost,
        review=reviews[0].to_dict() if reviews else None, step=step,
        logs=[f"{line.stream}: {line.message}" for line in
              reader.list_step_logs(block_id, run_id="run_block", limit=1000).data])


def _artifact(reader: Any, step: Any) -> dict[str, Any] | None:
    if step.artifact is None:
        return None
    record = dict(reader.get_artifact(step.artifact.id))
    for key in ("workflow_run_id", "step_id", "created_at"):
        record.pop(key, None)
    return record
