"""What a step event stores, whatever the backend: errors, review data, artifact ids.

Both stores (:mod:`store.sqlite`, :mod:`store.memory`) build these values from a
:class:`~engine.contracts.events.StepEvent` the same way, so a step reads back
identically from either.
"""

from __future__ import annotations

from typing import Any

from engine.contracts.artifacts import artifact_id
from engine.contracts.errors import StorageError
from engine.contracts.events import StepErrorInfo, StepEvent


def error_json(info: StepErrorInfo, block_id: str, label: str) -> dict[str, Any]:
    """The stored ``error`` of a step or run: ``{message, stage, category, details}``."""
    return {
        "message": info.message,
        "stage": str(info.stage),
        "category": str(info.category),
        "details": info.details(block_id, label),
    }


def review_data(ev: StepEvent) -> dict[str, Any]:
    """What a reviewer decides on: the proposed outputs and why review was asked."""
    outputs = {h: p.to_dict() for h, p in (ev.outputs or {}).items()}
    return {"outputs": outputs, "review": (ev.control or {}).get("review")}


def artifact_key(run_id: str, ev: StepEvent) -> tuple[str, str]:
    """The id and operation of the artifact ``ev`` carries.

    The id is deterministic (Retab's prefix for the operation, then 12 hex of sha256
    over run, step and attempt: :func:`engine.contracts.artifacts.artifact_id`), so a
    resumed attempt overwrites its own record.

    Raises:
        StorageError: the artifact names no ``operation``.
    """
    assert ev.artifact is not None
    operation = ev.artifact.get("operation")
    if not isinstance(operation, str) or not operation:
        raise StorageError(
            f"the artifact of step {ev.step_id!r} has no 'operation': block handlers "
            "must return artifact={'operation': <name>, ...}."
        )
    return artifact_id(operation, run_id, ev.step_id, ev.retry_count), operation
