"""What a step event stores, whatever the backend: errors, review data, artifact ids.

Both stores (:mod:`store.sqlite`, :mod:`store.memory`) build these values from a
:class:`~engine.contracts.events.StepEvent` the same way, so a step reads back
identically from either.
"""

from __future__ import annotations

from typing import Any

from engine.contracts.artifacts import artifact_id, artifact_prefix
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


#: SQL completing an in-row artifact id after its prefix: the row's ``seq`` in 8 hex
#: digits (more past 2**32) and the attempt in 4 (``{attempt}``: a column or ``?``).
IN_ROW_ID_SQL = "printf('%08x%04x', seq, ({attempt}) & 65535)"


def artifact_prefix_of(ev: StepEvent) -> tuple[str, str]:
    """The id prefix (``fninv_``...) and the operation of the artifact ``ev`` carries,
    for a store that completes the id in SQL (:data:`IN_ROW_ID_SQL`).

    Raises:
        StorageError: the artifact names no ``operation``.
    """
    operation = _operation(ev)
    return f"{artifact_prefix(operation)}_", operation


def locate_artifact(artifact_id_: str) -> int | None:
    """The ``seq`` of the step row an in-row artifact id names, or None when the id
    has no such shape (an id from before layout 6: look it up in
    ``artifacts``). The caller checks the row's ``artifact_id`` equals the id."""
    _, sep, digits = artifact_id_.partition("_")
    if not sep or len(digits) < 12 or len(digits) > 20:
        return None
    try:
        seq = int(digits[:-4], 16)
    except ValueError:
        return None
    return seq if seq < 2**63 else None  # past a 64-bit rowid: no such row


def _operation(ev: StepEvent) -> str:
    assert ev.artifact is not None
    operation = ev.artifact.get("operation")
    if not isinstance(operation, str) or not operation:
        raise StorageError(
            f"the artifact of step {ev.step_id!r} has no 'operation': block handlers "
            "must return artifact={'operation': <name>, ...}."
        )
    return operation


def artifact_key(run_id: str, ev: StepEvent) -> tuple[str, str]:
    """The id and operation of the artifact ``ev`` carries.

    The id is deterministic (Retab's prefix for the operation, then 12 hex of sha256
    over run, step and attempt: :func:`engine.contracts.artifacts.artifact_id`), so a
    resumed attempt overwrites its own record.

    Raises:
        StorageError: the artifact names no ``operation``.
    """
    operation = _operation(ev)
    return artifact_id(operation, run_id, ev.step_id, ev.retry_count), operation
