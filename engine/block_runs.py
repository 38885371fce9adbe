"""Replaying one block of a workflow with given handle inputs, outside any run.

Block executions (``client.workflows.blocks.executions.create``) and evals both run one
block of a workflow's definition on inputs saved earlier. They go through the engine's
block test path (:func:`engine.testing.arun_block`): the block is validated and run by
the real runner against a throwaway in-memory store, with the engine's registry,
environment and services, so it behaves exactly as in a run. Files come from, and file
outputs go to, the engine's file store.

Handle payloads are in wire form: ``{"type": "json", "data": ...}`` or
``{"type": "file", "document": {"id", "filename", "mime_type"}}``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import field
from typing import TYPE_CHECKING, Any

from engine.contracts.errors import InputError
from engine.contracts.frozen import record
from engine.contracts.values import FileRef
from engine.graph_edit import find_block

if TYPE_CHECKING:
    from engine.core import Engine
    from engine.definition import Workflow


@record
class Replayed:
    """What one replayed block did.

    Attributes:
        status: ``completed``, ``error`` or ``awaiting_review``.
        outputs: data per fired output handle (a file handle's value is its document).
        artifact: the step's operation record, or None.
    """

    block_id: str
    block_type: str
    status: str
    message: str | None = None
    handle_inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    artifact: dict[str, Any] | None = None
    started_at: float = 0.0
    completed_at: float = 0.0

    @property
    def handle_outputs(self) -> dict[str, Any]:
        """The fired outputs in wire form."""
        return {h: wire_payload(v) for h, v in self.outputs.items()}

    @property
    def duration_ms(self) -> int:
        """Wall-clock time of the replay."""
        return round((self.completed_at - self.started_at) * 1000)


def wire_payload(value: Any) -> dict[str, Any]:
    """A value in wire form (a :class:`FileRef` or a file document dict is a file)."""
    if isinstance(value, FileRef):
        return {"type": "file", "document": value.to_dict()}
    return {"type": "json", "data": value}


def given_value(handle: str, payload: Any) -> Any:
    """The value a wire payload gives :func:`engine.testing.arun_block`.

    Raises:
        InputError: the payload is not ``{"type": "json", ...}`` or a file with a document.
    """
    if isinstance(payload, Mapping) and payload.get("type") == "file":
        document = payload.get("document")
        if not isinstance(document, Mapping) or not document.get("id"):
            raise InputError(f"handle_inputs.{handle}: a file input needs "
                             "document: {id, filename, mime_type}.")
        return FileRef(id=str(document["id"]), filename=str(document.get("filename") or "file"),
                       mime_type=str(document.get("mime_type") or "application/octet-stream"))
    if isinstance(payload, Mapping) and payload.get("type", "json") == "json":
        return payload.get("data")
    raise InputError(f"handle_inputs.{handle}: expected {{type: json, data}} or "
                     "{type: file, document}.")


async def replay_block(engine: Engine, workflow: Workflow, block_id: str,
                       handle_inputs: Mapping[str, Any], *,
                       organization_id: str = "org_local") -> Replayed:
    """Run ``block_id`` of ``workflow`` once with ``handle_inputs``.

    Args:
        engine: supplies the registry, environment, services and file store.
        workflow: the definition the block is taken from.
        block_id: the block.
        handle_inputs: wire payload per input handle.
        organization_id: whose environment the block sees (the engine's ``env`` may
            depend on the organization, as a server's does).

    Returns:
        What the block did; a failing block is ``status="error"``, not an exception.

    Raises:
        NotFoundError: the workflow has no such block.
        WorkflowValidationError: the workflow does not compile.
        InputError: an input is malformed or names a handle the block does not have.
        UsageError: the block does not execute (a container or a note).
    """
    from engine.testing import arun_block

    block = find_block(workflow, block_id)
    graph = engine.compile(workflow)
    schemas = {h: s for h, s in graph.input_schemas.get(block_id, {}).items() if s}
    inputs = {h: given_value(h, p) for h, p in handle_inputs.items()}
    env = engine.env(organization_id) if callable(engine.env) else engine.env
    started = time.time()
    run = await arun_block(block, inputs=inputs, registry=engine.registry,
                           input_schemas=schemas, env=env, services=engine.services,
                           files=engine.store.files)
    outputs = {h: v.to_dict() if isinstance(v, FileRef) else v for h, v in run.outputs.items()}
    return Replayed(block_id=block_id, block_type=block.type, status=run.status,
                    message=run.error["message"] if run.error else None,
                    handle_inputs=dict(handle_inputs), outputs=outputs, artifact=run.artifact,
                    started_at=started, completed_at=time.time())
