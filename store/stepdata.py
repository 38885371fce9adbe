"""What a step event stores, whatever the backend: errors, review data, artifact ids.

Both stores (:mod:`store.sqlite`, :mod:`store.memory`) build these values from a
:class:`~engine.contracts.events.StepEvent` the same way, so a step reads back
identically from either.
"""

from __future__ import annotations

from typing import Any

from engine.contracts.artifacts import artifact_digest, artifact_id, artifact_prefix
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


#: Hex digits of an in-row artifact id after its ``seq``: a hash of run, step and attempt.
TAG_DIGITS = 6


def in_row_id_sql(stub: str) -> str:
    """SQL for an in-row artifact id from ``stub`` (a column or ``?``, holding
    ``<prefix>_<tag>`` as :func:`artifact_stub` makes it): the prefix, the row's ``seq``
    in 6 hex digits (more past 2**24), then the tag."""
    return (f"substr({stub}, 1, length({stub}) - {TAG_DIGITS}) || printf('%06x', seq) "
            f"|| substr({stub}, -{TAG_DIGITS})")


def artifact_stub(run_id: str, ev: StepEvent) -> tuple[str, str]:
    """The id stub (``fninv_3f9a0c``: the prefix, then the first 6 hex digits of the
    hash :func:`~engine.contracts.artifacts.artifact_id` takes of run, step and attempt)
    and the operation of the artifact ``ev`` carries, for a store that puts the row's
    ``seq`` in the middle in SQL (:func:`in_row_id_sql`).

    The ``seq`` lets a reader find the row without an index; the tag tells the attempts
    of one step apart, and a row that took the ``seq`` of a deleted one (SQLite reuses
    the highest) from the row it replaced.

    Raises:
        StorageError: the artifact names no ``operation``.
    """
    artifact = ev.artifact
    operation = artifact.get("operation") if artifact is not None else None
    if not isinstance(operation, str) or not operation:
        _operation(ev)  # raises
    tag = artifact_digest(run_id, ev.step_id, ev.retry_count)[:TAG_DIGITS]
    return f"{artifact_prefix(operation)}_{tag}", operation


def locate_artifact(artifact_id_: str) -> int | None:
    """The ``seq`` of the step row an in-row artifact id names, or None when the id
    has no such shape (an id from before layout 6: look it up in ``artifacts``). The
    caller checks that the row's ``artifact_id`` equals the id."""
    _, sep, digits = artifact_id_.partition("_")
    if not sep or len(digits) < 12 or len(digits) > 22:
        return None
    try:
        seq = int(digits[:-TAG_DIGITS], 16)
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
